import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { downloadVerified } from '../../lib/download.ts';
import { UpdateError } from '../../device/errors.ts';
import { adminToken, makeTempDir, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

const MiB = 1024 * 1024;

async function putBlob(server: TestServer, bytes: Buffer): Promise<{ url: string; sha256: string }> {
  const digest = sha256Digest(bytes);
  const put = await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201 && put.status !== 200) throw new Error(`blob upload answered ${put.status}`);
  return { url: `${server.url}/api/v1/blobs/${digest}`, sha256: digest.slice('sha256:'.length) };
}

test('a download synced every MiB arrives whole, verified, under its final name', async (t) => {
  await withServer(t, async (server) => {
    const bytes = randomBytes(6 * MiB + 123);
    const blob = await putBlob(server, bytes);
    const dir = await makeTempDir('convoy-fetch-');
    t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
    const destination = path.join(dir, 'blob.bin');
    const result = await downloadVerified({ ...blob, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB });
    t.deepEqual(result, { resumedFrom: 0, received: bytes.length, cached: false });
    t.true((await fs.readFile(destination)).equals(bytes));
    await t.throwsAsync(fs.access(`${destination}.part`), undefined, 'no part file is left');
  });
});

test('a transfer stopped midway keeps the bytes it had and resumes after them (Range)', async (t) => {
  await withServer(t, async (server) => {
    const bytes = randomBytes(8 * MiB);
    const blob = await putBlob(server, bytes);
    const dir = await makeTempDir('convoy-fetch-');
    t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
    const destination = path.join(dir, 'blob.bin');
    const stop = new AbortController();
    const error = await t.throwsAsync(
      downloadVerified({ ...blob, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB, signal: stop.signal, onProgress: (n) => n >= 3 * MiB && stop.abort() }),
      { instanceOf: UpdateError },
    );
    t.regex(error!.message, /daemon is stopping/);
    const kept = (await fs.stat(`${destination}.part`)).size;
    t.true(kept >= 3 * MiB && kept < bytes.length, `kept ${kept} bytes`);
    t.true((await fs.readFile(`${destination}.part`)).equals(bytes.subarray(0, kept)));

    const resumed = await downloadVerified({ ...blob, token: adminToken, destination, length: bytes.length, stallTimeoutMs: 10_000, syncIntervalBytes: MiB });
    t.deepEqual(resumed, { resumedFrom: kept, received: bytes.length - kept, cached: false });
    t.true((await fs.readFile(destination)).equals(bytes));
  });
});
