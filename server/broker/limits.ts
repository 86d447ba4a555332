import { Duplex } from 'node:stream';
import type net from 'node:net';

/**
 * A guard in front of aedes on every raw MQTT connection. aedes (through mqtt-packet) buffers a
 * packet whole before it parses it, whatever length the fixed header announces, and it does so
 * before the client has signed in: a CONNECT announcing 256 MiB and then streaming bytes made the
 * broker hold them all. The guard reads each fixed header itself (MQTT 3.1.1 §2.2, 5.0 §2.1) and
 * drops the connection as soon as a packet announces more than it may send, so no more than one
 * allowed packet is ever buffered. Before sign-in the allowance is small and total; the number of
 * connections not yet signed in and their time are bounded too.
 */
export interface MqttLimits {
  /** Bytes a connection may send in total before it is signed in (its CONNECT included). */
  preAuthBytes: number;
  /** Largest packet (remaining length) a signed-in client may send, in bytes. */
  maxPacketBytes: number;
  /** Connections not yet signed in, at once; more are closed on arrival. */
  maxPendingConnections: number;
  /** Milliseconds from TCP accept to a successful sign-in; later the connection is closed. */
  connectTimeoutMs: number;
  /** Status messages per device and second that reach the database; beyond, coalesced (status-rate.ts). */
  statusPerSecond: number;
  /** Status messages a device may send at once before the rate applies. */
  statusBurst: number;
  /**
   * Messages aedes delivers at once (its `concurrency`, mqemitter's in-flight bound); more wait
   * in its queue. aedes' default, 100, let a phase of 1,000 devices go out 100 at a time, each
   * hundred a turn of the event loop later, behind the reports the first ones brought back.
   */
  deliveryConcurrency: number;
}

export const defaultMqttLimits: MqttLimits = {
  preAuthBytes: 8 * 1024, // a CONNECT carries a client id, a user name, a token and maybe a small will
  maxPacketBytes: 64 * 1024, // status messages are at most 16 KiB (protocol/messages.ts)
  maxPendingConnections: 256,
  connectTimeoutMs: 10_000,
  statusPerSecond: 2, // convoyd reports each state change and download progress once a second
  statusBurst: 20, // an update's state changes arrive within milliseconds of each other
  // A phase of thousands of devices goes out in one turn; each message in flight holds about a KiB.
  deliveryConcurrency: 5_000,
};

const CONNECT = 1;

/**
 * The pure core: follows packet boundaries through a byte stream without keeping any packet
 * bytes. `feed` answers why the connection must end, or undefined while it may go on.
 */
export function createPacketMeter(limits: Pick<MqttLimits, 'preAuthBytes' | 'maxPacketBytes'>) {
  let authenticated = false;
  let preAuthSeen = 0;
  let packets = 0;
  // Fixed header being read: the type byte, then up to 4 bytes of remaining length.
  let inHeader = true;
  let headerBytes = 0;
  let type = 0;
  let length = 0;
  let multiplier = 1;
  let bodyLeft = 0;

  const onHeader = (): string | undefined => {
    packets++;
    if (!authenticated && packets === 1 && type !== CONNECT) return `the first packet is type ${type}, not CONNECT`;
    if (!authenticated) {
      const total = preAuthSeen + length;
      if (total > limits.preAuthBytes) return `${length} bytes announced before sign-in, over the ${limits.preAuthBytes}-byte allowance`;
    } else if (length > limits.maxPacketBytes) {
      return `a packet of ${length} bytes announced, over the ${limits.maxPacketBytes}-byte limit`;
    }
    return undefined;
  };

  return {
    /** The client signed in: from now on each packet is bounded by maxPacketBytes instead. */
    authenticated() {
      authenticated = true;
    },
    feed(chunk: Buffer): string | undefined {
      if (!authenticated) {
        preAuthSeen += chunk.length;
        if (preAuthSeen > limits.preAuthBytes) return `more than ${limits.preAuthBytes} bytes before sign-in`;
      }
      let i = 0;
      while (i < chunk.length) {
        if (!inHeader) {
          const take = Math.min(bodyLeft, chunk.length - i);
          bodyLeft -= take;
          i += take;
          if (bodyLeft === 0) inHeader = true;
          continue;
        }
        const byte = chunk[i++]!;
        if (headerBytes === 0) {
          type = byte >> 4;
          length = 0;
          multiplier = 1;
          headerBytes = 1;
          continue;
        }
        headerBytes++;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if (byte & 0x80) {
          // §2.2.3: at most four bytes of remaining length.
          if (headerBytes > 4) return 'a malformed remaining length';
          continue;
        }
        headerBytes = 0;
        const refusal = onHeader();
        if (refusal) return refusal;
        if (length > 0) {
          inHeader = false;
          bodyLeft = length;
        }
      }
      return undefined;
    },
  };
}

