// The parsers of text users and files give us: NBD URIs, nbdcopy's and nbdinfo's command
// lines, and psktool key files. Each input is valid text (from the parser's own vocabulary),
// damaged text, or arbitrary text; the parser returns a result or throws its typed error.
import fc from 'fast-check';
import { formatNbdUri, parseNbdUri, type NbdUri } from '../../../src/client/uri.js';
import { NbdError } from '../../../src/protocol/errors.js';
import { longOptionsText, parseNbdcopyArgs, shortOptionsText } from '../../../src/cli/nbdcopy-args.js';
import { LONG_OPTIONS, parseArgs, SHORT_OPTIONS, UsageError } from '../../../src/info/argv.js';
import { parsePskFile } from '../../../src/tls/psk-file.js';
import { expectTyped, Finding, traffic, type FuzzTarget, type Traffic } from '../harness.js';

/** Damaged text: the bytes of valid text mutated, read back as UTF-8. */
function text<M>(valid: fc.Arbitrary<{ model: M; text: string }>): fc.Arbitrary<Traffic<M> & { text: string }> {
  const asBytes = valid.map((v) => ({ model: v.model, bytes: Buffer.from(v.text, 'utf8') }));
  return fc.oneof(
    { weight: 8, arbitrary: traffic(asBytes).map((t) => ({ ...t, text: t.bytes.toString('utf8') })) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.string({ unit: 'binary', maxLength: 80 })).map(([v, s]) => ({ model: v.model, bytes: Buffer.alloc(0), intact: false, text: s })) },
  );
}

const word = fc.stringMatching(/^[a-zA-Z0-9._~-]{0,12}$/);
const anyText = fc.string({ unit: 'grapheme', maxLength: 12 });

const uriModel = fc.record({
  scheme: fc.constantFrom('nbd', 'nbds', 'nbd+unix', 'nbds+unix', 'nbd+vsock', 'nbds+vsock', 'nbd+tcp'),
  user: fc.option(word, { nil: undefined }),
  host: fc.oneof(word, fc.ipV4(), fc.ipV6().map((h) => `[${h}]`), fc.nat(0xffffffff).map(String)),
  port: fc.option(fc.oneof(fc.nat(65535), fc.nat()), { nil: undefined }),
  path: anyText,
  query: fc.array(fc.tuple(
    fc.constantFrom('socket', 'tls-certificates', 'tls-verify-peer', 'tls-psk-file', 'tls-type', 'tls-username', 'tls-hostname', 'other'),
    fc.oneof(anyText, fc.constantFrom('true', 'false', 'on', '0', 'x')),
  ), { maxLength: 4 }),
});

const validUri = uriModel.map((m) => {
  const authority = m.scheme.includes('unix') ? '' : `${m.user !== undefined ? m.user + '@' : ''}${m.host}${m.port !== undefined ? ':' + m.port : ''}`;
  const q = m.query.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  return { model: m, text: `${m.scheme}://${authority}/${encodeURIComponent(m.path)}${q ? '?' + q : ''}` };
});

