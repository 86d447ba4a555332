import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import test from 'ava';
import { adminToken, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Issue #14 item 6: a one-request upload trickling in must not hold anything the blob collector
 * waits for (while the collector waited, every new upload, artifact edit and OCI manifest push
 * hung behind it), and a request body that goes silent is cut after an idle timeout.
 */

/** Starts a PUT that declares `length` bytes and sends only the first `sent`; the socket stays open. */
function startTrickle(server: TestServer, urlPath: string, length: number, sent: number) {
  const request = http.request(`${server.url}${urlPath}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/octet-stream', 'content-length': String(length) },
  });
  const answer = new Promise<{ status: number; body: string } | { closed: true }>((resolve) => {
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.on('error', () => resolve({ closed: true }));
    request.on('close', () => setTimeout(() => resolve({ closed: true }), 50));
  });
  request.write(Buffer.alloc(sent, 0x61));
  return { request, answer, rest: () => request.end(Buffer.alloc(length - sent, 0x61)) };
}

const within = <T>(promise: Promise<T>, ms: number): Promise<T | 'timed out'> =>
  Promise.race([promise, new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), ms))]);

test('the blob collector and other writers do not wait for an upload that trickles', async (t) => {
  t.timeout(60_000);
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const slow = startTrickle(server, '/api/v1/bundles/pos/versions/1.0.0/files/slow.bin', 64 * 1024, 1024);
    // The upload is streaming into its temp file once one shows in uploads/.
    await waitFor('the upload to start writing', async () => ((await fs.readdir(path.join(server.dataDir, 'blobs', 'uploads'))).length > 0 ? true : undefined));
    t.not(await within(server.collectGarbage(), 5_000), 'timed out', 'the collector ran while the upload trickles');
    const other = await within(server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/files/fast.bin', { body: Buffer.from('fast'), headers: { 'content-type': 'application/octet-stream' } }), 5_000);
    t.is(other === 'timed out' ? other : other.status, 201, 'another upload went through meanwhile');
    slow.rest();
    const done = await slow.answer;
    t.is('status' in done ? done.status : 'closed', 201, 'the trickling upload still completes');
    const names = (await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts')).body.map((a: { name: string }) => a.name).sort();
    t.deepEqual(names, ['fast.bin', 'slow.bin']);
  });
});

test('a request body idle longer than the body idle timeout is cut, and the upload leaves nothing', async (t) => {
  t.timeout(60_000);
  await withServer(
    t,
    async (server) => {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      const started = Date.now();
      const idle = startTrickle(server, '/api/v1/bundles/pos/versions/1.0.0/files/idle.bin', 1024 * 1024, 10);
      const outcome = await within(idle.answer, 8_000);
      t.not(outcome, 'timed out', 'the server ended the idle upload');
      t.true(Date.now() - started >= 900, 'not before the timeout');
      t.true(server.logs.some((l) => l.includes('request body idle')), 'and said so in its log');
      idle.request.destroy();
      t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts')).status, 404, 'no draft was left behind');
      await waitFor('the temp file to be removed', async () => ((await fs.readdir(path.join(server.dataDir, 'blobs', 'uploads'))).length === 0 ? true : undefined), 5_000);
    },
    { bodyIdleTimeoutMs: 1_000 },
  );
});
