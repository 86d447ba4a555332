import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { downloadVerified } from '../../lib/download.ts';
import { createRootCa, createServerCertificate } from '../../certs/pki.ts';
import { UpdateError } from '../../device/errors.ts';
import { adminToken, makeTempDir, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

const MiB = 1024 * 1024;

async function putBlob(server: TestServer, bytes: Buffer): Promise<{ url: string; sha256: string }> {
  const digest = sha256Digest(bytes);
  const put = await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201 && put.status !== 200) throw new Error(`blob upload answered ${put.status}`);
  return { url: `${server.url}/api/v1/blobs/${digest}`, sha256: digest.slice('sha256:'.length) };
}

// Each test runs over node:http (the daemon's transport) and over the socket read into one reused
// buffer (lib/raw-get.ts, what an edge mirroring its origin uses).
const transports = [
  { name: 'node:http', options: {} },
  { name: 'raw socket', options: { readBufferBytes: MiB } },
] as const;

for (const transport of transports) {
  test(`a download synced every MiB arrives whole, verified, under its final name (${transport.name})`, async (t) => {
    await withServer(t, async (server) => {
      const bytes = randomBytes(6 * MiB + 123);
      const blob = await putBlob(server, bytes);
      const dir = await makeTempDir('convoy-fetch-');
      t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
      const destination = path.join(dir, 'blob.bin');
      const result = await downloadVerified({ ...blob, ...transport.options, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB });
      t.like(result, { resumedFrom: 0, received: bytes.length, cached: false });
      t.true((await fs.readFile(destination)).equals(bytes));
      await t.throwsAsync(fs.access(`${destination}.part`), undefined, 'no part file is left');
    });
  });

  test(`a transfer stopped midway keeps the bytes it had and resumes after them (Range, ${transport.name})`, async (t) => {
    await withServer(t, async (server) => {
      const bytes = randomBytes(8 * MiB);
      const blob = await putBlob(server, bytes);
      const dir = await makeTempDir('convoy-fetch-');
      t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
      const destination = path.join(dir, 'blob.bin');
      const stop = new AbortController();
      const error = await t.throwsAsync(
        downloadVerified({ ...blob, ...transport.options, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB, signal: stop.signal, onProgress: (n) => n >= 3 * MiB && stop.abort() }),
        { instanceOf: UpdateError },
      );
      t.regex(error!.message, /daemon is stopping/);
      const kept = (await fs.stat(`${destination}.part`)).size;
      t.true(kept >= 3 * MiB && kept < bytes.length, `kept ${kept} bytes`);
      t.true((await fs.readFile(`${destination}.part`)).equals(bytes.subarray(0, kept)));

      const resumed = await downloadVerified({ ...blob, ...transport.options, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB });
      t.like(resumed, { resumedFrom: kept, received: bytes.length - kept, cached: false });
      t.true((await fs.readFile(destination)).equals(bytes));
    });
  });
}

/** A bare HTTP/1.1 server on loopback that answers every request with `answer`, written as given. */
async function withRawServer(t: ExecutionContext, answer: (socket: net.Socket, request: string) => Promise<void> | void): Promise<string> {
  const server = net.createServer((socket) => {
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (seen.includes('\r\n\r\n')) void Promise.resolve(answer(socket, seen)).catch(() => socket.destroy());
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`;
}

const sha256Hex = (bytes: Buffer) => sha256Digest(bytes).slice('sha256:'.length);

test('raw socket: a head split over many reads and a body in small pieces arrive whole', async (t) => {
  const bytes = randomBytes(3 * MiB + 7);
  const url = await withRawServer(t, async (socket) => {
    const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\nETag: "x"\r\n\r\n`, 'latin1');
    // The head a few bytes at a time, the first body bytes in the same write as its end.
    for (let at = 0; at < head.length - 4; at += 5) {
      socket.write(head.subarray(at, Math.min(at + 5, head.length - 4)));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    socket.write(Buffer.concat([head.subarray(head.length - 4), bytes.subarray(0, 100)]));
    for (let at = 100; at < bytes.length; at += 200_000) socket.write(bytes.subarray(at, at + 200_000));
    socket.end();
  });
  const dir = await makeTempDir('convoy-fetch-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const destination = path.join(dir, 'blob.bin');
  const result = await downloadVerified({ url, destination, length: bytes.length, sha256: sha256Hex(bytes), stallTimeoutMs: 10_000, readBufferBytes: 64 * 1024 });
  t.like(result, { resumedFrom: 0, received: bytes.length, cached: false });
  t.true((await fs.readFile(destination)).equals(bytes));
});

