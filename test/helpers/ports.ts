import net from 'node:net';

/**
 * A TCP port free on loopback now, for a process started next that takes its port as a setting
 * (Mosquitto, a server in a child process). Tests and benchmarks share this one copy.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
