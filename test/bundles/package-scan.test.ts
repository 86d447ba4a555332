import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import test from 'ava';
import { findInTar } from '../../server/bundles/packages.ts';
import { makeTempDir, sha256Digest, withServer } from '../helpers/server.ts';
import { makeNpmTarball } from './fixtures.ts';

const exec = promisify(execFile);

/*
 * Issue #14 item 5: the npm scan must enforce its byte limit while it streams, also inside one
 * tar entry (a small gzip of zeros inflates to gigabytes), and must never run inside a database
 * transaction (on SQLite that holds the only connection, so every other request waits).
 */

function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'latin1');
  header.write('0000644\0', 100, 'latin1');
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  return header;
}

test('the tar scan stops at its byte limit inside one huge entry, not after it', async (t) => {
  const chunk = Buffer.alloc(1024 * 1024);
  let pulled = 0;
  async function* bomb(): AsyncIterable<Buffer> {
    const header = tarHeader('package/zeros.bin', 8 * 1024 ** 3);
    pulled += header.length;
    yield header;
    // 8 GiB of zeros, as a gzip bomb inflates them, chunk by chunk.
    for (let i = 0; i < 8 * 1024; i++) {
      pulled += chunk.length;
      yield chunk;
    }
  }
  const limit = 16 * 1024 * 1024;
  await t.throwsAsync(findInTar(bomb(), (p) => p === 'package/package.json', 1024 * 1024, limit), { message: /first 16777216 bytes/ });
  t.true(pulled <= limit + 2 * chunk.length, `pulled ${pulled} bytes for a limit of ${limit}`);
});

test('a package scan run from PATCH does not hold the database: other requests go on meanwhile', async (t) => {
  t.timeout(60_000);
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      const tgz = await fs.readFile(await makeNpmTarball(work, { name: 'prices', version: '3.1.0' }));
      const digest = sha256Digest(tgz);
      await server.api('PUT', `/api/v1/blobs/${digest}`, { body: tgz });
      await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.0' } });
      const url = '/api/v1/bundles/pos/versions/1.0.0/artifacts/prices.tgz';
      t.is((await server.api('PUT', url, { json: { type: 'file', digest, size: tgz.length } })).status, 201);

      // Injected fault: the blob becomes a FIFO, so the scan waits (as long as we like) for its
      // bytes, as a slow scan of a bomb would run.
      const file = (await exec('find', [server.dataDir, '-name', digest.slice(7)])).stdout.trim().split('\n')[0]!;
      t.truthy(file, 'the blob file is found');
      await fs.rm(file);
      await exec('mkfifo', [file]);

      const patch = server.api('PATCH', url, { json: { type: 'package', package: { format: 'npm' } } });
      await new Promise((resolve) => setTimeout(resolve, 300)); // the PATCH is now reading the FIFO
      let patched = false;
      void patch.then(() => (patched = true));
      const created = server.api('POST', '/api/v1/bundles', { json: { name: 'kiosk' } }).then((r) => r.status);
      const other = await Promise.race([created, new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5_000))]);
      t.false(patched, 'the scan was still waiting for its bytes');
      await fs.writeFile(file, tgz); // opens the FIFO for writing: the scan reads the tarball
      t.is(other, 201, 'a bundle is created while the scan runs');
      await created;
      const answered = await patch;
      t.is(answered.status, 200, JSON.stringify(answered.body));
      t.deepEqual(answered.body.package, { format: 'npm', name: 'prices', version: '3.1.0', architecture: 'all' });
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
