// X.509 certificate directories in the layouts libnbd (client) and nbdkit (server) use,
// including their default locations, so the same directories work with both toolkits.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NbdError } from '../protocol/errors.js';
import { fileError } from './psk-file.js';

export interface ClientCertificates {
  /** The directory the files came from; undefined when none was found (system CAs are used). */
  dir: string | undefined;
  /** ca-cert.pem; undefined means trust the system's CAs. */
  ca: Buffer | undefined;
  /** client-cert.pem and client-key.pem, present together or not at all. */
  cert: Buffer | undefined;
  key: Buffer | undefined;
  crl: Buffer | undefined;
}

export interface ServerCertificates {
  dir: string;
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  crl: Buffer | undefined;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function defaultDirs(tool: 'libnbd' | 'nbdkit'): string[] {
  if (isRoot()) return [`/etc/pki/${tool}`];
  const home = process.env.HOME ?? homedir();
  return [join(home, '.pki', tool), join(home, '.config', 'pki', tool)];
}

/** Where libnbd looks when no certificates directory is given, in order. */
export function defaultClientCertDirs(): string[] {
  return defaultDirs('libnbd');
}

/** Where nbdkit looks when no --tls-certificates is given, in order. */
export function defaultServerCertDirs(): string[] {
  return defaultDirs('nbdkit');
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function requireDirectory(dir: string): void {
  if (!existsSync(dir)) throw new NbdError('ENOENT', `TLS certificates directory ${dir}: no such directory`);
  if (!isDirectory(dir)) throw new NbdError('ENOTDIR', `TLS certificates directory ${dir}: not a directory`);
}

function readRequired(dir: string, name: string): Buffer {
  const path = join(dir, name);
  try {
    return readFileSync(path);
  } catch (err) {
    throw fileError(err, path, 'TLS certificate file');
  }
}

function readOptional(dir: string, name: string): Buffer | undefined {
  const path = join(dir, name);
  if (!existsSync(path)) return undefined;
  return readRequired(dir, name);
}

/**
 * Loads the client's X.509 files. An explicit directory must exist; without one the first
 * existing default directory is used, and with none at all the system CAs verify the server.
 */
export function loadClientCertificates(explicitDir?: string): ClientCertificates {
  let dir: string | undefined;
  if (explicitDir !== undefined) {
    requireDirectory(explicitDir);
    dir = explicitDir;
  } else {
    dir = defaultClientCertDirs().find(isDirectory);
  }
  if (dir === undefined) return { dir, ca: undefined, cert: undefined, key: undefined, crl: undefined };
  const ca = readOptional(dir, 'ca-cert.pem');
  const cert = readOptional(dir, 'client-cert.pem');
  const key = readOptional(dir, 'client-key.pem');
  // Half a client identity is almost certainly a mistake that would otherwise surface as a
  // puzzling handshake failure on the server side.
  if ((cert === undefined) !== (key === undefined)) {
    const missing = cert === undefined ? 'client-cert.pem' : 'client-key.pem';
    throw new NbdError('ENOENT', `TLS certificates directory ${dir}: ${missing} is missing (the other half of the client identity is present)`);
  }
  return { dir, ca, cert, key, crl: readOptional(dir, 'ca-crl.pem') };
}

/**
 * Loads the server's X.509 files: server-cert.pem and server-key.pem are required, ca-cert.pem
 * is required when client certificates are to be verified.
 */
export function loadServerCertificates(explicitDir: string | undefined, verifyPeer: boolean): ServerCertificates {
  let dir: string;
  if (explicitDir !== undefined) {
    requireDirectory(explicitDir);
    dir = explicitDir;
  } else {
    const found = defaultServerCertDirs().find(isDirectory);
    if (found === undefined) {
      throw new NbdError('ENOENT', `no TLS certificates: give a certificates directory or a PSK file (looked in ${defaultServerCertDirs().join(', ')})`);
    }
    dir = found;
  }
  const cert = readRequired(dir, 'server-cert.pem');
  const key = readRequired(dir, 'server-key.pem');
  const ca = verifyPeer ? readRequired(dir, 'ca-cert.pem') : readOptional(dir, 'ca-cert.pem');
  return { dir, cert, key, ca, crl: readOptional(dir, 'ca-crl.pem') };
}
