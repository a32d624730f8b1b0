/** Network helpers shared by the tests that start servers (the lab, torchrun's rendezvous). */
import { createServer } from 'node:net';

/** A TCP port nothing listens on now, so two runs on one machine do not collide. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
