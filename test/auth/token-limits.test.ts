import test from 'ava';
import { withServer, type TestServer } from '../helpers/server.ts';

/*
 * Issue #14 item 14: a token created through the API without an expiry expires in 30 days (as the
 * CLI's default), never-expiring is asked for explicitly (`expiresAt: null`); a token never
 * revokes one wider than itself, and a read-only token revokes nothing but itself.
 */
async function tokenFor(server: TestServer, user: string, scopes: string[], extra: Record<string, unknown> = {}, by?: string) {
  const res = await server.api('POST', '/api/v1/tokens', { json: { name: `${user} ${scopes.join('+')}`, scopes, ...(by ? {} : { user }), ...extra }, ...(by ? { token: by } : {}) });
  if (res.status !== 201) throw new Error(`token create answered ${res.status}: ${res.raw}`);
  return res.body as { token: string; info: { id: number; expiresAt: string | null } };
}

test('an API token without an expiry expires in 30 days; never is explicit', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/users', { json: { name: 'ci' } });
    const defaulted = await tokenFor(server, 'ci', ['read']);
    t.truthy(defaulted.info.expiresAt, 'it expires');
    const days = (Date.parse(defaulted.info.expiresAt!) - Date.now()) / 86_400_000;
    t.true(days > 29.9 && days <= 30, `in ${days.toFixed(2)} days`);
    const forever = await tokenFor(server, 'ci', ['read'], { expiresAt: null });
    t.is(forever.info.expiresAt, null, 'an admin may ask for a token that never expires');
    // A token that expires cannot mint one that never does.
    const minted = await server.api('POST', '/api/v1/tokens', { token: defaulted.token, json: { name: 'forever', scopes: ['read'], expiresAt: null } });
    t.is(minted.status, 403);
    const own = await tokenFor(server, 'ci', ['read'], {}, defaulted.token);
    t.true(Date.parse(own.info.expiresAt!) <= Date.parse(defaulted.info.expiresAt!), 'a default expiry never outlives the token that made it');
  });
});

test('a read-only token cannot revoke the user’s other tokens; no token revokes a wider one', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/users', { json: { name: 'dev' } });
    const reader = await tokenFor(server, 'dev', ['read']);
    const writer = await tokenFor(server, 'dev', ['read', 'write']);
    const deployer = await tokenFor(server, 'dev', ['read', 'write', 'deploy']);
    const otherReader = await tokenFor(server, 'dev', ['read']);
    t.is((await server.api('DELETE', `/api/v1/tokens/${writer.info.id}`, { token: reader.token })).status, 403, 'read-only cannot revoke a write token');
    t.is((await server.api('DELETE', `/api/v1/tokens/${otherReader.info.id}`, { token: reader.token })).status, 403, 'read-only revokes nothing but itself');
    t.is((await server.api('DELETE', `/api/v1/tokens/${deployer.info.id}`, { token: writer.token })).status, 403, 'a token cannot revoke a wider one');
    t.is((await server.api('DELETE', `/api/v1/tokens/${otherReader.info.id}`, { token: writer.token })).status, 200, 'a write token revokes a narrower one');
    t.is((await server.api('DELETE', `/api/v1/tokens/${writer.info.id}`, { token: deployer.token })).status, 200);
    t.is((await server.api('DELETE', `/api/v1/tokens/${reader.info.id}`, { token: reader.token })).status, 200, 'any token may revoke itself');
    t.is((await server.api('GET', '/api/v1/tokens', { token: deployer.token })).status, 200, 'the wider token still works');
  });
});