export type PacketMeter = ReturnType<typeof createPacketMeter>;

/**
 * The raw socket seen through the meter: aedes reads and writes this stream; bytes reach it only
 * after the meter let them through, and the socket is destroyed at the first refusal.
 */
export class GuardedConnection extends Duplex {
  readonly meter: PacketMeter;
  /** Why the guard closed the connection, once it did. */
  refusal: string | undefined;
  private readonly socket: net.Socket;

  constructor(socket: net.Socket, meter: PacketMeter) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.meter = meter;
    socket.on('data', (chunk: Buffer) => {
      const refusal = meter.feed(chunk);
      if (refusal) return this.refuse(refusal);
      // Backpressure: stop reading the socket while aedes has not taken what it has.
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (error) => this.destroy(error));
    socket.on('close', () => this.destroy());
  }

  refuse(reason: string): void {
    if (this.refusal) return;
    this.refusal = reason;
    this.socket.destroy();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    this.socket.write(chunk, (error) => callback(error ?? null));
  }

  /**
   * The pieces written together (a packet: mqtt-packet writes a PUBLISH as five or six small
   * corked chunks) reach the socket as one write. Without this, Duplex handed them to `_write` one
   * by one, each after the previous one's callback, a system call each: in a phase of 1,000
   * notices, ~5,000 socket writes and their stream bookkeeping, a cost bare aedes (writing to the
   * socket itself, which has `_writev`) does not pay.
   */
  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) return callback();
    const bytes = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.socket.write(bytes, (error) => callback(error ?? null));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

export interface ConnectionGuard {
  /** Wraps a new TCP connection, or closes it and answers undefined when too many are pending. */
  admit(socket: net.Socket): GuardedConnection | undefined;
  /** The connection signed in: lift the pre-auth bounds. */
  authenticated(connection: unknown): void;
  /** Connections not signed in yet. */
  readonly pending: number;
  close(): void;
}

export function createConnectionGuard(limits: MqttLimits, onRefused: (reason: string, remote: string | undefined) => void): ConnectionGuard {
  const pending = new Map<GuardedConnection, NodeJS.Timeout>();
  const settle = (connection: GuardedConnection) => {
    clearTimeout(pending.get(connection));
    pending.delete(connection);
  };
  return {
    admit(socket) {
      if (pending.size >= limits.maxPendingConnections) {
        onRefused(`${pending.size} connections are already waiting to sign in`, socket.remoteAddress);
        socket.destroy();
        return undefined;
      }
      const connection = new GuardedConnection(socket, createPacketMeter(limits));
      const timer = setTimeout(() => {
        connection.refuse(`not signed in within ${limits.connectTimeoutMs} ms`);
      }, limits.connectTimeoutMs);
      timer.unref();
      pending.set(connection, timer);
      const remote = socket.remoteAddress;
      connection.once('close', () => {
        settle(connection);
        if (connection.refusal) onRefused(connection.refusal, remote);
      });
      return connection;
    },
    authenticated(connection) {
      if (!(connection instanceof GuardedConnection)) return;
      connection.meter.authenticated();
      settle(connection);
    },
    get pending() {
      return pending.size;
    },
    close() {
      for (const timer of pending.values()) clearTimeout(timer);
      pending.clear();
    },
  };
}