/** Field order and absent-vs-undefined do not matter. */
function canonical(u: NbdUri): string {
  const o = u as unknown as Record<string, unknown>;
  return JSON.stringify(Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
}

function sameUri(a: NbdUri, b: NbdUri): boolean {
  return canonical(a) === canonical(b);
}

const ALLOW_ALL = { uriAllowLocalFile: true };

export const uriTarget: FuzzTarget<Traffic<unknown> & { text: string }> = {
  name: 'URI parser',
  input: text(validUri),
  maxAlloc: 64 * 1024,
  check({ text: uri }) {
    let u: NbdUri;
    try {
      u = parseNbdUri(uri, ALLOW_ALL);
    } catch (err) {
      expectTyped(err);
      return;
    }
    // libnbd's default allow-list refuses exactly the URIs that name local files.
    const namesFile = u.tlsPskFile !== undefined || u.tlsCertificates !== undefined;
    const byDefault = (() => { try { return parseNbdUri(uri); } catch (err) { return err; } })();
    const refused = byDefault instanceof NbdError && byDefault.code === 'EPERM';
    if (refused !== namesFile) throw new Finding(`${JSON.stringify(uri)}: default allow-list ${refused ? 'refused' : 'accepted'} it`);
    // What parses must format back to a URI that parses the same.
    let again: NbdUri;
    try {
      again = parseNbdUri(formatNbdUri(u), ALLOW_ALL);
    } catch (err) {
      throw new Finding(`parsed ${JSON.stringify(uri)} but its formatted form does not parse: ${(err as Error).message}`);
    }
    if (!sameUri(u, again)) throw new Finding(`${JSON.stringify(uri)}: format/parse changes ${JSON.stringify(u)} into ${JSON.stringify(again)}`);
  },
};

/** Command lines built from a tool's own options (long, abbreviated, short, clustered) and values. */
function argv(longs: string[], shorts: string[]): fc.Arbitrary<{ model: string[]; text: string }> {
  const value = fc.oneof(fc.constantFrom('0', '1', '4', '512', '1M', '32k', '-1', '1e3', '', 'nbd://x/', 'null:', 'a.img', '-', '[', ']'), anyText);
  const longWord = fc.tuple(fc.constantFrom(...longs), fc.nat(8), fc.option(value, { nil: undefined }))
    .map(([o, cut, v]) => `--${cut > 0 ? o.slice(0, Math.max(1, o.length - cut)) : o}${v !== undefined ? '=' + v : ''}`);
  const shortWord = fc.array(fc.constantFrom(...shorts), { minLength: 1, maxLength: 3 }).map((s) => `-${s.join('')}`);
  const w = fc.oneof(longWord, shortWord, value, fc.constantFrom('--', '[', ']', 'nbdkit', 'nbd+unix:///?socket=/s'));
  // Words are joined with NUL for damaging, so a mutation can also split or merge words.
  return fc.array(w, { maxLength: 8 }).map((ws) => ({ model: ws, text: ws.join('\0') }));
}

const nbdcopyLongs = longOptionsText().trim().split('\n').map((l) => l.slice(2));
const nbdcopyShorts = shortOptionsText().trim().split('\n').map((l) => l.slice(1));

export const nbdcopyArgsTarget: FuzzTarget<Traffic<string[]> & { text: string }> = {
  name: 'nbdcopy arguments',
  input: text(argv(nbdcopyLongs, nbdcopyShorts)),
  maxAlloc: 64 * 1024,
  check({ text: t }) {
    try {
      parseNbdcopyArgs(t === '' ? [] : t.split('\0'));
    } catch (err) {
      expectTyped(err);
    }
  },
};

export const nbdinfoArgsTarget: FuzzTarget<Traffic<string[]> & { text: string }> = {
  name: 'nbdinfo arguments',
  input: text(argv(LONG_OPTIONS.map(([name]) => name), [...SHORT_OPTIONS])),
  maxAlloc: 64 * 1024,
  check({ text: t }) {
    try {
      parseArgs(t === '' ? [] : t.split('\0'));
    } catch (err) {
      // nbdinfo's usage errors have their own class (exit 1 with its usage line).
      expectTyped(err, UsageError);
    }
  },
};

const pskModel = fc.array(fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.string({ maxLength: 10 }).filter((u) => !/[\r\n]/.test(u) && u.trim() === u && u !== '' && !u.startsWith('#')), fc.uint8Array({ minLength: 1, maxLength: 32 })) },
  { weight: 1, arbitrary: fc.constantFrom('', '# comment', '   ') },
), { minLength: 1, maxLength: 5 });

const validPsk = pskModel.map((lines) => ({
  model: lines,
  text: lines.map((l) => (typeof l === 'string' ? l : `${l[0]}:${Buffer.from(l[1]).toString('hex')}`)).join('\n') + '\n',
}));

export const pskFileTarget: FuzzTarget<Traffic<typeof pskModel extends fc.Arbitrary<infer L> ? L : never> & { text: string }> = {
  name: 'PSK file parser',
  input: text(validPsk),
  maxAlloc: 64 * 1024,
  check({ model, text: t, intact }) {
    let table;
    try {
      table = parsePskFile(t, 'keys.psk');
    } catch (err) {
      expectTyped(err);
      const keys = model.filter((l) => typeof l !== 'string');
      if (intact && keys.length > 0) throw new Finding(`valid PSK file rejected: ${(err as Error).message}`);
      return;
    }
    if (!intact) return;
    for (const l of model) {
      if (typeof l === 'string') continue;
      const first = model.find((m) => typeof m !== 'string' && m[0] === l[0]) as [string, Uint8Array];
      if (!table.get(l[0])?.equals(Buffer.from(first[1]))) throw new Finding(`key of '${l[0]}' not read back`);
    }
  },
};
