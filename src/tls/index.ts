// TLS for NBD: the STARTTLS upgrades for both sides and the credential loaders they use.
export type {
  ClientTlsOptions, ClientTlsUpgrade, ServerTlsOptions, ServerTlsUpgrade, TlsMode, TlsSessionInfo,
} from './types.js';
export { upgradeClientTls, clientTlsConnectOptions, defaultTlsUsername } from './client.js';
export { upgradeServerTls, upgradeServerTlsWith, loadServerTlsContext, type ServerTlsContext } from './server.js';
export { parsePskFile, loadPskFile, lookupPskKey, type PskTable } from './psk-file.js';
export {
  loadClientCertificates, loadServerCertificates, defaultClientCertDirs, defaultServerCertDirs,
  type ClientCertificates, type ServerCertificates,
} from './cert-dir.js';
export { tlsSessionInfo } from './session-info.js';
