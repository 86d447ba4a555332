import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { parseWith } from '../../protocol/parse.ts';
import { registryEndpoint, replicationPolicy, replicationRunDetail } from '../../protocol/replication.ts';
import { startRegistry } from '../helpers/registry.ts';
import { adminToken, makeTempDir, pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { skopeo, writeLayout } from '../oci/layout.ts';

/*
 * Push replication to a real CNCF distribution registry (Debian's docker-registry, htpasswd):
 * approving a version runs the on-approval policy, the image arrives tagged with the version,
 * credentials are stored sealed and never shown, and a blob already there is never sent again.
 */

const secretKey = Buffer.alloc(32, 7);

async function finishedRun(server: TestServer, bundle: string, id: number) {
  return waitFor(`run ${id} to finish`, async () => {
    const res = await server.api('GET', `/api/v1/bundles/${bundle}/replication-runs/${id}`);
    const detail = parseWith(replicationRunDetail, res.body, 'run');
    return detail.run.status === 'running' ? undefined : detail;
  });
}

test('approval pushes the image to a registry endpoint, tagged with the version; a blob already there is not sent again', async (t) => {
  const registry = await startRegistry();
  const work = await makeTempDir('convoy-replicate-');
  try {
    await withServer(
      t,
      async (server) => {
        t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
        const image = await writeLayout(path.join(work, 'src'), 'build', [256 * 1024, 64 * 1024]);
        await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://127.0.0.1:${server.httpPort}/shop/pos-app:1.0.0`]);
        await pushArtifact(server, 'shop', '1.0.0', 'settings.json', Buffer.from('{"till":true}\n'));

        // The endpoint: credentials sealed at rest, never in an answer.
        const added = await server.api('POST', '/api/v1/registries', { json: { name: 'site', url: registry.url, username: registry.username, password: registry.password } });
        t.is(added.status, 201);
        t.deepEqual(parseWith(registryEndpoint, added.body, 'endpoint'), { name: 'site', url: registry.url, namespace: null, credentials: true, createdAt: added.body.createdAt });
        for (const res of [added, await server.api('GET', '/api/v1/registries'), await server.api('GET', '/api/v1/registries/site')]) t.false(res.raw.toString('utf8').includes(registry.password));
        if (!server.databaseUrl) {
          const files = (await fs.readdir(server.dataDir)).filter((f) => f.startsWith('convoy.sqlite'));
          const bytes = Buffer.concat(await Promise.all(files.map((f) => fs.readFile(path.join(server.dataDir, f)))));
          t.false(bytes.includes(Buffer.from(registry.password)), 'the password is not in the database in clear');
        }
        t.false(server.logs.join('').includes(registry.password), 'nor in the log');

        const created = await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'to-site', destinations: ['site'], trigger: { type: 'approval' }, filter: { types: ['image'], versions: '>=1.0.0' } } });
        t.is(created.status, 201);
        t.like(parseWith(replicationPolicy, created.body, 'policy'), { mode: 'push', enabled: true, destinations: [{ type: 'registry', name: 'site' }] });

        t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
        const runs = await waitFor('a run on approval', async () => {
          const res = await server.api('GET', '/api/v1/bundles/shop/replication-runs');
          return res.body.length > 0 ? res.body : undefined;
        });
        const first = await finishedRun(server, 'shop', runs[0].id);
        t.like(first.run, { policy: 'to-site', trigger: 'approval', versions: ['1.0.0'], status: 'succeeded' });
        // Three blobs (config, two layers), then the manifest by tag; the file is not an image.
        t.deepEqual(first.tasks.map((task) => [task.kind, task.status]), [['blob', 'succeeded'], ['blob', 'succeeded'], ['blob', 'succeeded'], ['manifest', 'succeeded']]);
        t.true(first.tasks.every((task) => task.attempts === 1 && task.error === null && task.durationMs !== null));
        t.true(first.run.bytes > 256 * 1024);

        // What the site's users see: the image under the version's tag, the same digest.
        const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', `${registry.username}:${registry.password}`, `docker://${registry.host}/shop/pos-app:1.0.0`])).stdout);
        t.is(inspected.Digest, image.manifestDigest);

        // Again by hand: every blob is known to be there, so only the tag is sent.
        const again = await server.api('POST', '/api/v1/bundles/shop/replication-policies/to-site/runs', { json: { version: '1.0.0' } });
        t.is(again.status, 202);
        const second = await finishedRun(server, 'shop', again.body.run.id);
        t.deepEqual(second.tasks.map((task) => task.status), ['skipped', 'skipped', 'skipped', 'succeeded']);
        t.is(second.run.bytes, image.manifest.length);

        // Another endpoint on the same registry has no record of it: HEAD finds each blob, none is sent.
        t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'site-again', url: registry.url, username: registry.username, password: registry.password } })).status, 201);
        t.is((await server.api('PATCH', '/api/v1/bundles/shop/replication-policies/to-site', { json: { destinations: ['site-again'] } })).status, 200);
        const third = await server.api('POST', '/api/v1/bundles/shop/replication-policies/to-site/runs', { json: {} });
        const thirdDone = await finishedRun(server, 'shop', third.body.run.id);
        t.is(thirdDone.run.status, 'succeeded');
        t.deepEqual(thirdDone.tasks.filter((task) => task.kind === 'blob').map((task) => [task.status, task.bytes]), [['succeeded', 0], ['succeeded', 0], ['succeeded', 0]]);

        // Wrong credentials: the run fails with the registry's reason, no retry storm on a refusal.
        t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'wrong', url: registry.url, username: registry.username, password: 'nope' } })).status, 201);
        t.is((await server.api('PATCH', '/api/v1/bundles/shop/replication-policies/to-site', { json: { destinations: ['wrong'] } })).status, 200);
        const refused = await finishedRun(server, 'shop', (await server.api('POST', '/api/v1/bundles/shop/replication-policies/to-site/runs', { json: {} })).body.run.id);
        t.is(refused.run.status, 'failed');
        t.is(refused.tasks[0]!.attempts, 1);
        t.regex(refused.tasks[0]!.error ?? '', /401/);
        // Re-run: the failed tasks go again (a second attempt each), the run's record is the same.
        const retried = await server.api('POST', `/api/v1/bundles/shop/replication-runs/${refused.run.id}/retry`);
        t.is(retried.status, 202);
        const again2 = await finishedRun(server, 'shop', refused.run.id);
        t.is(again2.run.status, 'failed');
        t.is(again2.tasks[0]!.attempts, 2);
        t.is((await server.api('POST', `/api/v1/bundles/shop/replication-runs/${refused.run.id}/cancel`)).status, 400, 'a finished run is not cancelled');
      },
      { secretKey },
    );
  } finally {
    await registry.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
});

