import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { hexOf } from '../../protocol/names.ts';
import { parseWith } from '../../protocol/parse.ts';
import { replicationRunDetail } from '../../protocol/replication.ts';
import { deviceRecord, readCurrent, withDevice } from '../helpers/device.ts';
import { deploy, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { makeTempDir, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { addEdge, copyRoot, finishedRun, runsOf, spawnEdge, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * Edge mode under faults: an edge killed with kill -9 mid-run, an edge that was off while
 * versions were approved, a revocation, and a blob tampered with on the edge's disk.
 */

async function setUp(origin: TestServer, edges: string[], trigger: 'approval' | 'manual' = 'approval'): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const name of edges) tokens[name] = await addEdge(origin, name);
  if ((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status !== 201) throw new Error('bundle');
  const created = await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: edges, mode: 'pull', trigger: { type: trigger } } });
  if (created.status !== 201) throw new Error(`policy answered ${created.status}: ${created.raw}`);
  return tokens;
}

/** The targets the edge's published metadata names (timestamp → snapshot → targets and the bundles' roles, as a device walks them). */
async function publishedTargets(dataDir: string): Promise<string[]> {
  const read = async (name: string) => JSON.parse(await fs.readFile(path.join(dataDir, 'tuf', name), 'utf8'));
  const timestamp = await read('timestamp.json');
  const snapshot = await read(`${timestamp.signed.meta['snapshot.json'].version}.snapshot.json`);
  const targets = await read(`${snapshot.signed.meta['targets.json'].version}.targets.json`);
  // A bundle's targets live in its delegated role (bundle-<name>) once delegations are on.
  const roles = Object.keys(snapshot.signed.meta).filter((name) => name.startsWith('bundle-'));
  const delegated = await Promise.all(roles.map(async (role) => Object.keys((await read(`${snapshot.signed.meta[role].version}.${role}`)).signed.targets)));
  return [...Object.keys(targets.signed.targets), ...delegated.flat()].sort();
}

