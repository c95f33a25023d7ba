// The send-buffer option of NBD destination connections: the size really reaches the kernel.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { socketPair } from '../src/sys/socket.js';
import { getSendBufferSize, setSendBufferSize } from '../src/sys/socket-buffer.js';
import { connect } from '../src/client/index.js';
import { startEmbedded } from './helpers/embedded.js';

const MiB = 1 << 20;
let closeLater: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closeLater.splice(0).reverse()) await c();
});

function fdOf(stream: unknown): number {
  return (stream as { _handle: { fd: number } })._handle.fd;
}

describe('socket send buffer', () => {
  it('setSendBufferSize grows a Unix socket buffer (past wmem_max as root)', () => {
    const [a, b] = socketPair();
    closeLater.push(() => { fs.closeSync(a); fs.closeSync(b); });
    const before = getSendBufferSize(a);
    expect(before).toBeGreaterThan(0);
    setSendBufferSize(a, 4 * MiB);
    const after = getSendBufferSize(a);
    const wmemMax = Number(fs.readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
    const root = process.getuid?.() === 0;
    // Linux doubles the value asked (bookkeeping overhead); without privilege it stops at wmem_max.
    expect(after).toBe(root ? 8 * MiB : Math.max(before, 2 * Math.min(4 * MiB, wmemMax)));
  });

  it('connect({ sendBufferSize }) applies it to the connection socket; without it the default stays', async () => {
    const server = await startEmbedded({ backend: ['memory', '1M'] });
    closeLater.push(() => server.stop());
    const big = await connect(server.uri, { sendBufferSize: 4 * MiB });
    closeLater.push(() => big.close());
    const plain = await connect(server.uri);
    closeLater.push(() => plain.close());
    const streamFd = (c: unknown): number => fdOf((c as { stream: unknown }).stream);
    const wmemDefault = Number(fs.readFileSync('/proc/sys/net/core/wmem_default', 'utf8'));
    expect(getSendBufferSize(streamFd(plain))).toBe(wmemDefault);
    const wmemMax = Number(fs.readFileSync('/proc/sys/net/core/wmem_max', 'utf8'));
    const root = process.getuid?.() === 0;
    expect(getSendBufferSize(streamFd(big))).toBe(root ? 8 * MiB : Math.max(wmemDefault, 2 * Math.min(4 * MiB, wmemMax)));
  });
});
