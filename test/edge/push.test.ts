import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import { hexOf } from '../../protocol/names.ts';
import { deviceRecord, readCurrent, withDevice } from '../helpers/device.ts';
import { deploy, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { makeTempDir, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge, type TestEdge } from './helpers.ts';

/*
 * Push mode to an edge (issue #12 items 1 and 3): the origin opens the connections and sends the
 * bytes to the edge's advertised URL, signed in with the edge's token (sealed at the origin under
 * CONVOY_SECRET_KEY). The edges here cannot reach the origin while it pushes; a link in front of
 * the edge counts the bytes it receives and can cut or alter an upload.
 */

const secretKey = Buffer.alloc(32, 9);
const retry = { attempts: 4, baseDelayMs: 50 };

/** The link from the origin to an edge: counts upload body bytes; can cut one upload mid-body or flip one byte. */
interface EdgeLink {
  url: string;
  /** Body bytes of blob pieces (PATCH) that reached the edge. */
  readonly uploaded: number;
  /** Content-Range headers of the pieces, in order. */
  ranges: string[];
  /** Cut the next piece after this many body bytes. */
  cutAfter: number | undefined;
  /** Flip one byte in the middle of every piece. */
  tamper: boolean;
  close(): Promise<void>;
}

async function startEdgeLink(edgeUrl: () => string): Promise<EdgeLink> {
  let uploaded = 0;
  const state = { cutAfter: undefined as number | undefined, tamper: false, ranges: [] as string[] };
  const server = http.createServer((req, res) => {
    const target = new URL(edgeUrl());
    const isPiece = req.method === 'PATCH';
    if (isPiece) state.ranges.push(String(req.headers['content-range']));
    const cut = isPiece ? state.cutAfter : undefined;
    if (isPiece) state.cutAfter = undefined;
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    let seen = 0;
    req.on('data', (chunk: Buffer) => {
      if (!isPiece) return void upstream.write(chunk);
      let piece = chunk;
      if (cut !== undefined && seen + piece.length > cut) piece = piece.subarray(0, cut - seen);
      if (state.tamper && piece.length > 0) {
        piece = Buffer.from(piece);
        piece[Math.floor(piece.length / 2)]! ^= 0xff;
      }
      seen += piece.length;
      uploaded += piece.length;
      upstream.write(piece);
      if (cut !== undefined && seen >= cut) {
        // The link drops in the middle of the blob: both sides see the connection end.
        setTimeout(() => {
          upstream.destroy();
          req.socket.destroy();
        }, 50);
        req.pause();
      }
    });
    req.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get uploaded() {
      return uploaded;
    },
    ranges: state.ranges,
    get cutAfter() {
      return state.cutAfter;
    },
    set cutAfter(value) {
      state.cutAfter = value;
    },
    get tamper() {
      return state.tamper;
    },
    set tamper(value) {
      state.tamper = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on: an edge whose upstream is this cannot reach its origin. */
async function closedPort(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

async function addPushEdge(origin: TestServer, name: string, url: string): Promise<string> {
  const res = await origin.api('POST', '/api/v1/edges', { json: { name, url } });
  if (res.status !== 201) throw new Error(`edge add answered ${res.status}: ${res.raw}`);
  return res.body.token as string;
}

function blobFile(edge: TestEdge, digest: string): string {
  return path.join(edge.dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest));
}

test('push: after approval the origin sends a release to an edge that cannot reach it; the edge then serves a device', async (t) => {
  const work = await makeTempDir('convoy-push-');
  await withServer(
    t,
    async (origin) => {
      const upstream = await startCountingProxy(origin.httpPort);
      // The edge cannot reach its origin while the release is pushed: every connection it opens is cut.
      upstream.down = true;
      let edge: TestEdge | undefined;
      const link = await startEdgeLink(() => edge!.url);
      try {
        const token = await addPushEdge(origin, 'shop-dmz', link.url);
        const listed = await origin.api('GET', '/api/v1/edges/shop-dmz');
        t.like(listed.body, { name: 'shop-dmz', url: link.url });
        t.false(JSON.stringify(listed.body).includes(token), 'the token is never returned again');
        edge = await startTestEdge({ upstreamUrl: upstream.url, token, rootFile: await copyRoot(origin, work) });
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'dmz', destinations: ['shop-dmz'], mode: 'push', trigger: { type: 'approval' } } })).status, 201);

        const artifacts: TestArtifact[] = [
          { name: 'app.bin', type: 'file', bytes: randomBytes(200 * 1024) },
          { name: 'config.json', type: 'file', bytes: Buffer.from('{"till":2}\n') },
        ];
        await publishRelease(origin, 'pos', '1.0.0', artifacts);
        const [run] = await runsOf(origin, 'pos');
        const detail = await finishedRun(origin, 'pos', run!.id);
        t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks.filter((task) => task.status !== 'succeeded')));
        const app = sha256Digest(artifacts[0]!.bytes);
        const appTask = detail.tasks.find((task) => task.kind === 'blob' && task.ref.endsWith(app));
        t.like(appTask, { status: 'succeeded', bytes: artifacts[0]!.bytes.length, attempts: 1 });
        t.true(detail.tasks.some((task) => task.kind === 'metadata' && task.ref === 'timestamp.json' && task.status === 'succeeded'));

        // The edge holds the bytes and the origin's metadata, and never reached the origin for them.
        t.deepEqual(await fs.readFile(blobFile(edge, app)), artifacts[0]!.bytes);
        t.deepEqual(await fs.readFile(path.join(edge.dataDir, 'tuf', 'timestamp.json')), (await origin.api('GET', '/tuf/timestamp.json')).raw);
        t.is(upstream.reads.size, 0, 'the edge read nothing from its origin');

        // A second run sends nothing again: the edge is asked first and holds every blob.
        const uploaded = link.uploaded;
        const again = await origin.api('POST', '/api/v1/bundles/pos/replication-policies/dmz/runs', { json: {} });
        t.is(again.status, 202, again.raw.toString());
        const second = await finishedRun(origin, 'pos', again.body.run.id);
        t.is(second.run.status, 'succeeded');
        t.is(link.uploaded, uploaded, 'no blob byte sent twice');

        // The link to the origin comes back (device credentials are still the origin's to check):
        // a device behind the edge installs, and the edge reads no blob and no metadata upstream.
        upstream.down = false;
        await deploy(origin, 'pos', '1.0.0', 'shop-tills');
        await withDevice(origin, 'till-9', 'shop-tills', async (device) => {
          await waitFor('till-9 on 1.0.0', async () => ((await deviceRecord(origin, 'till-9'))?.installed?.version === '1.0.0' ? true : undefined));
          t.deepEqual((await readCurrent(device.dir)).get('app.bin'), artifacts[0]!.bytes);
        }, { serverUrl: edge.url });
        t.deepEqual([...upstream.reads.keys()].filter((key) => key.startsWith('/api/v1/blobs/') || key.startsWith('/tuf/')), []);
      } finally {
        await edge?.close();
        await link.close();
        await upstream.close();
        await fs.rm(work, { recursive: true, force: true });
      }
    },
    { secretKey, replicationRetry: retry },
  );
});