test('a run to an edge waits for it; cancelling skips what was not started', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
    await pushArtifact(server, 'shop', '1.0.0', 'app.bin', Buffer.from('app'));
    t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
    t.is((await server.api('POST', '/api/v1/edges', { json: { name: 'shop-eu' } })).status, 201);
    t.is((await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'eu', destinations: ['shop-eu'] } })).status, 201);
    const started = parseWith(replicationRunDetail, (await server.api('POST', '/api/v1/bundles/shop/replication-policies/eu/runs', { json: {} })).body, 'run');
    t.is(started.run.status, 'running');
    // The blob, the signed manifest, then the TUF metadata (root, snapshot, targets, the bundle's
    // own role, timestamp last): never another bundle's role.
    t.deepEqual(started.tasks.map((task) => task.kind), ['blob', 'blob', 'metadata', 'metadata', 'metadata', 'metadata', 'metadata']);
    t.deepEqual(started.tasks.filter((task) => task.kind === 'metadata').map((task) => task.ref.replace(/^\d+\./, '')), ['root.json', 'snapshot.json', 'targets.json', 'bundle-shop.json', 'timestamp.json']);
    t.is(started.tasks.at(-1)!.ref, 'timestamp.json');
    t.true(started.tasks.every((task) => task.status === 'pending'));
    const cancelled = await server.api('POST', `/api/v1/bundles/shop/replication-runs/${started.run.id}/cancel`);
    t.is(cancelled.status, 200);
    t.is(cancelled.body.run.status, 'cancelled');
    t.true(cancelled.body.tasks.every((task: { status: string; error: string }) => task.status === 'skipped' && task.error === 'cancelled'));
    // The edge is a destination: it cannot be removed while the policy names it.
    t.is((await server.api('DELETE', '/api/v1/edges/shop-eu')).status, 400);
    // History is paged.
    await server.api('POST', '/api/v1/bundles/shop/replication-policies/eu/runs', { json: {} });
    const page = await server.api('GET', '/api/v1/bundles/shop/replication-runs?per_page=1&policy=eu');
    t.is(page.headers.get('x-total'), '2');
    t.is(page.body.length, 1);
    t.is(page.body[0].id, started.run.id + 1);
  });
});

test('without CONVOY_SECRET_KEY credentials are refused, not stored in clear; an endpoint without credentials is fine', async (t) => {
  await withServer(t, async (server) => {
    const refused = await server.api('POST', '/api/v1/registries', { json: { name: 'site', url: 'http://127.0.0.1:5000', username: 'u', password: 'p' } });
    t.is(refused.status, 400);
    t.regex(refused.body.error.message, /CONVOY_SECRET_KEY/);
    t.is((await server.api('GET', '/api/v1/registries')).body.length, 0);
    const open = await server.api('POST', '/api/v1/registries', { json: { name: 'site', url: 'http://127.0.0.1:5000' } });
    t.is(open.status, 201);
    t.false(open.body.credentials);
    t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'bad', url: 'http://user:pw@127.0.0.1:5000' } })).status, 400);
    t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'bad', url: 'ftp://127.0.0.1' } })).status, 400);
  });
});

