import path from 'node:path';
import test from 'ava';
import knex from 'knex';
import { auditEvent } from '../../protocol/access.ts';
import { parseWith } from '../../protocol/parse.ts';
import { listOf } from '../../protocol/api.ts';
import { adminToken, pushArtifact, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

async function tokenFor(server: TestServer, name: string, role: string, bundle: string): Promise<string> {
  await server.api('POST', '/api/v1/users', { json: { name } });
  await server.api('POST', `/api/v1/bundles/${bundle}/members`, { json: { user: name, role } });
  return (await server.api('POST', '/api/v1/tokens', { json: { name: 'test', scopes: ['read', 'write', 'approve'], user: name } })).body.token;
}

test('every mutating request is recorded: who, what, target, when, outcome, request id; reads are not', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    const reporter = await tokenFor(server, 'rita', 'reporter', 'pos-app');
    const maintainer = await tokenFor(server, 'max', 'maintainer', 'pos-app');
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.txt', Buffer.from('one\n'));
    const before = new Date().toISOString();

    const refused = await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve', { token: reporter, headers: { 'x-request-id': 'ci-job-42.approve' } });
    t.is(refused.status, 403);
    t.is(refused.headers.get('x-request-id'), 'ci-job-42.approve', 'a well-formed request id from the caller is kept');
    const approved = await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve', { token: maintainer });
    t.is(approved.status, 200);
    const generatedId = approved.headers.get('x-request-id');
    t.regex(generatedId ?? '', /^[0-9a-f-]{36}$/);
    const weird = await server.api('POST', '/api/v1/bundles/pos-app/versions', { token: null, json: { version: '2.0.0' }, headers: { 'x-request-id': 'bad id\twith tab' } });
    t.is(weird.status, 401);
    t.not(weird.headers.get('x-request-id'), 'bad id\twith tab', 'an ill-formed request id is replaced');
    await server.api('GET', '/api/v1/bundles/pos-app', { token: reporter });

    const all = await server.api('GET', `/api/v1/audit?since=${encodeURIComponent(before)}`);
    t.is(all.status, 200);
    const events = parseWith(listOf(auditEvent), all.body, 'audit');
    t.deepEqual(
      events.map((e) => [e.actor, e.action, e.method, e.target, e.bundle, e.outcome, e.status, e.error]),
      [
        [null, 'bundle:write', 'POST', '/api/v1/bundles/pos-app/versions', null, 'unauthenticated', 401, 'unauthenticated'],
        ['max', 'version:approve', 'POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve', 'pos-app', 'success', 200, null],
        ['rita', 'version:approve', 'POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve', 'pos-app', 'denied', 403, 'forbidden'],
      ],
      'newest first; the GET is not recorded',
    );
    t.is(events[1]!.requestId, generatedId ?? 'missing');
    t.is(events[2]!.requestId, 'ci-job-42.approve');
    t.true(events.every((e) => e.at >= before));

    // Filters.
    const denied = (await server.api('GET', '/api/v1/audit?outcome=denied')).body;
    t.deepEqual(denied.map((e: { actor: string }) => e.actor), ['rita']);
    const byMax = (await server.api('GET', '/api/v1/audit?actor=max&bundle=pos-app')).body;
    t.deepEqual(byMax.map((e: { action: string }) => e.action), ['version:approve']);
    t.is((await server.api('GET', '/api/v1/audit?outcome=maybe')).status, 400);
    // per_page above 100 counts as 100 (the README's rule), and only whole numbers are numbers.
    const capped = await server.api('GET', '/api/v1/audit?per_page=101');
    t.is(capped.status, 200);
    t.is(capped.headers.get('x-per-page'), '100');
    for (const bad of ['0x10', '1e1', '%205', '-1', '0']) {
      const refused = await server.api('GET', `/api/v1/audit?per_page=${bad}`);
      t.is(refused.status, 400, `per_page=${bad}`);
      t.regex(refused.body.error.message, /per_page/);
    }

    // Only admins read it.
    t.is((await server.api('GET', '/api/v1/audit', { token: maintainer })).status, 403);
  });
});

test('the audit log pages like GitLab and cannot be rewritten, even by a direct query', async (t) => {
  await withServer(t, async (server) => {
    for (let i = 0; i < 7; i++) await server.api('POST', '/api/v1/bundles', { json: { name: `b${i}` } });
    const page = await server.api('GET', '/api/v1/audit?action=bundle:create&per_page=3&page=2');
    t.is(page.status, 200);
    t.deepEqual(page.body.map((e: { target: string; bundle: string | null }) => e.target), ['/api/v1/bundles', '/api/v1/bundles', '/api/v1/bundles']);
    t.is(page.headers.get('x-total'), '7');
    t.is(page.headers.get('x-total-pages'), '3');
    t.is(page.headers.get('x-page'), '2');
    t.is(page.headers.get('x-per-page'), '3');
    t.is(page.headers.get('x-next-page'), '3');
    t.is(page.headers.get('x-prev-page'), '1');
    t.regex(page.headers.get('link') ?? '', /<\/api\/v1\/audit\?action=bundle%3Acreate&per_page=3&page=3>; rel="next"/);

    const db = server.databaseUrl
      ? knex({ client: 'pg', connection: server.databaseUrl })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'convoy.sqlite') }, useNullAsDefault: true });
    try {
      await t.throwsAsync(db('audit_events').update({ actor: 'someone-else' }), { message: /append-only/ });
      await t.throwsAsync(db('audit_events').delete(), { message: /append-only/ });
      const count = await db('audit_events').count<{ n: number | string }[]>({ n: '*' }).first();
      t.true(Number(count?.n) >= 7);
    } finally {
      await db.destroy();
    }
  });
});

