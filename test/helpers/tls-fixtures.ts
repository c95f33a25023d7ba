// TLS credentials made fresh for each test run: a CA, server and client certificates with
// certtool (gnutls-bin) and PSK files with psktool, all inside a private temp directory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { connect, createServer, isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { canConnectUnix } from './servers.js';
import { makeTempDir } from './temp.js';

export interface Ca {
  dir: string;
  certPath: string;
  keyPath: string;
}

function certtool(args: string[]): void {
  execFileSync('certtool', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// ECDSA keys: made in milliseconds, unlike certtool's default RSA size.
function makeKey(path: string): void {
  certtool(['--generate-privkey', '--key-type=ecdsa', '--outfile', path]);
}

function writeTemplate(path: string, lines: string[]): void {
  writeFileSync(path, lines.join('\n') + '\n');
}

/** A self-signed CA in `parent`/`name`. */
export function makeCa(parent: string, name = 'ca'): Ca {
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  const keyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'ca-cert.pem');
  const template = join(dir, 'ca.info');
  makeKey(keyPath);
  writeTemplate(template, [`cn = NBD test ${name}`, 'ca', 'cert_signing_key', 'expiration_days = 30']);
  certtool(['--generate-self-signed', '--load-privkey', keyPath, '--template', template, '--outfile', certPath]);
  return { dir, certPath, keyPath };
}

function issue(ca: Ca, outDir: string, base: string, templateLines: string[]): void {
  mkdirSync(outDir, { recursive: true });
  const key = join(outDir, `${base}-key.pem`);
  const template = join(outDir, `${base}.info`);
  makeKey(key);
  writeTemplate(template, templateLines);
  certtool([
    '--generate-certificate', '--load-ca-certificate', ca.certPath, '--load-ca-privkey', ca.keyPath,
    '--load-privkey', key, '--template', template, '--outfile', join(outDir, `${base}-cert.pem`),
  ]);
  // The directory layouts of nbdkit and libnbd both carry the CA next to the identity.
  if (!existsSync(join(outDir, 'ca-cert.pem'))) copyFileSync(ca.certPath, join(outDir, 'ca-cert.pem'));
}

/**
 * server-cert.pem/server-key.pem/ca-cert.pem in `outDir` (nbdkit layout), valid for the given
 * names (DNS names or IP addresses; the first is also the CN).
 */
export function makeServerCert(ca: Ca, outDir: string, names: string | string[] = 'localhost'): string {
  const list = Array.isArray(names) ? names : [names];
  issue(ca, outDir, 'server', [
    'organization = NBD toolkit tests',
    `cn = ${list[0]}`,
    ...list.map((n) => (isIP(n) !== 0 ? `ip_address = ${n}` : `dns_name = ${n}`)),
    'tls_www_server', 'encryption_key', 'signing_key', 'expiration_days = 30',
  ]);
  return outDir;
}

/** client-cert.pem/client-key.pem/ca-cert.pem in `outDir` (libnbd layout). */
export function makeClientCert(ca: Ca, outDir: string, cn = 'client.test'): string {
  issue(ca, outDir, 'client', [
    'organization = NBD toolkit tests', `cn = ${cn}`,
    'tls_www_client', 'encryption_key', 'signing_key', 'expiration_days = 30',
  ]);
  return outDir;
}

export interface PskFile {
  path: string;
  user: string;
  keyHex: string;
}

/** A psktool key file at `path` for `user` (appended to when it exists). */
export function makePskFile(path: string, user: string): PskFile {
  execFileSync('psktool', ['-u', user, '-p', path], { stdio: 'ignore' });
  const line = readFileSync(path, 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (line === undefined) throw new Error(`psktool did not write a key for ${user}`);
  return { path, user, keyHex: line.slice(user.length + 1) };
}

/** A directory whose only file is `ca`'s certificate (ca-cert.pem): trust without credentials of its own. */
export function makeCaOnlyDir(ca: Ca, dir: string): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(ca.certPath, join(dir, 'ca-cert.pem'));
  return dir;
}

/** The credentials the TLS interop tests share, in a fresh temp directory (`root`). */
export interface TlsCredentials {
  root: string;
  /** Signs the server and client certificates. */
  ca: Ca;
  /** A CA nothing here trusts. */
  otherCa: Ca;
  /** Certificate directory of a server named localhost (certtool layout, with ca-cert.pem). */
  serverDir: string;
  /** Certificate directory of a client, issued by `ca`. */
  clientDir: string;
  /** Trusts only `otherCa`: the server's certificate does not verify. */
  wrongCaDir: string;
  /** PSK file with a key for user alice. */
  psk: string;
  /** Another PSK file with a different key for alice. */
  wrongPsk: string;
}

export function makeTlsCredentials(): TlsCredentials {
  const root = makeTempDir();
  const ca = makeCa(root, 'ca');
  const otherCa = makeCa(root, 'other');
  return {
    root, ca, otherCa,
    serverDir: makeServerCert(ca, join(root, 'server'), 'localhost'),
    clientDir: makeClientCert(ca, join(root, 'client')),
    wrongCaDir: makeCaOnlyDir(otherCa, join(root, 'wrong')),
    psk: makePskFile(join(root, 'keys.psk'), 'alice').path,
    wrongPsk: makePskFile(join(root, 'wrong.psk'), 'alice').path,
  };
}

// A connected pair of real Unix sockets (native handles, as the client and server use).
export async function unixSocketPair(dir: string, name = 'pair.sock'): Promise<[Socket, Socket]> {
  const path = join(dir, name);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect(path);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const serverSide = await accepted;
  // close() only stops accepting; its callback would wait for these very sockets to end.
  server.close();
  return [client, serverSide];
}

export interface RunningServer {
  socket: string;
  uri: (scheme?: string, query?: string, user?: string) => string;
  stop: () => Promise<void>;
}

/**
 * Waits until the server accepts connections on `path`, failing early if the process dies. The
 * socket file appears at bind(), a moment before listen(): a client connecting in between gets
 * ECONNREFUSED (seen under load), so only a successful connect counts.
 */
async function waitForSocket(path: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited before listening: ${stderr().trim()}`);
    }
    if (await canConnectUnix(path)) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not listen on ${path}: ${stderr().trim()}`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/** nbdkit in the foreground on a private Unix socket in `dir`: `args` are TLS flags then PLUGIN [...]. */
export async function startNbdkit(dir: string, args: string[], name = 'nbdkit.sock'): Promise<RunningServer> {
  const socket = join(dir, name);
  const child = spawn('nbdkit', ['-f', '--exit-with-parent', '-U', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  await waitForSocket(socket, child, () => err);
  return {
    socket,
    uri: (scheme = 'nbds+unix', query = '', user) =>
      `${scheme}://${user !== undefined ? `${user}@` : ''}/?socket=${encodeURIComponent(socket)}${query === '' ? '' : `&${query}`}`,
    stop: () => stopChild(child),
  };
}
