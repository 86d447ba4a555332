import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { hexOf } from '../../protocol/names.ts';
import { deviceRecord, readCurrent, withDevice } from '../helpers/device.ts';
import { deploy, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { makeTempDir, sha256Digest, waitFor, withServer } from '../helpers/server.ts';
import { addEdge, copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * Edge mode end to end (issue #12 items 1 and 6): a real origin, edges in edge mode behind a
 * counting proxy (the origin never opens a connection to an edge: pull mode), and the real
 * convoyd pointed at an edge.
 */

test('approval → two edges mirror by policy; a device behind an edge installs without reading the bytes from the origin', async (t) => {
  const work = await makeTempDir('convoy-edge-test-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const rootFile = await copyRoot(origin, work);
    const edges = [];
    try {
      for (const name of ['shop-eu', 'shop-us']) edges.push(await startTestEdge({ upstreamUrl: proxy.url, token: await addEdge(origin, name), rootFile }));
      t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      const created = await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu', 'shop-us'], mode: 'pull', trigger: { type: 'approval' } } });
      t.is(created.status, 201, created.raw.toString());

      const artifacts: TestArtifact[] = [
        { name: 'app.bin', type: 'file', bytes: randomBytes(300 * 1024) },
        { name: 'config.json', type: 'file', bytes: Buffer.from('{"till":1}\n') },
      ];
      await publishRelease(origin, 'pos', '1.0.0', artifacts);
      const [run] = await runsOf(origin, 'pos');
      const detail = await finishedRun(origin, 'pos', run!.id);
      t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks.filter((task) => task.status !== 'succeeded')));
      t.deepEqual([...new Set(detail.tasks.map((task) => task.destination.name))].sort(), ['shop-eu', 'shop-us']);

      // Each edge holds the bytes and the metadata, verified; `convoy edge list` shows them seen.
      const app = sha256Digest(artifacts[0]!.bytes);
      for (const edge of edges) {
        t.deepEqual(await fs.readFile(path.join(edge.dataDir, 'blobs', 'sha256', hexOf(app).slice(0, 2), hexOf(app))), artifacts[0]!.bytes);
        t.truthy(await fs.stat(path.join(edge.dataDir, 'tuf', 'timestamp.json')));
      }
      const listed = await origin.api('GET', '/api/v1/edges');
      for (const edge of listed.body) t.truthy(edge.lastSeenAt, `${edge.name} has reported in`);
      t.is(proxy.reads.get(`/api/v1/blobs/${app}`), 2, 'each edge read the artifact once');

      // A device whose server is the edge installs; the origin's blob reads do not grow.
      await deploy(origin, 'pos', '1.0.0', 'shop-tills');
      await withDevice(origin, 'till-1', 'shop-tills', async (device) => {
        await waitFor('till-1 on 1.0.0', async () => ((await deviceRecord(origin, 'till-1'))?.installed?.version === '1.0.0' ? true : undefined));
        const current = await readCurrent(device.dir);
        t.deepEqual(current.get('app.bin'), artifacts[0]!.bytes);
      }, { serverUrl: edges[0]!.url });
      t.is(proxy.reads.get(`/api/v1/blobs/${app}`), 2, 'the device read the artifact from the edge, not from the origin');

      // The edge refuses what belongs to the origin, with a typed error.
      const write = await fetch(`${edges[0]!.url}/api/v1/bundles`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"x"}' });
      t.is(write.status, 403);
      t.like(await write.json(), { error: { code: 'edge_read_only' } });
    } finally {
      for (const edge of edges) await edge.close();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('metadata not signed by the pinned root is refused: nothing is published and the tasks fail saying why', async (t) => {
  const work = await makeTempDir('convoy-edge-root-');
  await withServer(t, async (other) => {
    // The operator pinned the root of another origin (a mistake, or a link that lies).
    const wrongRoot = await copyRoot(other, work);
    await withServer(t, async (origin) => {
      const edge = await startTestEdge({ upstreamUrl: origin.url, token: await addEdge(origin, 'shop-eu'), rootFile: wrongRoot });
      try {
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } })).status, 201);
        await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: randomBytes(1024) }]);
        const [run] = await runsOf(origin, 'pos');
        const detail = await finishedRun(origin, 'pos', run!.id);
        t.is(detail.run.status, 'failed');
        const metadata = detail.tasks.filter((task) => task.kind === 'metadata');
        t.true(metadata.length > 0);
        for (const task of metadata) {
          t.is(task.status, 'failed');
          t.regex(task.error ?? '', /metadata refused/);
        }
        t.deepEqual(await fs.readdir(path.join(edge.dataDir, 'tuf')).catch(() => []), [], 'nothing published for devices');
        const res = await fetch(`${edge.url}/tuf/timestamp.json`);
        t.not(res.status, 200);
      } finally {
        await edge.close();
      }
    });
  });
  await fs.rm(work, { recursive: true, force: true });
});

test("an edge keeps to its policy's bandwidth limit", async (t) => {
  const work = await makeTempDir('convoy-edge-bw-');
  await withServer(t, async (origin) => {
    const rootFile = await copyRoot(origin, work);
    const edge = await startTestEdge({ upstreamUrl: origin.url, token: await addEdge(origin, 'shop-eu'), rootFile, overrides: { parallel: 1 } });
    try {
      t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      // 512 KiB/s for a 1 MiB artifact: at least about two seconds, however fast the link.
      const created = await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'slow', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' }, bandwidth: 512 * 1024 } });
      t.is(created.status, 201, created.raw.toString());
      const bytes = randomBytes(1024 * 1024);
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      const [run] = await runsOf(origin, 'pos');
      const detail = await finishedRun(origin, 'pos', run!.id);
      t.is(detail.run.status, 'succeeded');
      const task = detail.tasks.find((task) => task.ref === sha256Digest(bytes))!;
      t.true(task.durationMs! >= 1500, `1 MiB at 512 KiB/s took ${task.durationMs} ms`);
    } finally {
      await edge.close();
    }
  });
  await fs.rm(work, { recursive: true, force: true });
});
