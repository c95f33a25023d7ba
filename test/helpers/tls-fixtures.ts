// TLS credentials made fresh for each test run: a CA, server and client certificates with
// certtool (gnutls-bin) and PSK files with psktool, all inside a private temp directory.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Ca {
  dir: string;
  certPath: string;
  keyPath: string;
}

/** True when `tool` is on PATH; in CI a missing tool throws, elsewhere it warns loudly. */
export function haveTool(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI === 'true') throw new Error(`${tool} is required in CI but is not installed`);
    console.warn(`\n*** SKIPPING: ${tool} is not installed ***\n`);
    return false;
  }
}

export function makeTempDir(prefix = 'nbd-tls-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
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
