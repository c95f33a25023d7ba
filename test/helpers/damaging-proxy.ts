// A Unix-socket proxy that damages one direction of each connection once: a flipped bit, a
// random byte, bytes inserted or dropped, or the connection cut, at a chosen byte of that
// direction's stream. It closes connections that stay quiet for a while, as a dead peer would,
// so a tool waiting for bytes that will never come ends instead of hanging.
import net from 'node:net';

export type Damage = 'flip' | 'byte' | 'insert' | 'drop' | 'cut';

export interface DamageSpec {
  damage: Damage;
  /** Offset in the damaged direction's byte stream. */
  at: number;
  /** 'replies': what the server sends; 'requests': what the client sends. */
  direction: 'replies' | 'requests';
  /** Picks the damage's detail: the bit flipped, the byte written or inserted, how many dropped. */
  value: number;
}

/** Applies one damage to a byte stream passing through, once. */
class Damager {
  private passed = 0;
  private done = false;
  constructor(private readonly spec: DamageSpec) {}

  /** The bytes to forward for `chunk`, or null to cut the connection here. */
  pass(chunk: Buffer): Buffer | null {
    const start = this.passed;
    this.passed += chunk.length;
    if (this.done || this.spec.at >= this.passed) return chunk;
    this.done = true;
    const i = this.spec.at - start;
    const out = Buffer.from(chunk);
    const { value } = this.spec;
    switch (this.spec.damage) {
      case 'flip': out[i]! ^= 1 << (value % 8); return out;
      case 'byte': out[i] = value & 0xff; return out;
      case 'insert': return Buffer.concat([out.subarray(0, i), Buffer.from([value & 0xff, 0xff, 0]), out.subarray(i)]);
      case 'drop': return Buffer.concat([out.subarray(0, i), out.subarray(Math.min(out.length, i + 1 + (value % 8)))]);
      case 'cut': return null;
    }
  }
}

/** Listens on `socket`, forwarding each connection to `target` with `spec` applied. */
export async function startDamagingProxy(
  target: string, socket: string, spec: DamageSpec, idleMs = 1000,
): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    const damager = new Damager(spec);
    let idle: NodeJS.Timeout | undefined;
    const close = (): void => {
      clearTimeout(idle);
      client.destroy();
      upstream.destroy();
    };
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(close, idleMs);
    };
    const forward = (to: net.Socket, damaged: boolean) => (d: Buffer): void => {
      touch();
      const out = damaged ? damager.pass(d) : d;
      if (out === null) close();
      else to.write(out);
    };
    touch();
    client.on('data', forward(upstream, spec.direction === 'requests'));
    upstream.on('data', forward(client, spec.direction === 'replies'));
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', close);
    }
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return server;
}
