import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { adminToken, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/** Sends the headers and part of the body, then drops the connection, as a crashed client would. */
async function truncatedPut(server: TestServer, urlPath: string, declared: number, sent: number): Promise<void> {
  const socket = net.connect(server.httpPort, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(`PUT ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${adminToken}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
  socket.write(Buffer.alloc(sent, 7));
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.destroy();
}

test('truncated uploads store nothing: no blob, no artifact, no draft, no temp file', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    await truncatedPut(server, '/api/v1/bundles/pos/versions/3.0.0/files/app.bin', 1_000_000, 300_000);
    await truncatedPut(server, `/api/v1/blobs/${sha256Digest(Buffer.alloc(1_000_000, 7))}`, 1_000_000, 300_000);
    const uploads = path.join(server.dataDir, 'blobs', 'uploads');
    await waitFor('temp files to be removed', async () => ((await fs.readdir(uploads)).length === 0 ? true : undefined), 20_000);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/3.0.0')).status, 404);
    t.deepEqual(await fs.readdir(path.join(server.dataDir, 'blobs', 'sha256')), []);
    const answer = await server.api('PUT', '/api/v1/bundles/pos/versions/3.0.0/files/app.bin', { body: Buffer.from('complete') });
    t.is(answer.status, 201, 'the server is still fine');
  });
});

test('oversized headers and bodies are refused before they are read whole', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const headers = await server.api('GET', '/api/v1/bundles', { headers: { 'x-padding': 'y'.repeat(70_000) } });
    t.is(headers.status, 431);
    const big = await server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/files/huge', { body: Buffer.alloc(4096), headers: { 'content-type': 'application/octet-stream' } });
    t.is(big.status, 201);
    await withServer(t, async (small) => {
      await small.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
      const refused = await small.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/files/huge', { body: Buffer.alloc(4096) });
      t.is(refused.status, 413);
      t.is(refused.body.error.code, 'payload_too_large');
      t.is((await small.api('GET', '/api/v1/bundles/pos/versions/1.0.0')).status, 404);
    }, { maxBlobBytes: 1024 });
  });
});
