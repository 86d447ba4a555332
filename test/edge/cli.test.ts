import test from 'ava';
import { edgeHealth } from '../../cli/commands/edge.ts';
import { convoy } from '../helpers/cli.ts';
import { withServer } from '../helpers/server.ts';
import { publishRelease } from '../helpers/release.ts';
import { addEdge } from './helpers.ts';

/* The edge from the command line: starting one with a missing setting, and its health on the origin. */

test('convoy serve --mode edge refuses to start without the pinned root, naming the variable', async (t) => {
  const missing = await convoy('http://127.0.0.1:9', ['serve', '--mode', 'edge', '--upstream', 'http://127.0.0.1:9'], { env: { CONVOY_EDGE_TOKEN: 'cvye_x', CONVOY_UPSTREAM_ROOT: '' } });
  t.is(missing.code, 2);
  t.regex(missing.stderr, /CONVOY_UPSTREAM_ROOT/);
  const noToken = await convoy('http://127.0.0.1:9', ['serve', '--mode', 'edge', '--upstream', 'http://127.0.0.1:9'], { env: { CONVOY_EDGE_TOKEN: '' } });
  t.is(noToken.code, 2);
  t.regex(noToken.stderr, /CONVOY_EDGE_TOKEN/);
  const badMode = await convoy('http://127.0.0.1:9', ['serve', '--mode', 'mirror']);
  t.not(badMode.code, 0);
  t.regex(badMode.stderr, /--mode must be origin or edge/);
});

test('convoy edge list shows whether each edge has reported in', async (t) => {
  await withServer(t, async (origin) => {
    const token = await addEdge(origin, 'shop-eu');
    await addEdge(origin, 'shop-us');
    // Asking for tasks is the edge's heartbeat.
    t.is((await fetch(`${origin.url}/api/v1/edge/tasks`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const listed = await convoy(origin.url, ['edge', 'list']);
    t.is(listed.code, 0, listed.stderr);
    t.regex(listed.stdout, /shop-eu\s+ok\s/);
    t.regex(listed.stdout, /shop-us\s+never seen\s/);
  });
});

test('edge health: ok within two minutes of its last call, else how long it has been silent', (t) => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  t.is(edgeHealth(null, now), 'never seen');
  t.is(edgeHealth('2026-12-01T11:59:00Z', now), 'ok');
  t.is(edgeHealth('2026-12-01T11:50:00Z', now), 'silent 10 min');
  t.is(edgeHealth('2026-11-30T12:00:00Z', now), 'silent 24 h');
});

test('an idle edge long-polls: the origin answers the held request as soon as a run gives the edge tasks', async (t) => {
  await withServer(t, async (origin) => {
    const token = await addEdge(origin, 'shop-eu');
    t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } })).status, 201);
    const empty = await origin.api('GET', '/api/v1/edge/tasks', { token });
    t.deepEqual(empty.body.tasks, []);
    const held = origin.api('GET', '/api/v1/edge/tasks?wait=30', { token });
    await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: Buffer.from('till\n') }]);
    const answered = await held;
    t.is(answered.status, 200);
    t.true(answered.body.tasks.length > 0, 'answered with the new tasks, not after the 30 s wait');
    t.is((await origin.api('GET', '/api/v1/edge/tasks?wait=31', { token })).status, 400);
  });
});

test('convoy edge add --url and edge update: the origin records where to push, and says when it needs the token again', async (t) => {
  await withServer(
    t,
    async (origin) => {
      const added = await convoy(origin.url, ['edge', 'add', 'shop-dmz', '--url', 'https://shop-dmz.example.com:8443']);
      t.is(added.code, 0, added.stderr);
      t.regex(added.stdout, /^cvye_/);
      const listed = await convoy(origin.url, ['edge', 'list']);
      t.regex(listed.stdout, /shop-dmz\s+never seen\s+https:\/\/shop-dmz\.example\.com:8443/);
      const token = (await convoy(origin.url, ['edge', 'add', 'shop-eu'])).stdout.trim();
      const refused = await convoy(origin.url, ['edge', 'update', 'shop-eu', '--url', 'http://10.0.0.7:8080']);
      t.not(refused.code, 0);
      t.regex(refused.stderr, /--token/);
      const updated = await convoy(origin.url, ['edge', 'update', 'shop-eu', '--url', 'http://10.0.0.7:8080', '--token', token]);
      t.is(updated.code, 0, updated.stderr);
      t.regex(updated.stdout, /pushes to http:\/\/10\.0\.0\.7:8080/);
      const bad = await convoy(origin.url, ['edge', 'update', 'shop-eu', '--url', 'ftp://x']);
      t.not(bad.code, 0);
      t.regex(bad.stderr, /--url/);
    },
    { secretKey: Buffer.alloc(32, 3) },
  );
});