test('the audit log never holds a secret: creating a token records the action, not the token', async (t) => {
  await withServer(t, async (server) => {
    const created = await server.api('POST', '/api/v1/tokens', { json: { name: 'ci', scopes: ['read'] } });
    t.is(created.status, 201);
    const raw = (await server.api('GET', '/api/v1/audit')).raw.toString('utf8');
    t.false(raw.includes(created.body.token));
    t.true(raw.includes('token:write'));
  });
});

test('deployments and new drafts are recorded with their version and device group', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions', { json: { version: '1.0.0' } })).status, 201);
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.txt', Buffer.from('one\n'));
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve')).status, 200);
    t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '1.0.0', group: 'tills', force: true } })).status, 201, 'forced: nobody registered a till yet');
    // A refused deployment says what was attempted too.
    t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '9.9.9', group: 'kiosks' } })).status, 404);

    const events = parseWith(listOf(auditEvent), (await server.api('GET', '/api/v1/audit')).body, 'audit');
    const deployments = events.filter((e) => e.action === 'deployment:create').map((e) => [e.bundle, e.version, e.group, e.outcome]);
    t.deepEqual(deployments, [
      ['pos-app', '9.9.9', 'kiosks', 'failed'],
      ['pos-app', '1.0.0', 'tills', 'success'],
    ]);
    // The oldest such entry is the creation above (newest first; the push helper tries again).
    const created = events.filter((e) => e.action === 'bundle:write' && e.method === 'POST' && e.target === '/api/v1/bundles/pos-app/versions').at(-1);
    t.like(created, { bundle: 'pos-app', version: '1.0.0', group: null, outcome: 'success' });
  });
});

test('the OCI registry under /v2 reaches the audit log: pushes, refusals and 401s, never a credential', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } });
    const reporter = await tokenFor(server, 'rita', 'reporter', 'shop');
    const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
    const v2 = (method: string, urlPath: string, auth: string | null, body?: Buffer, type = 'application/octet-stream') =>
      fetch(`${server.url}${urlPath}`, { method, headers: { ...(auth ? { authorization: auth } : {}), ...(body ? { 'content-type': type } : {}) }, body: body ?? null });
    const before = new Date().toISOString();

    const config = Buffer.from('{}');
    const configDigest = sha256Digest(config);
    t.is((await v2('POST', `/v2/shop/app/blobs/uploads/?digest=${configDigest}`, basic('admin', adminToken), config)).status, 201);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }));
    const pushed = await v2('PUT', '/v2/shop/app/manifests/1.0.0', basic('admin', adminToken), manifest, 'application/vnd.oci.image.manifest.v1+json');
    t.is(pushed.status, 201, await pushed.text());
    t.is((await v2('PUT', '/v2/shop/app/manifests/1.0.1', basic('rita', reporter), manifest, 'application/vnd.oci.image.manifest.v1+json')).status, 403);
    const secret = 'not-a-real-token-but-secret-0123';
    t.is((await v2('PUT', '/v2/shop/app/manifests/1.0.2', basic('mallory', secret), manifest, 'application/vnd.oci.image.manifest.v1+json')).status, 401);
    t.is((await v2('GET', '/v2/shop/app/manifests/1.0.0', basic('mallory', secret))).status, 401);
    t.is((await v2('GET', '/v2/shop/app/manifests/1.0.0', basic('admin', adminToken))).status, 200);
    t.is((await v2('GET', '/v2/', null)).status, 401, 'the challenge probe');

    const all = await server.api('GET', `/api/v1/audit?since=${encodeURIComponent(before)}`);
    const events = parseWith(listOf(auditEvent), all.body, 'audit').filter((e) => e.target.startsWith('/v2'));
    t.deepEqual(
      events.map((e) => [e.actor, e.action, e.method, e.target, e.bundle, e.version, e.outcome, e.status]),
      [
        [null, 'bundle:pull', 'GET', '/v2/shop/app/manifests/1.0.0', 'shop', '1.0.0', 'unauthenticated', 401],
        [null, 'bundle:write', 'PUT', '/v2/shop/app/manifests/1.0.2', 'shop', '1.0.2', 'unauthenticated', 401],
        ['rita', 'bundle:write', 'PUT', '/v2/shop/app/manifests/1.0.1', 'shop', '1.0.1', 'denied', 403],
        ['admin', 'bundle:write', 'PUT', '/v2/shop/app/manifests/1.0.0', 'shop', '1.0.0', 'success', 201],
        ['admin', 'bundle:write', 'POST', '/v2/shop/app/blobs/uploads/', 'shop', null, 'success', 201],
      ],
      'newest first; a successful pull and the anonymous challenge probe are not recorded',
    );
    t.false(JSON.stringify(all.body).includes(secret), 'no credential in the audit log');
    t.false(JSON.stringify(all.body).includes(adminToken));
    t.true(events.every((e) => /^[0-9a-f-]{36}$/.test(e.requestId)));
  });
});
