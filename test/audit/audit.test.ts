import path from 'node:path';
import test from 'ava';
import knex from 'knex';
import { auditEvent } from '../../protocol/access.ts';
import { parseWith } from '../../protocol/parse.ts';
import { listOf } from '../../protocol/api.ts';
import { pushArtifact, withServer, type TestServer } from '../helpers/server.ts';

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
    t.is((await server.api('GET', '/api/v1/audit?per_page=101')).status, 400);

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
