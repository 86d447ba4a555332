import net from 'node:net';

/**
 * A TCP proxy on loopback that misbehaves on purpose, between a device and its server or broker:
 * it can cut every connection after some bytes towards the device, flip one byte, go silent
 * while keeping the connection open (a half-open link), or go away entirely and come back.
 */
export interface FaultOptions {
  /** Destroy each connection after this many bytes towards the client. */
  cutEvery?: number;
  /** Flip the byte at this offset of the client-bound stream, once, in the first connection that reaches it. */
  corruptAt?: number;
  /** In the first connection that reaches this offset, stop forwarding but keep both sides open. */
  stallAt?: number;
}

export interface FaultProxy {
  port: number;
  url(scheme: string): string;
  /** Bytes forwarded towards clients so far. */
  readonly bytesDown: number;
  readonly cuts: number;
  readonly corrupted: boolean;
  readonly stalled: boolean;
  /** Refuse connections and drop the open ones (the peer "goes away"). */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, faults: FaultOptions = {}): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  let bytesDown = 0;
  let cuts = 0;
  let corrupted = false;
  let stalled = false;
  const onConnection = (client: net.Socket) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let sent = 0;
    let silent = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (data: Buffer) => {
      if (silent) return;
      let chunk = Buffer.from(data);
      if (faults.stallAt !== undefined && !stalled && sent + chunk.length > faults.stallAt) {
        stalled = true;
        silent = true;
        chunk = chunk.subarray(0, faults.stallAt - sent);
      }
      if (faults.corruptAt !== undefined && !corrupted && sent + chunk.length > faults.corruptAt) {
        corrupted = true;
        chunk[faults.corruptAt - sent] = chunk[faults.corruptAt - sent]! ^ 0x55;
      }
      if (faults.cutEvery !== undefined && sent + chunk.length >= faults.cutEvery) {
        const part = chunk.subarray(0, faults.cutEvery - sent);
        sent += part.length;
        bytesDown += part.length;
        cuts++;
        client.write(part, end);
        return;
      }
      sent += chunk.length;
      bytesDown += chunk.length;
      // Backpressure: a slow client slows the server, as on a real link (no unbounded buffer).
      if (chunk.length && !client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
  };
  let server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      server.close(() => resolve());
    });
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    get bytesDown() {
      return bytesDown;
    },
    get cuts() {
      return cuts;
    },
    get corrupted() {
      return corrupted;
    },
    get stalled() {
      return stalled;
    },
    down: closeServer,
    async up() {
      server = net.createServer(onConnection);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    close: closeServer,
  };
}
