import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { accessToken, createdToken } from '../../protocol/access.ts';
import { listOf } from '../../protocol/api.ts';
import { parseWith } from '../../protocol/parse.ts';
import { withServer, type TestServer } from '../helpers/server.ts';

async function makeUser(server: TestServer, name: string, scopes: string[], extra: Record<string, unknown> = {}) {
  await server.api('POST', '/api/v1/users', { json: { name } });
  const res = await server.api('POST', '/api/v1/tokens', { json: { name: `${name} token`, scopes, user: name, ...extra } });
  return parseWith(createdToken, res.body, 'token');
}

test('tokens are shown once, stored hashed, listed with their last use, and revocable by their owner', async (t) => {
  await withServer(t, async (server) => {
    const dev = await makeUser(server, 'dev', ['read', 'write']);
    t.regex(dev.token, /^cvy_[A-Za-z0-9_-]{43}$/);
    t.like(dev.info, { user: 'dev', scopes: ['read', 'write'], lastUsedAt: null, revokedAt: null });
    t.truthy(dev.info.expiresAt, 'without an expiry given, it expires (in 30 days)');

    const mine = await server.api('GET', '/api/v1/tokens', { token: dev.token });
    const listed = parseWith(listOf(accessToken), mine.body, 'tokens');
    t.is(listed.length, 1);
    t.truthy(listed[0]!.lastUsedAt, 'the listing request itself used it');
    t.false(mine.raw.toString('utf8').includes(dev.token), 'the secret is never listed');

    if (!server.databaseUrl) {
      // On disk, only the SHA-256 of the token: the secret itself is nowhere in the database.
      const files = (await fs.readdir(server.dataDir)).filter((f) => f.startsWith('convoy.sqlite'));
      const bytes = Buffer.concat(await Promise.all(files.map((f) => fs.readFile(path.join(server.dataDir, f)))));
      t.false(bytes.includes(Buffer.from(dev.token)));
      t.true(bytes.includes(Buffer.from(createHash('sha256').update(dev.token).digest('hex'))));
    }

    // Someone else's token looks missing; one's own can be revoked, and then it is refused.
    const other = await makeUser(server, 'other', ['read']);
    t.is((await server.api('DELETE', `/api/v1/tokens/${other.info.id}`, { token: dev.token })).status, 404);
    const revoked = await server.api('DELETE', `/api/v1/tokens/${dev.info.id}`, { token: dev.token });
    t.is(revoked.status, 200);
    t.truthy(revoked.body.revokedAt);
    t.is((await server.api('GET', '/api/v1/tokens', { token: dev.token })).status, 401);

    // An admin revokes anyone's, and lists anyone's.
    t.is((await server.api('DELETE', `/api/v1/tokens/${other.info.id}`)).status, 200);
    const others = await server.api('GET', '/api/v1/tokens?user=other');
    t.truthy(others.body[0].revokedAt);
    t.is((await server.api('GET', '/api/v1/tokens?user=other', { token: (await makeUser(server, 'third', ['read'])).token })).status, 403);
  });
});

test('scopes narrow a role and never widen it; a token cannot mint a wider or longer-lived one', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    const readOnly = await makeUser(server, 'lead', ['read']);
    await server.api('POST', '/api/v1/bundles/pos-app/members', { json: { user: 'lead', role: 'owner' } });
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions', { token: readOnly.token, json: { version: '1.0.0' } })).status, 403, 'an owner with a read token cannot write');
    t.is((await server.api('GET', '/api/v1/bundles/pos-app', { token: readOnly.token })).status, 200);
    const wider = await server.api('POST', '/api/v1/tokens', { token: readOnly.token, json: { name: 'wider', scopes: ['read', 'write'] } });
    t.is(wider.status, 403);
    t.regex(wider.body.error.message, /write/);

    // A guest with every scope still cannot write: scopes never widen a role.
    const guest = await makeUser(server, 'guest', ['read', 'write', 'approve', 'deploy', 'admin']);
    await server.api('POST', '/api/v1/bundles/pos-app/members', { json: { user: 'guest', role: 'guest' } });
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions', { token: guest.token, json: { version: '1.0.0' } })).status, 403);
    t.is((await server.api('POST', '/api/v1/users', { token: guest.token, json: { name: 'sneaky' } })).status, 403, 'the admin scope does not make an admin');

    // Expiring tokens mint only tokens that expire no later.
    const soon = new Date(Date.now() + 3600_000).toISOString();
    const expiring = await makeUser(server, 'ci', ['read'], { expiresAt: soon });
    t.is((await server.api('POST', '/api/v1/tokens', { token: expiring.token, json: { name: 'forever', scopes: ['read'], expiresAt: null } })).status, 403);
    const later = new Date(Date.now() + 7200_000).toISOString();
    t.is((await server.api('POST', '/api/v1/tokens', { token: expiring.token, json: { name: 'later', scopes: ['read'], expiresAt: later } })).status, 403);
    t.is((await server.api('POST', '/api/v1/tokens', { token: expiring.token, json: { name: 'sooner', scopes: ['read'], expiresAt: soon } })).status, 201);

    // Bad requests: the past, too far, unknown scope, repeated scope, someone else without admin.
    const past = new Date(Date.now() - 1000).toISOString();
    t.is((await server.api('POST', '/api/v1/tokens', { json: { name: 'x', scopes: ['read'], expiresAt: past } })).status, 400);
    t.is((await server.api('POST', '/api/v1/tokens', { json: { name: 'x', scopes: ['read'], expiresAt: new Date(Date.now() + 400 * 86400_000).toISOString() } })).status, 400);
    t.is((await server.api('POST', '/api/v1/tokens', { json: { name: 'x', scopes: ['sudo'] } })).status, 400);
    t.is((await server.api('POST', '/api/v1/tokens', { json: { name: 'x', scopes: ['read', 'read'] } })).status, 400);
    t.is((await server.api('POST', '/api/v1/tokens', { token: guest.token, json: { name: 'x', scopes: ['read'], user: 'lead' } })).status, 403);
    t.is((await server.api('POST', '/api/v1/tokens', { json: { name: 'x', scopes: ['read'], user: 'nobody' } })).status, 404);
  });
});

test('an admin acts as admin only with the admin scope', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    const plain = (await server.api('POST', '/api/v1/tokens', { json: { name: 'no admin', scopes: ['read', 'write'] } })).body.token;
    t.is((await server.api('POST', '/api/v1/users', { token: plain, json: { name: 'someone' } })).status, 403);
    t.is((await server.api('GET', '/api/v1/audit', { token: plain })).status, 403);
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions', { token: plain, json: { version: '1.0.0' } })).status, 201, 'still an owner of the bundle it created');
    const names = (await server.api('GET', '/api/v1/bundles', { token: plain })).body.map((b: { name: string }) => b.name);
    t.true(names.includes('pos-app'));
  });
});

test('users: created by admins, names validated, duplicates refused', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/users', { json: { name: 'alice' } })).status, 201);
    t.is((await server.api('POST', '/api/v1/users', { json: { name: 'alice' } })).status, 409);
    for (const name of ['', 'Alice', '../x', 'a/b', 'x'.repeat(65), 'a\nb']) {
      t.is((await server.api('POST', '/api/v1/users', { json: { name } })).status, 400, JSON.stringify(name));
    }
    const list = await server.api('GET', '/api/v1/users');
    t.deepEqual(list.body.map((u: { name: string; admin: boolean }) => [u.name, u.admin]), [['admin', true], ['alice', false]]);
  });
});