test('push: a wrong token on the edge is refused with a typed 401 and writes nothing', async (t) => {
  const work = await makeTempDir('convoy-push-auth-');
  await withServer(t, async (origin) => {
    const edge = await startTestEdge({ upstreamUrl: await closedPort(), token: 'cvye_the-right-token', rootFile: await copyRoot(origin, work) });
    try {
      const bytes = randomBytes(4096);
      const digest = sha256Digest(bytes);
      for (const token of ['cvye_the-wrong-token', 'cvye_the-right-toke', 'not-an-edge-token']) {
        const res = await fetch(`${edge.url}/api/v1/edge/push/blobs/${digest}`, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-range': `bytes 0-4095/4096` }, body: bytes });
        t.is(res.status, 401, token);
        t.like(await res.json(), { error: { code: 'unauthenticated' } });
      }
      const noToken = await fetch(`${edge.url}/api/v1/edge/push/withdrawals`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ digest }) });
      t.is(noToken.status, 401);
      await t.throwsAsync(fs.stat(blobFile(edge, digest)));
      await t.throwsAsync(fs.stat(`${blobFile(edge, digest)}.part`));
      t.false(edge.logs.join('').includes('cvye_the-right-token'), 'the edge never logs its token');

      // The right token is taken (the route exists and works).
      const ok = await fetch(`${edge.url}/api/v1/edge/push/blobs/${digest}`, { method: 'PATCH', headers: { authorization: 'Bearer cvye_the-right-token', 'content-type': 'application/octet-stream', 'content-range': `bytes 0-4095/4096` }, body: bytes });
      t.is(ok.status, 200);
      t.like(await ok.json(), { digest, offset: 4096, complete: true });
    } finally {
      await edge.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('push: an upload cut mid-blob resumes from the edge offset; a tampered byte is refused by the edge', async (t) => {
  const work = await makeTempDir('convoy-push-cut-');
  await withServer(
    t,
    async (origin) => {
      let edge: TestEdge | undefined;
      const link = await startEdgeLink(() => edge!.url);
      try {
        const token = await addPushEdge(origin, 'shop-cut', link.url);
        edge = await startTestEdge({ upstreamUrl: await closedPort(), token, rootFile: await copyRoot(origin, work) });
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'cut', destinations: ['shop-cut'], mode: 'push', trigger: { type: 'manual' } } })).status, 201);
        const big = randomBytes(1024 * 1024);
        await publishRelease(origin, 'pos', '1.0.0', [{ name: 'image.bin', type: 'file', bytes: big }]);
        const digest = sha256Digest(big);

        // The first piece is cut after 400 KiB: the retry asks the edge where it stopped and sends the rest.
        link.cutAfter = 400 * 1024;
        const started = await origin.api('POST', '/api/v1/bundles/pos/replication-policies/cut/runs', { json: {} });
        t.is(started.status, 202, started.raw.toString());
        const detail = await finishedRun(origin, 'pos', started.body.run.id);
        t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks.filter((task) => task.status !== 'succeeded')));
        t.deepEqual(await fs.readFile(blobFile(edge, digest)), big);
        const bigRanges = link.ranges.filter((range) => range.endsWith(`/${big.length}`));
        t.is(bigRanges[0], `bytes 0-${big.length - 1}/${big.length}`);
        // The second piece starts where the edge's part ended: most of the 400 KiB that crossed the
        // link before the cut (bytes still in socket buffers when it dropped are lost and sent again).
        const resumedAt = Number(/^bytes (\d+)-/.exec(bigRanges[1] ?? '')?.[1] ?? 0);
        t.true(resumedAt >= 256 * 1024 && resumedAt <= 400 * 1024, `resumed at ${resumedAt}`);
        t.true(link.uploaded < big.length + 200 * 1024, `the edge received ${link.uploaded} bytes for a ${big.length}-byte blob and its manifest: the blob was not sent again from the start`);
        t.like(detail.tasks.find((task) => task.ref.endsWith(digest)), { status: 'succeeded', attempts: 2 });

        // A byte altered on the way: the edge hashes the whole blob before it is visible and refuses it.
        const other = randomBytes(64 * 1024);
        await publishRelease(origin, 'pos', '1.1.0', [{ name: 'image.bin', type: 'file', bytes: other }]);
        link.tamper = true;
        const tampered = await origin.api('POST', '/api/v1/bundles/pos/replication-policies/cut/runs', { json: { version: '1.1.0' } });
        t.is(tampered.status, 202, tampered.raw.toString());
        const refused = await finishedRun(origin, 'pos', tampered.body.run.id);
        t.is(refused.run.status, 'failed');
        const otherDigest = sha256Digest(other);
        const task = refused.tasks.find((x) => x.ref.endsWith(otherDigest));
        t.is(task?.status, 'failed');
        t.regex(task?.error ?? '', /digest_mismatch/);
        t.is(task?.attempts, 1, 'a refusal is not retried');
        await t.throwsAsync(fs.stat(blobFile(edge, otherDigest)), undefined, 'the altered blob never became visible');
        await t.throwsAsync(fs.stat(`${blobFile(edge, otherDigest)}.part`), undefined, 'and its part file was dropped');
        t.true(refused.tasks.filter((x) => x.kind === 'metadata').every((x) => x.status === 'failed'), 'metadata naming the missing blob was not sent');
      } finally {
        await edge?.close();
        await link.close();
        await fs.rm(work, { recursive: true, force: true });
      }
    },
    { secretKey, replicationRetry: retry },
  );
});

