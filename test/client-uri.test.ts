// NBD URI parsing and formatting: a table of good and bad URIs.
import { describe, expect, it } from 'vitest';
import { formatNbdUri, isNbdUri, parseNbdUri } from '../src/client/uri.js';
import { tlsFromUri } from '../src/client/connect.js';

// The table has URIs that name local files; the allow-lists have their own tests (uri-allow-list.test.ts).
const LOCAL_FILES = { uriAllowLocalFile: true };

const good: Array<[string, Record<string, unknown>]> = [
  ['nbd://example.com:10809/export', { transport: 'tcp', tls: false, host: 'example.com', port: 10809, exportName: 'export' }],
  ['nbd://example.com', { host: 'example.com', port: 10809, exportName: '' }],
  ['nbd://example.com/', { exportName: '' }],
  ['nbd://example.com//disk', { exportName: '/disk' }],
  ['nbd://example.com/hello%20world', { exportName: 'hello world' }],
  ['nbd://[::1]:12345/x', { host: '::1', port: 12345, exportName: 'x' }],
  ['nbd://[fe80::1]/', { host: 'fe80::1', port: 10809 }],
  // An IPv6 zone id (RFC 6874: '%' written %25); the fuzz target found one that did not round-trip.
  ['nbd://[fe80::1%25eth0]:10809/', { host: 'fe80::1%eth0', port: 10809 }],
  ['nbd+tcp://--@[00:0:000:00:00:10.10.100.%25]/?tls-verify-peer=false', { host: '00:0:000:00:00:10.10.100.%', username: '--' }],
  ['nbd://127.0.0.1:9/a/b', { host: '127.0.0.1', port: 9, exportName: 'a/b' }],
  ['nbds://alice@host/e', { tls: true, username: 'alice', host: 'host', exportName: 'e' }],
  ['nbd+unix:///disk?socket=/tmp/nbd.sock', { transport: 'unix', socket: '/tmp/nbd.sock', exportName: 'disk' }],
  ['nbd+unix:///?socket=%00/abstract', { socket: '\0/abstract', exportName: '' }],
  ['nbds+unix:///?socket=s&tls-certificates=/etc/pki&tls-verify-peer=false', { tls: true, tlsCertificates: '/etc/pki', tlsVerifyPeer: false }],
  ['nbd+unix:///?socket=s&tls-psk-file=/k.psk&tls-username=bob', { tlsPskFile: '/k.psk', username: 'bob' }],
  ['NBD://Host/e', { host: 'Host', exportName: 'e' }],
  ['nbd+vsock://3:10809/e', { transport: 'vsock', host: '3', port: 10809, exportName: 'e' }],
  ['nbd://h/e?foo=bar', { extra: [['foo', 'bar']] }],
];

const bad: Array<[string, RegExp]> = [
  ['http://example.com/', /unknown scheme/],
  ['example.com', /no scheme|unknown scheme/],
  ['nbd+unix:///disk', /needs a 'socket='/],
  ['nbd+unix://host/disk?socket=s', /takes no host/],
  ['nbd://host:port/', /not a number/],
  ['nbd://host:99999/', /out of range/],
  ['nbd://[::1/', /unterminated/],
  ['nbd://h/%zz', /percent-encoding/],
  ['nbd://h/?socket=/s', /only valid with nbd\+unix/],
  // Found by the URI fuzz target: vsock URIs kept socket= (that formatNbdUri then dropped).
  ['nbd+vsock://3/?socket=/s', /only valid with nbd\+unix/],
  // Also from the fuzz target: a host with brackets inside, or an unbracketed IPv6 address.
  ['nbd://A[::1]:1000/', /bad host/],
  ['nbd://::1:10809/', /bad host/],
  ['nbd:relative', /expected '\/\/'/],
  ['nbds+unix:///?socket=s&tls-verify-peer=maybe', /boolean/],
  ['nbd+vsock://notanumber/', /numeric CID/],
  ['nbd://h/a%00b', /NUL/],
];

describe('parseNbdUri', () => {
  it.each(good)('%s', (uri, want) => {
    expect(parseNbdUri(uri, LOCAL_FILES)).toMatchObject(want);
  });
  it.each(bad)('rejects %s', (uri, why) => {
    expect(() => parseNbdUri(uri)).toThrow(why);
    try {
      parseNbdUri(uri);
    } catch (e) {
      expect(e).toMatchObject({ name: 'NbdError', code: 'EINVAL' });
    }
  });
});

describe('formatNbdUri', () => {
  it('formats what nbdinfo prints as uri:', () => {
    expect(formatNbdUri({ tls: false, transport: 'unix', socket: '/tmp/s', exportName: '' })).toBe('nbd+unix:///?socket=/tmp/s');
    expect(formatNbdUri({ tls: false, transport: 'unix', socket: '/tmp/s', exportName: 'foo bar' })).toBe('nbd+unix:///foo%20bar?socket=/tmp/s');
    expect(formatNbdUri({ tls: false, transport: 'unix', socket: '/tmp/s', exportName: 'a/b' })).toBe('nbd+unix:///a/b?socket=/tmp/s');
    expect(formatNbdUri({ tls: false, transport: 'tcp', host: 'localhost', port: 10809, exportName: '' })).toBe('nbd://localhost:10809/');
    expect(formatNbdUri({ tls: true, transport: 'tcp', host: '::1', port: 99, exportName: 'x' })).toBe('nbds://[::1]:99/x');
    expect(formatNbdUri({ tls: false, transport: 'tcp', host: 'fe80::1%eth0', port: 99, exportName: '' })).toBe('nbd://[fe80::1%25eth0]:99/');
  });
  it.each(good)('round-trips %s', (uri) => {
    const once = parseNbdUri(uri, LOCAL_FILES);
    expect(parseNbdUri(formatNbdUri(once), LOCAL_FILES)).toEqual(once);
  });
});

describe('helpers', () => {
  it('isNbdUri tells URIs from file names', () => {
    expect(isNbdUri('nbd://x')).toBe(true);
    expect(isNbdUri('nbds+unix:///?socket=s')).toBe(true);
    expect(isNbdUri('/dev/sda')).toBe(false);
    expect(isNbdUri('file:///x')).toBe(false);
    expect(isNbdUri('c:\\x')).toBe(false);
  });
  it('nbds URIs require TLS and fill the TLS options', () => {
    expect(tlsFromUri(parseNbdUri('nbd://h/'))).toBeUndefined();
    expect(tlsFromUri(parseNbdUri('nbds://u@h/?tls-psk-file=/k', LOCAL_FILES))).toEqual({ mode: 'require', pskFile: '/k', username: 'u', hostname: 'h' });
    expect(tlsFromUri(parseNbdUri('nbd://h/'), { mode: 'allow' })).toEqual({ mode: 'allow', hostname: 'h' });
  });
});