test('raw socket: a chunked body (a proxy that re-frames) is fetched again through node:http and verified', async (t) => {
  const bytes = randomBytes(300_000);
  let requests = 0;
  const url = await withRawServer(t, (socket) => {
    requests++;
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
    for (let at = 0; at < bytes.length; at += 100_000) {
      const piece = bytes.subarray(at, at + 100_000);
      socket.write(`${piece.length.toString(16)}\r\n`);
      socket.write(piece);
      socket.write('\r\n');
    }
    socket.end('0\r\n\r\n');
  });
  const dir = await makeTempDir('convoy-fetch-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const destination = path.join(dir, 'blob.bin');
  await downloadVerified({ url, destination, length: bytes.length, sha256: sha256Hex(bytes), stallTimeoutMs: 10_000, readBufferBytes: MiB });
  t.true((await fs.readFile(destination)).equals(bytes));
  t.is(requests, 2, 'asked once raw, once through node:http');
});

test('raw socket: a body cut short keeps its bytes for a resume; one longer than signed is refused', async (t) => {
  const bytes = randomBytes(2 * MiB + 5);
  let cut = true;
  const url = await withRawServer(t, (socket, request) => {
    const from = Number(/range: bytes=(\d+)-/i.exec(request)?.[1] ?? 0);
    if (cut) {
      cut = false;
      // Announces the whole blob, sends a bit more than one MiB, then the link drops.
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\n\r\n`);
      socket.end(bytes.subarray(0, MiB + 1000));
      return;
    }
    t.true(/if-range: "sha256:[0-9a-f]{64}"/i.test(request), 'the resume names the blob it continues');
    socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${from}-${bytes.length - 1}/${bytes.length}\r\nContent-Length: ${bytes.length - from}\r\n\r\n`);
    socket.end(bytes.subarray(from));
  });
  const dir = await makeTempDir('convoy-fetch-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const destination = path.join(dir, 'blob.bin');
  const request = { url, destination, length: bytes.length, sha256: sha256Hex(bytes), stallTimeoutMs: 10_000, readBufferBytes: 256 * 1024 };
  const error = await t.throwsAsync(downloadVerified(request), { instanceOf: UpdateError });
  t.regex(error!.message, /ended after/);
  const kept = (await fs.stat(`${destination}.part`)).size;
  t.is(kept, MiB + 1000, 'every byte that arrived is kept');
  t.like(await downloadVerified(request), { resumedFrom: kept, received: bytes.length - kept });
  t.true((await fs.readFile(destination)).equals(bytes));

  const longer = await withRawServer(t, (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length + 10}\r\n\r\n`);
    socket.end(Buffer.concat([bytes, Buffer.alloc(10)]));
  });
  const refused = await t.throwsAsync(downloadVerified({ ...request, url: longer, destination: path.join(dir, 'longer.bin') }), { instanceOf: UpdateError });
  t.is(refused!.code, 'size_mismatch');
});

test('with the raw reader asked for, an https: origin is read through node:http, whole (the raw reader is plain http only)', async (t) => {
  const root = createRootCa({ name: 'fetch test CA', now: new Date() });
  const cert = createServerCertificate({ issuer: root, dns: ['localhost'], ip: ['127.0.0.1'], now: new Date() });
  // A body of several reads, then the end of the connection: over TLS the raw reader once lost
  // the last bytes here.
  const bytes = randomBytes(5 * MiB + 3);
  const server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => {
    res.writeHead(200, { 'content-length': bytes.length, connection: 'close' });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  // node:http's https requests go through the global agent: it trusts the test CA for this test.
  const previous = https.globalAgent.options.ca;
  https.globalAgent.options.ca = root.certPem;
  t.teardown(() => void (https.globalAgent.options.ca = previous));
  const dir = await makeTempDir('convoy-fetch-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const destination = path.join(dir, 'blob.bin');
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/blob`;
  t.like(await downloadVerified({ url, destination, length: bytes.length, sha256: sha256Hex(bytes), stallTimeoutMs: 10_000, readBufferBytes: MiB }), { received: bytes.length });
  t.true((await fs.readFile(destination)).equals(bytes));
});