test('push: an edge URL needs CONVOY_SECRET_KEY, and a first URL on an existing edge needs its token again', async (t) => {
  await withServer(t, async (origin) => {
    const refused = await origin.api('POST', '/api/v1/edges', { json: { name: 'shop-x', url: 'http://127.0.0.1:9' } });
    t.is(refused.status, 400);
    t.regex(refused.body.error.message, /CONVOY_SECRET_KEY/);
    t.is((await origin.api('GET', '/api/v1/edges/shop-x')).status, 404, 'nothing was stored');
  });
  await withServer(
    t,
    async (origin) => {
      const created = await origin.api('POST', '/api/v1/edges', { json: { name: 'shop-y' } });
      t.is(created.status, 201);
      const noToken = await origin.api('PATCH', '/api/v1/edges/shop-y', { json: { url: 'http://127.0.0.1:9' } });
      t.is(noToken.status, 400);
      t.regex(noToken.body.error.message, /--token/);
      const wrong = await origin.api('PATCH', '/api/v1/edges/shop-y', { json: { url: 'http://127.0.0.1:9', token: 'cvye_nope' } });
      t.is(wrong.status, 400);
      const ok = await origin.api('PATCH', '/api/v1/edges/shop-y', { json: { url: 'http://127.0.0.1:9', token: created.body.token } });
      t.is(ok.status, 200, ok.raw.toString());
      t.is(ok.body.url, 'http://127.0.0.1:9');
      const moved = await origin.api('PATCH', '/api/v1/edges/shop-y', { json: { url: 'https://shop-y.example.com:8443' } });
      t.is(moved.body.url, 'https://shop-y.example.com:8443', 'a sealed token stays for a new URL');
      const cleared = await origin.api('PATCH', '/api/v1/edges/shop-y', { json: { url: null } });
      t.is(cleared.body.url, null);
    },
    { secretKey },
  );
});

