// The certificate-directory readers (src/tls/cert-dir.ts) over real directories of every
// layout: each of the five file names absent, a file (any content), a directory, or a dangling
// symlink, and the directory itself missing or a plain file. A layout the reader accepts must
// give back exactly the files' bytes; any other must be NbdError naming what is wrong.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadClientCertificates, loadServerCertificates } from '../../../src/tls/cert-dir.js';
import { expectTyped, Finding, type FuzzTarget } from '../harness.js';

const NAMES = ['ca-cert.pem', 'client-cert.pem', 'client-key.pem', 'server-cert.pem', 'server-key.pem', 'ca-crl.pem'] as const;
type Entry = { kind: 'absent' } | { kind: 'file'; bytes: Uint8Array } | { kind: 'dir' } | { kind: 'dangling' };

const entry: fc.Arbitrary<Entry> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'absent' as const }) },
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'file' as const, bytes })) },
  fc.constant({ kind: 'dir' as const }),
  fc.constant({ kind: 'dangling' as const }),
);

interface Layout { dir: 'dir' | 'missing' | 'file'; entries: Entry[]; verify: boolean }

let root: string | undefined;
let n = 0;

function build(l: Layout): string {
  if (root === undefined) {
    const made = mkdtempSync(join(tmpdir(), 'fuzz-certs-'));
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    root = made;
  }
  const dir = join(root, String(n++));
  if (l.dir === 'missing') return dir;
  if (l.dir === 'file') {
    writeFileSync(dir, 'x');
    return dir;
  }
  mkdirSync(dir);
  l.entries.forEach((e, i) => {
    const p = join(dir, NAMES[i]!);
    if (e.kind === 'file') writeFileSync(p, e.bytes);
    else if (e.kind === 'dir') mkdirSync(p);
    else if (e.kind === 'dangling') symlinkSync(join(dir, 'nowhere'), p);
  });
  return dir;
}

function expectBytes(got: Buffer | undefined, e: Entry, name: string): void {
  if (e.kind === 'file' ? !got?.equals(Buffer.from(e.bytes)) : got !== undefined) {
    throw new Finding(`${name}: read ${got === undefined ? 'nothing' : `${got.length} bytes`} for a ${e.kind}`);
  }
}

export const certDirTarget: FuzzTarget<Layout> = {
  name: 'certificate directory readers',
  input: fc.record({
    dir: fc.constantFrom('dir' as const, 'dir' as const, 'dir' as const, 'missing' as const, 'file' as const),
    entries: fc.array(entry, { minLength: NAMES.length, maxLength: NAMES.length }),
    verify: fc.boolean(),
  }),
  maxAlloc: 64 * 1024,
  check(l) {
    const dir = build(l);
    try {
      const [ca, ccert, ckey, scert, skey, crl] = l.entries as [Entry, Entry, Entry, Entry, Entry, Entry];
      try {
        const c = loadClientCertificates(dir);
        expectBytes(c.ca, ca, 'ca-cert.pem');
        expectBytes(c.cert, ccert, 'client-cert.pem');
        expectBytes(c.key, ckey, 'client-key.pem');
        expectBytes(c.crl, crl, 'ca-crl.pem');
      } catch (err) {
        if (err instanceof Finding) throw err;
        expectTyped(err);
      }
      try {
        const s = loadServerCertificates(dir, l.verify);
        expectBytes(s.cert, scert, 'server-cert.pem');
        expectBytes(s.key, skey, 'server-key.pem');
        expectBytes(s.ca, ca, 'ca-cert.pem');
        expectBytes(s.crl, crl, 'ca-crl.pem');
      } catch (err) {
        if (err instanceof Finding) throw err;
        expectTyped(err);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
