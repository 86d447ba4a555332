import test from 'ava';
import { currentUser } from '../../protocol/access.ts';
import { withServer, type TestServer } from '../helpers/server.ts';

/*
 * GET /api/v1/user: who the caller is and which actions they hold, as the policy table decides.
 * The web UI offers only these; a wrong answer here would show buttons that fail or hide ones
 * that work.
 */

async function ok(server: TestServer, method: string, path: string, json?: unknown): Promise<any> {
  const res = await server.api(method, path, json === undefined ? {} : { json });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
  return res.body;
}

async function tokenFor(server: TestServer, user: string, scopes: string[]): Promise<string> {
  return (await ok(server, 'POST', '/api/v1/tokens', { name: `${user} ${scopes.join('+')}`, scopes, user })).token;
}

test('a member sees their role and exactly the bundle actions it and the token allow', async (t) => {
  await withServer(t, async (server) => {
    await ok(server, 'POST', '/api/v1/bundles', { name: 'pos-app' });
    for (const [name, role] of [['mara', 'maintainer'], ['rita', 'reporter']] as const) {
      await ok(server, 'POST', '/api/v1/users', { name });
      await ok(server, 'POST', '/api/v1/bundles/pos-app/members', { user: name, role });
    }
    const maraAll = await server.api('GET', '/api/v1/user', { token: await tokenFor(server, 'mara', ['read', 'write', 'approve']) });
    t.is(maraAll.status, 200);
    const mara = currentUser.parse(maraAll.body);
    t.is(mara.name, 'mara');
    t.false(mara.actingAsAdmin);
    t.deepEqual(mara.bundles.map((b) => [b.bundle, b.role]), [['pos-app', 'maintainer']]);
    const onPos = mara.bundles[0]!.actions;
    for (const action of ['bundle:read', 'bundle:write', 'version:approve', 'version:revoke', 'member:write']) t.true(onPos.includes(action), action);
    t.false(onPos.includes('bundle:delete'), 'owners only');
    t.false(onPos.includes('deployment:create'), 'the token lacks the deploy scope');
    t.deepEqual(mara.otherBundles, [], 'nothing on bundles one is not a member of');
    t.true(mara.actions.includes('device:read'), 'a maintainer somewhere reads the fleet');
    t.false(mara.actions.includes('audit:read'));

    // The same maintainer with a read-only token: her role is unchanged, her reach is not.
    const maraRead = currentUser.parse((await server.api('GET', '/api/v1/user', { token: await tokenFor(server, 'mara', ['read']) })).body);
    t.false(maraRead.bundles[0]!.actions.includes('version:approve'));
    t.false(maraRead.bundles[0]!.actions.includes('bundle:write'));
    t.true(maraRead.bundles[0]!.actions.includes('bundle:read'));

    const rita = currentUser.parse((await server.api('GET', '/api/v1/user', { token: await tokenFor(server, 'rita', ['read', 'write', 'approve']) })).body);
    t.deepEqual(rita.bundles.map((b) => b.role), ['reporter']);
    t.false(rita.bundles[0]!.actions.includes('version:approve'));
    t.false(rita.actions.includes('device:read'));
  });
});

test('an admin acting as one holds every action; without the admin scope, only their memberships', async (t) => {
  await withServer(t, async (server) => {
    const admin = currentUser.parse(await ok(server, 'GET', '/api/v1/user'));
    t.true(admin.admin);
    t.true(admin.actingAsAdmin);
    t.true(admin.actions.includes('audit:read'));
    t.true(admin.otherBundles.includes('bundle:delete'));
    const narrow = (await ok(server, 'POST', '/api/v1/tokens', { name: 'no admin', scopes: ['read'] })).token;
    const plain = currentUser.parse((await server.api('GET', '/api/v1/user', { token: narrow })).body);
    t.true(plain.admin);
    t.false(plain.actingAsAdmin);
    t.false(plain.actions.includes('audit:read'));
    t.deepEqual(plain.otherBundles, []);
  });
});

test('devices have no session, and a token without the read scope cannot ask', async (t) => {
  await withServer(t, async (server) => {
    const device = await ok(server, 'POST', '/api/v1/devices', { id: 'till-1', group: 'shop' });
    const asDevice = await server.api('GET', '/api/v1/user', { token: device.token });
    t.is(asDevice.status, 403);
    const deployOnly = (await ok(server, 'POST', '/api/v1/tokens', { name: 'deploy only', scopes: ['deploy'] })).token;
    const res = await server.api('GET', '/api/v1/user', { token: deployOnly });
    t.is(res.status, 403);
    t.is(res.body.error.code, 'forbidden');
    t.is((await server.api('GET', '/api/v1/user', { token: null })).status, 401);
  });
});

test('a device group member sees the group actions their role holds; deploying also needs a role on some bundle', async (t) => {
  await withServer(t, async (server) => {
    await ok(server, 'POST', '/api/v1/groups', { name: 'shop' });
    await ok(server, 'POST', '/api/v1/users', { name: 'otto' });
    await ok(server, 'POST', '/api/v1/groups/shop/members', { user: 'otto', role: 'maintainer' });
    const token = await tokenFor(server, 'otto', ['read', 'deploy']);
    const before = currentUser.parse((await server.api('GET', '/api/v1/user', { token })).body);
    t.deepEqual(before.groups.map((g) => [g.group, g.role]), [['shop', 'maintainer']]);
    t.true(before.groups[0]!.actions.includes('deployment:control'));
    t.false(before.groups[0]!.actions.includes('deployment:create'), 'no bundle to deploy from yet');
    t.deepEqual(before.otherGroups, []);
    await ok(server, 'POST', '/api/v1/bundles', { name: 'pos' });
    await ok(server, 'POST', '/api/v1/bundles/pos/members', { user: 'otto', role: 'guest' });
    const after = currentUser.parse((await server.api('GET', '/api/v1/user', { token })).body);
    t.true(after.groups[0]!.actions.includes('deployment:create'));
    t.true(after.actions.includes('deployment:read'));
    t.false(after.groups[0]!.actions.includes('group:delete'), 'owners only');
  });
});