test('an edge killed with kill -9 mid-run resumes; blobs it completed are not fetched again', async (t) => {
  const work = await makeTempDir('convoy-edge-kill-');
  await withServer(t, async (origin) => {
    // 1 MiB/s: the run takes seconds, so the kill lands in the middle of it.
    const proxy = await startCountingProxy(origin.httpPort, { bytesPerSecond: 1024 * 1024 });
    const tokens = await setUp(origin, ['shop-eu']);
    const rootFile = await copyRoot(origin, work);
    const dataDir = path.join(work, 'edge');
    const artifacts: TestArtifact[] = Array.from({ length: 5 }, (_, i) => ({ name: `part-${i}.bin`, type: 'file' as const, bytes: randomBytes(768 * 1024) }));
    const digests = artifacts.map((a) => sha256Digest(a.bytes));
    const options = { upstreamUrl: proxy.url, token: tokens['shop-eu']!, rootFile, dataDir, env: { CONVOY_EDGE_PARALLEL: '1' } };
    let edge = await spawnEdge(options);
    try {
      await publishRelease(origin, 'pos', '1.0.0', artifacts);
      const [run] = await runsOf(origin, 'pos');
      // Kill once two blobs are done and the edge is inside the next one.
      const done = await waitFor('two blobs mirrored', async () => {
        const detail = parseWith(replicationRunDetail, (await origin.api('GET', `/api/v1/bundles/pos/replication-runs/${run!.id}`)).body, 'run');
        const succeeded = detail.tasks.filter((task) => task.kind === 'blob' && task.status === 'succeeded').map((task) => task.ref);
        return succeeded.length >= 2 ? succeeded : undefined;
      }, 60_000, 20);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await edge.kill();
      const before = new Map(proxy.reads);
      const parts = (await fs.readdir(path.join(dataDir, 'blobs', 'sha256'), { recursive: true })).filter((f) => String(f).endsWith('.part'));
      t.true(parts.length <= 1, 'at most the blob in flight is partial');

      edge = await spawnEdge(options);
      const detail = await finishedRun(origin, 'pos', run!.id);
      t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks));
      for (const digest of done) t.is(proxy.reads.get(`/api/v1/blobs/${digest}`), before.get(`/api/v1/blobs/${digest}`), `${digest} was complete before the kill: not fetched again`);
      for (const digest of digests) {
        const file = path.join(dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
        t.is(sha256Digest(await fs.readFile(file)), digest, 'every blob on the edge is whole and verified');
      }
      // The interrupted blob resumed (a Range request) instead of starting over: the bytes read
      // from the origin stay well under two full copies of the release.
      const total = artifacts.reduce((sum, a) => sum + a.bytes.length, 0);
      t.true(proxy.bytes < total * 1.5, `${proxy.bytes} bytes read for ${total} bytes of blobs`);
    } finally {
      await edge.kill();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('an edge pulling three blobs at once, killed with kill -9, resumes each partial blob where it stopped and fetches no complete blob again', async (t) => {
  const work = await makeTempDir('convoy-edge-kill-parallel-');
  await withServer(t, async (origin) => {
    // 2 MiB/s per transfer: each 3 MiB blob takes about 1.5 s, three side by side.
    const proxy = await startCountingProxy(origin.httpPort, { bytesPerSecond: 2 * 1024 * 1024 });
    const tokens = await setUp(origin, ['shop-eu']);
    const rootFile = await copyRoot(origin, work);
    const dataDir = path.join(work, 'edge');
    const artifacts: TestArtifact[] = Array.from({ length: 6 }, (_, i) => ({ name: `part-${i}.bin`, type: 'file' as const, bytes: randomBytes(3 * 1024 * 1024) }));
    const digests = artifacts.map((a) => sha256Digest(a.bytes));
    const options = { upstreamUrl: proxy.url, token: tokens['shop-eu']!, rootFile, dataDir, env: { CONVOY_EDGE_PARALLEL: '3' } };
    const blobFile = (digest: string) => path.join(dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
    const sizeOf = (file: string) => fs.stat(file).then((stat) => stat.size, () => undefined);
    let edge = await spawnEdge(options);
    try {
      await publishRelease(origin, 'pos', '1.0.0', artifacts);
      const [run] = await runsOf(origin, 'pos');
      // Kill once the first three blobs are whole and at least two of the next three are partial
      // (past their first written MiB, a second or so before they end): both kinds are then on
      // disk at once. (Asking for fewer whole blobs races: the first three end together.)
      await waitFor('whole and partial blobs side by side', async () => {
        let whole = 0;
        let partial = 0;
        for (const digest of digests) {
          if ((await sizeOf(blobFile(digest))) !== undefined) whole++;
          else if (((await sizeOf(`${blobFile(digest)}.part`)) ?? 0) >= 1024 * 1024) partial++;
        }
        return whole >= 3 && partial >= 2 ? true : undefined;
      }, 60_000, 10);
      await edge.kill();
      const whole = new Set<string>();
      const parts = new Map<string, number>();
      for (const digest of digests) {
        if ((await sizeOf(blobFile(digest))) !== undefined) whole.add(digest);
        else {
          const size = await sizeOf(`${blobFile(digest)}.part`);
          if (size) parts.set(digest, size);
        }
      }
      t.true(parts.size >= 2, `${parts.size} partial blobs at the kill`);
      const before = new Map([...proxy.ranges].map(([key, list]) => [key, list.length]));
      const bytesBefore = proxy.bytes;

      edge = await spawnEdge(options);
      const detail = await finishedRun(origin, 'pos', run!.id);
      t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks));
      for (const digest of digests) t.is(sha256Digest(await fs.readFile(blobFile(digest))), digest, 'every blob on the edge is whole and verified');
      const asked = (digest: string) => (proxy.ranges.get(`/api/v1/blobs/${digest}`) ?? []).slice(before.get(`/api/v1/blobs/${digest}`) ?? 0);
      // Whole blobs (reported or not when the edge died) are not asked for again.
      for (const digest of whole) t.deepEqual(asked(digest), [], `${digest} was whole at the kill: not fetched again`);
      // Each partial blob continues from the bytes on disk, with one Range request.
      for (const [digest, size] of parts) t.deepEqual(asked(digest), [`bytes=${size}-`], `${digest} resumes after its ${size} bytes`);
      // After the restart the origin sends what was missing, plus small answers (task lists,
      // metadata, the bundle manifest): less than one MiB more, the least a restarted blob costs.
      const missing = artifacts.reduce((sum, a, i) => sum + (whole.has(digests[i]!) ? 0 : a.bytes.length - (parts.get(digests[i]!) ?? 0)), 0);
      const sent = proxy.bytes - bytesBefore;
      t.true(sent >= missing && sent < missing + 256 * 1024, `${sent} bytes sent after the restart for ${missing} missing`);
    } finally {
      await edge.kill();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('an edge that was off while two versions were approved catches up when started; a revocation reaches it', async (t) => {
  const work = await makeTempDir('convoy-edge-offline-');
  await withServer(t, async (origin) => {
    const tokens = await setUp(origin, ['shop-eu']);
    const rootFile = await copyRoot(origin, work);
    const v1: TestArtifact[] = [{ name: 'app.bin', type: 'file', bytes: randomBytes(64 * 1024) }];
    const v2: TestArtifact[] = [{ name: 'app.bin', type: 'file', bytes: randomBytes(64 * 1024) }];
    await publishRelease(origin, 'pos', '1.0.0', v1);
    await publishRelease(origin, 'pos', '1.1.0', v2);
    const runs = await runsOf(origin, 'pos', 2);
    // Nobody has fetched anything: the runs wait for the edge.
    for (const run of runs) t.is((await origin.api('GET', `/api/v1/bundles/pos/replication-runs/${run.id}`)).body.run.status, 'running');
    const edge = await startTestEdge({ upstreamUrl: origin.url, token: tokens['shop-eu']!, rootFile });
    try {
      for (const run of runs) t.is((await finishedRun(origin, 'pos', run.id)).run.status, 'succeeded');
      t.deepEqual(await publishedTargets(edge.dataDir), ['pos/1.0.0/artifacts/app.bin', 'pos/1.0.0/manifest.json', 'pos/1.1.0/artifacts/app.bin', 'pos/1.1.0/manifest.json']);

      // Revoking 1.1.0: a revocation run drops its manifest at the edge and refreshes the metadata.
      const manifest = (await origin.api('GET', '/api/v1/bundles/pos/versions/1.1.0')).body.manifestDigest as string;
      const revoked = await origin.api('POST', '/api/v1/bundles/pos/versions/1.1.0/revoke', { json: { reason: 'till crash' } });
      t.is(revoked.status, 200, revoked.raw.toString());
      const [revocation] = (await runsOf(origin, 'pos', 3)).filter((run) => run.trigger === 'revocation');
      t.truthy(revocation, 'a revocation run');
      t.is((await finishedRun(origin, 'pos', revocation!.id)).run.status, 'succeeded');
      t.deepEqual(await publishedTargets(edge.dataDir), ['pos/1.0.0/artifacts/app.bin', 'pos/1.0.0/manifest.json']);
      t.is(await fs.stat(path.join(edge.dataDir, 'blobs', 'sha256', hexOf(manifest).slice(0, 2), hexOf(manifest))).catch(() => undefined), undefined, "the revoked version's manifest is gone from the edge");
    } finally {
      await edge.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('a blob tampered with on the edge disk, even past the edge\'s own check, is refused by the device', async (t) => {
  const work = await makeTempDir('convoy-edge-tamper-');
  await withServer(t, async (origin) => {
    const tokens = await setUp(origin, ['shop-eu']);
    const rootFile = await copyRoot(origin, work);
    const edge = await startTestEdge({ upstreamUrl: origin.url, token: tokens['shop-eu']!, rootFile });
    try {
      const bytes = randomBytes(128 * 1024);
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      const [run] = await runsOf(origin, 'pos');
      t.is((await finishedRun(origin, 'pos', run!.id)).run.status, 'succeeded');
      // Same length, other bytes: only the hash tells.
      const digest = sha256Digest(bytes);
      const file = path.join(edge.dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
      const tampered = Buffer.from(bytes);
      tampered[1000] = tampered[1000]! ^ 0xff;
      const stat = await fs.stat(file);
      await fs.chmod(file, 0o600);
      await fs.writeFile(file, tampered);
      // Its size and time put back: the edge's serve-time check sees the file it verified.
      await fs.utimes(file, stat.atime, stat.mtime);

      await deploy(origin, 'pos', '1.0.0', 'shop-tills');
      await withDevice(origin, 'till-t', 'shop-tills', async (device) => {
        const record = await waitFor('till-t to refuse the tampered blob', async () => {
          const found = await deviceRecord(origin, 'till-t');
          return found?.error ? found : undefined;
        });
        t.not(record.installed?.version, '1.0.0');
        const current = await readCurrent(device.dir).catch(() => new Map<string, Buffer>());
        t.false([...current.values()].some((b) => b.equals(tampered)), 'the tampered bytes are never installed');
        t.is(record.error?.code, 'digest_mismatch', 'the device reports why');
      }, { serverUrl: edge.url, update: { retryBaseMs: 100, retryMaxMs: 200 } });
    } finally {
      await edge.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test("a blob changed on the edge disk is caught by the edge's serve-time check: quarantined, fetched again, and the device installs the genuine bytes", async (t) => {
  const work = await makeTempDir('convoy-edge-heal-');
  await withServer(t, async (origin) => {
    const tokens = await setUp(origin, ['shop-eu']);
    const rootFile = await copyRoot(origin, work);
    const proxy = await startCountingProxy(origin.httpPort);
    const edge = await startTestEdge({ upstreamUrl: proxy.url, token: tokens['shop-eu']!, rootFile });
    try {
      const bytes = randomBytes(128 * 1024);
      const digest = sha256Digest(bytes);
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      const [run] = await runsOf(origin, 'pos');
      t.is((await finishedRun(origin, 'pos', run!.id)).run.status, 'succeeded');
      const file = path.join(edge.dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
      const tampered = Buffer.from(bytes);
      tampered[1000] = tampered[1000]! ^ 0xff;
      const mirroredAt = (await fs.stat(file)).mtimeMs;
      await fs.chmod(file, 0o600);
      await fs.writeFile(file, tampered);
      // Changed later than it was mirrored (the check compares times to the second).
      await fs.utimes(file, new Date(), new Date(mirroredAt + 2000));

      await deploy(origin, 'pos', '1.0.0', 'shop-tills');
      await withDevice(origin, 'till-h', 'shop-tills', async (device) => {
        await waitFor('till-h on 1.0.0', async () => ((await deviceRecord(origin, 'till-h'))?.installed?.version === '1.0.0' ? true : undefined));
        t.deepEqual((await readCurrent(device.dir)).get('app.bin'), bytes, 'the genuine bytes');
      }, { serverUrl: edge.url });
      t.deepEqual(await fs.readFile(file), bytes, 'the edge holds the genuine blob again');
      const quarantined = await fs.readdir(path.join(edge.dataDir, 'quarantine'));
      t.is(quarantined.length, 1);
      t.deepEqual(await fs.readFile(path.join(edge.dataDir, 'quarantine', quarantined[0]!)), tampered, 'the damaged file is kept aside for a look');
      t.is(proxy.reads.get(`/api/v1/blobs/${digest}`), 2, 'mirrored once, fetched once more to repair');
      t.true(edge.logs.join('').includes('no longer matches its digest'));
    } finally {
      await edge.close();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