test('a run cut by a server restart resumes on start and finishes once the registry is back', async (t) => {
  // A port that refuses connections now and serves the registry later.
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
  const work = await makeTempDir('convoy-replicate-resume-');
  try {
    await withServer(
      t,
      async (server) => {
        t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
        const image = await writeLayout(path.join(work, 'src'), 'build', [64 * 1024]);
        await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://127.0.0.1:${server.httpPort}/shop/pos-app:1.0.0`]);
        t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
        t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'site', url: `http://127.0.0.1:${port}`, username: 'site', password: 'resume-pw' } })).status, 201);
        t.is((await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'to-site', destinations: ['site'] } })).status, 201);
        const started = await server.api('POST', '/api/v1/bundles/shop/replication-policies/to-site/runs', { json: {} });
        const id = started.body.run.id as number;
        await waitFor('a refused attempt', async () => ((await server.api('GET', `/api/v1/bundles/shop/replication-runs/${id}`)).body.tasks[0].attempts >= 1 ? true : undefined));

        await server.restart();
        // Back up while the resumed run retries: the task caught mid-retry goes on from there.
        registry = await startRegistry({ port, username: 'site', password: 'resume-pw' });
        const done = await finishedRun(server, 'shop', id);
        t.is(done.run.status, 'succeeded');
        t.true(done.tasks.every((task) => task.status === 'succeeded'));
        t.true(done.tasks[0]!.attempts >= 2, 'the first task kept its earlier attempts');
        t.true(server.logs.some((line) => line.includes('replication run resumed')));
        const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', 'site:resume-pw', `docker://${registry.host}/shop/pos-app:1.0.0`])).stdout);
        t.is(inspected.Digest, image.manifestDigest);
      },
      { secretKey, replicationRetry: { attempts: 12, baseDelayMs: 100 } },
    );
  } finally {
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
});

test('a revocation withdraws the version\'s tag from the registry, never an image another version still tags', async (t) => {
  const registry = await startRegistry();
  const work = await makeTempDir('convoy-replicate-revoke-');
  try {
    await withServer(
      t,
      async (server) => {
        const creds = `${registry.username}:${registry.password}`;
        const inspect = (tag: string) => skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${registry.host}/shop/pos-app:${tag}`]);
        t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
        const a = await writeLayout(path.join(work, 'a'), 'build', [8 * 1024]);
        const b = await writeLayout(path.join(work, 'b'), 'build', [8 * 1024]);
        for (const [layout, version] of [[a, '1.0.0'], [b, '2.0.0'], [a, '3.0.0']] as const) {
          await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${layout.dir}:build`, `docker://127.0.0.1:${server.httpPort}/shop/pos-app:${version}`]);
          t.is((await server.api('POST', `/api/v1/bundles/shop/versions/${version}/approve`)).status, 200);
        }
        t.is((await server.api('POST', '/api/v1/registries', { json: { name: 'site', url: registry.url, username: registry.username, password: registry.password } })).status, 201);
        t.is((await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'to-site', destinations: ['site'] } })).status, 201);
        const all = await finishedRun(server, 'shop', (await server.api('POST', '/api/v1/bundles/shop/replication-policies/to-site/runs', { json: {} })).body.run.id);
        t.is(all.run.status, 'succeeded');
        t.deepEqual(all.run.versions, ['1.0.0', '2.0.0', '3.0.0']);
        for (const tag of ['1.0.0', '2.0.0', '3.0.0']) await inspect(tag);

        const runsBefore = (await server.api('GET', '/api/v1/bundles/shop/replication-runs')).body.length;
        t.is((await server.api('POST', '/api/v1/bundles/shop/versions/2.0.0/revoke', { json: { reason: 'bad build' } })).status, 200);
        const withdrawal = await waitFor('the withdrawal run', async () => {
          const res = await server.api('GET', '/api/v1/bundles/shop/replication-runs');
          return res.body.length > runsBefore ? res.body[0] : undefined;
        });
        const removed = await finishedRun(server, 'shop', withdrawal.id);
        t.like(removed.run, { trigger: 'revocation', versions: ['2.0.0'], status: 'succeeded' });
        t.deepEqual(removed.tasks.map((task) => [task.kind, task.ref]), [['delete', 'shop/pos-app:2.0.0']]);
        await t.throwsAsync(inspect('2.0.0'), { message: /manifest unknown|not found/i });
        await inspect('1.0.0');

        // 3.0.0 holds the same image as 1.0.0: a registry that deletes only by digest would take
        // 1.0.0 with it, so the tag is left and the task says why.
        t.is((await server.api('POST', '/api/v1/bundles/shop/versions/3.0.0/revoke', { json: { reason: 'superseded' } })).status, 200);
        const second = await waitFor('the second withdrawal', async () => {
          const res = await server.api('GET', '/api/v1/bundles/shop/replication-runs');
          return res.body.length > runsBefore + 1 ? res.body[0] : undefined;
        });
        const kept = await finishedRun(server, 'shop', second.id);
        t.is(kept.run.status, 'failed');
        t.regex(kept.tasks[0]!.error ?? '', /still tagged by another approved version/);
        t.is(JSON.parse((await inspect('1.0.0')).stdout).Digest, a.manifestDigest);
      },
      { secretKey },
    );
  } finally {
    await registry.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
});
