// A connected pair of real Unix sockets (native handles, as the client and server use).
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';

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
