import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import test from 'ava';
import mqtt from 'mqtt';
import { defaultMqttLimits } from '../../server/broker/limits.ts';
import { provisionDevice } from '../helpers/device.ts';
import { withServer } from '../helpers/server.ts';

/*
 * Issue #14 item 3: before authentication a client must not make the broker buffer more than a
 * few KiB. The attack: a CONNECT whose fixed header announces a ~256 MiB packet, then bytes
 * streamed as fast as the server takes them, from several connections at once.
 */

/** MQTT §2.2.3 variable byte integer. */
function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** Streams up to `total` bytes of a huge CONNECT; resolves with the bytes the server took before it closed the socket. */
async function streamHugeConnect(port: number, total: number): Promise<{ sent: number; closedByServer: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  const chunk = Buffer.alloc(256 * 1024, 0x41);
  let sent = 0;
  socket.write(Buffer.concat([Buffer.from([0x10]), remainingLength(268_435_455)]));
  while (sent < total && !closed) {
    sent += chunk.length;
    // once() rejects on 'error' (the server resets the connection): that ends the stream too.
    if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]).catch(() => {});
  }
  const closedByServer = closed;
  socket.destroy();
  return { sent, closedByServer };
}

test('unauthenticated MQTT clients announcing huge packets are cut off and the server memory stays flat', async (t) => {
  t.timeout(120_000);
  await withServer(t, async (server) => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    const attacks = await Promise.all([0, 1, 2, 3].map(() => streamHugeConnect(server.mqttPort, 64 * 1024 * 1024)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const grown = process.memoryUsage().rss - before;
    t.log(`4 connections streaming a 256 MiB CONNECT: sent ${attacks.map((a) => (a.sent / 1024).toFixed(0) + ' KiB').join(', ')}; RSS grew ${(grown / 1024 ** 2).toFixed(1)} MiB`);
    t.true(attacks.every((a) => a.closedByServer), 'the server closed every attacking connection');
    // What the client counts as sent includes its own and the kernel's loopback buffers.
    t.true(attacks.every((a) => a.sent <= 16 * 1024 * 1024), 'each was cut within a few socket buffers');
    t.true(grown < 64 * 1024 ** 2, `RSS grew ${(grown / 1024 ** 2).toFixed(1)} MiB`);

    // A legitimate device still signs in afterwards.
    const dir = await provisionDevice(server, 'till-1', 'shop');
    const token = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'till-1', password: token, clientId: 'convoyd-till-1', reconnectPeriod: 0 });
    await client.endAsync();
    await fs.rm(dir, { recursive: true, force: true });
  });
});

test('connections waiting to sign in are bounded in number and time; a signed-in client is bounded per packet', async (t) => {
  t.timeout(60_000);
  const limits = { ...defaultMqttLimits, preAuthBytes: 8 * 1024, maxPacketBytes: 32 * 1024, maxPendingConnections: 3, connectTimeoutMs: 1_000 };
  await withServer(
    t,
    async (server) => {
      const open = async () => {
        const socket = net.connect(server.mqttPort, '127.0.0.1');
        socket.on('error', () => {});
        await once(socket, 'connect');
        const closedAt = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
        return { socket, closedAt };
      };
      const started = Date.now();
      const idle = [await open(), await open(), await open()];
      const fourth = await open();
      const fourthClosed = await fourth.closedAt;
      t.true(fourthClosed - started < 900, 'a connection beyond the pending bound is closed at once');
      const closed = await Promise.all(idle.map((c) => c.closedAt));
      t.true(closed.every((at) => at - started >= 900), 'idle connections live until the connect deadline');
      t.true(closed.every((at) => at - started < 5_000), 'and not much longer');

      const dir = await provisionDevice(server, 'till-1', 'shop');
      const token = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'till-1', password: token, clientId: 'convoyd-till-1', reconnectPeriod: 0 });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      t.true(client.connected, 'a signed-in client outlives the connect deadline');
      const dropped = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.publish('convoy/devices/till-1/status', Buffer.alloc(64 * 1024, 0x20), { qos: 0 });
      await dropped;
      t.pass('a packet over maxPacketBytes ends the connection');
      client.end(true);
      await fs.rm(dir, { recursive: true, force: true });
    },
    { mqttLimits: limits },
  );
});

test('the packet meter follows packet boundaries across chunks and refuses by the announced length', async (t) => {
  const { createPacketMeter } = await import('../../server/broker/limits.ts');
  const meter = createPacketMeter({ preAuthBytes: 100, maxPacketBytes: 300 });
  t.is(meter.feed(Buffer.from([0x30, 0x02, 0, 0])), 'the first packet is type 3, not CONNECT');
  const connect = createPacketMeter({ preAuthBytes: 100, maxPacketBytes: 300 });
  t.is(connect.feed(Buffer.from([0x10])), undefined, 'a header split over chunks');
  t.is(connect.feed(Buffer.from([10, 1, 2, 3])), undefined);
  t.is(connect.feed(Buffer.alloc(7)), undefined);
  connect.authenticated();
  t.is(connect.feed(Buffer.from([0x30, 0xac, 0x02])), undefined, '300 bytes are allowed after sign-in');
  t.is(connect.feed(Buffer.alloc(300)), undefined);
  t.regex(connect.feed(Buffer.from([0x30, 0xad, 0x02])) ?? '', /301 bytes announced/);
  t.is(createPacketMeter({ preAuthBytes: 100, maxPacketBytes: 300 }).feed(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])), 'a malformed remaining length');
  t.regex(createPacketMeter({ preAuthBytes: 100, maxPacketBytes: 300 }).feed(Buffer.from([0x10, 0xff, 0x7f])) ?? '', /before sign-in/);
});

test('a packet the broker writes through the guard reaches the socket in one write, not one per piece', async (t) => {
  const { GuardedConnection, createPacketMeter } = await import('../../server/broker/limits.ts');
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  try {
    // Counts the writes that reach the real socket (each may be a system call of its own).
    let writes = 0;
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((...args: unknown[]) => {
      writes++;
      return write(...args);
    }) as typeof socket.write;
    const connection = new GuardedConnection(socket, createPacketMeter(defaultMqttLimits));
    const received: Buffer[] = [];
    client.on('data', (chunk: Buffer) => received.push(chunk));
    // As aedes writes a QoS 1 notice through mqtt-packet's writeToStream: the fixed header, the
    // length, the topic, the message id and the payload as separate writes, corked until the next tick.
    const packets = 20;
    const pieces = (i: number) => [Buffer.from([0x33]), Buffer.from([60]), Buffer.from(`\0\x1dconvoy/v1/devices/d${String(i).padStart(2, '0')}/release`), Buffer.from([0, i]), Buffer.from('{"type":"release"}')];
    for (let i = 1; i <= packets; i++) {
      connection.cork();
      for (const piece of pieces(i)) connection.write(piece);
      process.nextTick(() => connection.uncork());
    }
    const expected = Buffer.concat(Array.from({ length: packets }, (_, i) => Buffer.concat(pieces(i + 1))));
    while (Buffer.concat(received).length < expected.length) await once(client, 'data');
    t.deepEqual(Buffer.concat(received), expected, 'the same bytes, in order');
    t.true(writes <= packets, `${writes} socket writes for ${packets} packets of 5 pieces`);
  } finally {
    client.destroy();
    socket.destroy();
    server.close();
  }
});