test('push: two approvals in a row both reach the edge with current metadata, and a revocation drops the version there', async (t) => {
  const work = await makeTempDir('convoy-push-revoke-');
  await withServer(
    t,
    async (origin) => {
      let edge: TestEdge | undefined;
      const link = await startEdgeLink(() => edge!.url);
      try {
        const token = await addPushEdge(origin, 'shop-rev', link.url);
        edge = await startTestEdge({ upstreamUrl: await closedPort(), token, rootFile: await copyRoot(origin, work) });
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'rev', destinations: ['shop-rev'], mode: 'push', trigger: { type: 'approval' } } })).status, 201);
        await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: randomBytes(32 * 1024) }]);
        await publishRelease(origin, 'pos', '1.1.0', [{ name: 'app.bin', type: 'file', bytes: randomBytes(32 * 1024) }]);
        for (const run of await runsOf(origin, 'pos', 2)) t.is((await finishedRun(origin, 'pos', run.id)).run.status, 'succeeded');
        const targetsAtEdge = async () => {
          const read = async (name: string) => JSON.parse(await fs.readFile(path.join(edge!.dataDir, 'tuf', name), 'utf8'));
          const snapshot = await read(`${(await read('timestamp.json')).signed.meta['snapshot.json'].version}.snapshot.json`);
          const role = Object.keys(snapshot.signed.meta).find((name) => name.startsWith('bundle-pos'))!;
          return Object.keys((await read(`${snapshot.signed.meta[role].version}.${role}`)).signed.targets).sort();
        };
        t.deepEqual(await targetsAtEdge(), ['pos/1.0.0/artifacts/app.bin', 'pos/1.0.0/manifest.json', 'pos/1.1.0/artifacts/app.bin', 'pos/1.1.0/manifest.json']);

        const manifest = (await origin.api('GET', '/api/v1/bundles/pos/versions/1.1.0')).body.manifestDigest as string;
        t.truthy(await fs.stat(blobFile(edge, manifest)));
        t.is((await origin.api('POST', '/api/v1/bundles/pos/versions/1.1.0/revoke', { json: { reason: 'till crash' } })).status, 200);
        const [revocation] = (await runsOf(origin, 'pos', 3)).filter((run) => run.trigger === 'revocation');
        t.is((await finishedRun(origin, 'pos', revocation!.id)).run.status, 'succeeded');
        await t.throwsAsync(fs.stat(blobFile(edge, manifest)), undefined, "the revoked version's manifest is gone from the edge");
        t.deepEqual(await targetsAtEdge(), ['pos/1.0.0/artifacts/app.bin', 'pos/1.0.0/manifest.json']);
      } finally {
        await edge?.close();
        await link.close();
        await fs.rm(work, { recursive: true, force: true });
      }
    },
    { secretKey, replicationRetry: retry },
  );
});

/**
 * What the edge's published metadata names that the edge does not hold (the bundle's targets,
 * by sha256): read as a device would, from the timestamp down. Empty before any metadata.
 */
async function namedButMissing(edge: TestEdge, bundle: string): Promise<string[]> {
  const read = async (name: string) => JSON.parse(await fs.readFile(path.join(edge.dataDir, 'tuf', name), 'utf8'));
  let targets: Record<string, { hashes: { sha256: string } }>;
  try {
    const snapshot = await read(`${(await read('timestamp.json')).signed.meta['snapshot.json'].version}.snapshot.json`);
    const role = Object.keys(snapshot.signed.meta).find((name) => name.startsWith(`bundle-${bundle}`));
    if (!role) return [];
    targets = (await read(`${snapshot.signed.meta[role].version}.${role}`)).signed.targets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const missing: string[] = [];
  for (const [name, info] of Object.entries(targets)) {
    const held = await fs.stat(blobFile(edge, `sha256:${info.hashes.sha256}`)).then(() => true, () => false);
    if (!held) missing.push(name);
  }
  return missing;
}

test('push: two overlapping runs to one edge never publish metadata naming a blob the edge does not hold yet', async (t) => {
  const work = await makeTempDir('convoy-push-overlap-');
  await withServer(
    t,
    async (origin) => {
      let edge: TestEdge | undefined;
      const link = await startEdgeLink(() => edge!.url);
      const seen = new Set<string>();
      let watching = true;
      let watcher: Promise<void> | undefined;
      try {
        const token = await addPushEdge(origin, 'shop-ovl', link.url);
        edge = await startTestEdge({ upstreamUrl: await closedPort(), token, rootFile: await copyRoot(origin, work) });
        const watched = edge;
        // What a device reading the edge at any instant would be sent to fetch.
        watcher = (async () => {
          while (watching) {
            for (const name of await namedButMissing(watched, 'pos').catch(() => [])) seen.add(name);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        })();
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        // 256 KiB/s: the first version's 1 MiB blob is still on its way when the second run has sent all of its own.
        t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'ovl', destinations: ['shop-ovl'], mode: 'push', trigger: { type: 'approval' }, bandwidth: 256 * 1024 } })).status, 201);
        const big = randomBytes(1024 * 1024);
        await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: big }]);
        await publishRelease(origin, 'pos', '1.1.0', [{ name: 'patch.bin', type: 'file', bytes: randomBytes(8 * 1024) }]);
        const runs = await runsOf(origin, 'pos', 2);
        for (const run of runs) {
          const detail = await finishedRun(origin, 'pos', run.id);
          t.is(detail.run.status, 'succeeded', JSON.stringify(detail.tasks.filter((task) => task.status !== 'succeeded')));
        }
        watching = false;
        await watcher;
        t.deepEqual([...seen], [], 'metadata named blobs the edge did not hold yet');
        // Both versions arrived, with metadata naming both.
        t.deepEqual(await namedButMissing(edge, 'pos'), []);
        const timestamp = JSON.parse(await fs.readFile(path.join(edge.dataDir, 'tuf', 'timestamp.json'), 'utf8'));
        t.deepEqual(timestamp, (await origin.api('GET', '/tuf/timestamp.json')).body, 'the edge holds the current timestamp');
        t.deepEqual(await fs.readFile(blobFile(edge, sha256Digest(big))), big);
      } finally {
        watching = false;
        await watcher;
        await edge?.close();
        await link.close();
        await fs.rm(work, { recursive: true, force: true });
      }
    },
    { secretKey, replicationRetry: retry },
  );
});
