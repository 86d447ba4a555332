import test from 'ava';
import { scopes, type Role, type Scope } from '../../protocol/access.ts';
import { actsAsAdmin, isAllowed, roleOn, type Action, type Caller, type Principal } from '../../server/auth/policy.ts';

/** Table-driven checks of the pure policy: the decisions the server's checks rest on. */

function user(roles: Record<string, Role>, tokenScopes: readonly Scope[] = scopes, isAdmin = false): Principal {
  return { type: 'user', userId: 1, name: 'u', isAdmin, scopes: new Set(tokenScopes), roles: new Map(Object.entries(roles)), tokenId: 1, tokenExpiresAt: null };
}
const device: Principal = { type: 'device', deviceId: 'till-1', group: 'shop' };

const edge: Caller = { type: 'edge', edge: 'shop-eu' };

const cases: [string, Caller, Action, string | undefined, boolean][] = [
  ['a maintainer approves on their bundle', user({ app: 'maintainer' }), 'version:approve', 'app', true],
  ['…but not on another bundle', user({ app: 'maintainer' }), 'version:approve', 'other', false],
  ['…nor without a bundle named (fail closed)', user({ app: 'maintainer' }), 'version:approve', undefined, false],
  ['…nor with a token lacking approve', user({ app: 'maintainer' }, ['read', 'write']), 'version:approve', 'app', false],
  ['a reporter cannot approve', user({ app: 'reporter' }), 'version:approve', 'app', false],
  ['a developer writes drafts', user({ app: 'developer' }), 'bundle:write', 'app', true],
  ['a guest reads', user({ app: 'guest' }), 'bundle:read', 'app', true],
  ['a guest does not download blobs', user({ app: 'guest' }), 'blob:read', undefined, false],
  ['a reporter somewhere downloads blobs', user({ app: 'reporter' }), 'blob:read', undefined, true],
  // Device groups are owned (#14): deploying needs the group too (test/unit/group-policy.test.ts).
  ['a bundle maintainer alone does not deploy: the group decides', user({ app: 'maintainer' }, ['deploy']), 'deployment:create', 'app', false],
  ['an owner deletes', user({ app: 'owner' }), 'bundle:delete', 'app', true],
  ['a maintainer does not delete', user({ app: 'maintainer' }), 'bundle:delete', 'app', false],
  ['anyone signed in lists bundles', user({}), 'bundle:list', undefined, true],
  ['nobody but admins creates bundles', user({ app: 'owner' }), 'bundle:create', undefined, false],
  ['an admin with the admin scope does anything', user({}, scopes, true), 'user:write', undefined, true],
  ['an admin needs the action scope too', user({}, ['admin', 'read'], true), 'version:approve', 'app', false],
  ['an admin without the admin scope is a plain user', user({}, ['read', 'write', 'approve', 'deploy'], true), 'user:read', undefined, false],
  ['the admin scope does not make an admin', user({ app: 'guest' }, scopes, false), 'user:write', undefined, false],
  ['devices read blobs', device, 'blob:read', undefined, true],
  ['devices read TUF', device, 'tuf:read', undefined, true],
  ['devices read no bundle', device, 'bundle:read', 'app', false],
  ['devices create nothing', device, 'device:create', undefined, false],
  ['edges sync their tasks', edge, 'edge:sync', undefined, true],
  ['edges read blobs (those their tasks name: server/blobs/routes.ts)', edge, 'blob:read', undefined, true],
  ['edges read TUF', edge, 'tuf:read', undefined, true],
  ['edges read no bundle', edge, 'bundle:read', 'app', false],
  ['edges manage no edges', edge, 'edge:write', undefined, false],
  ['edges approve nothing', edge, 'version:approve', 'app', false],
  ['an admin holds no edge:sync: an admin has no tasks', user({}, scopes, true), 'edge:sync', undefined, false],
  ['devices hold no edge:sync', device, 'edge:sync', undefined, false],
];

for (const [title, principal, action, bundle, expected] of cases) {
  test(`policy: ${title}`, (t) => {
    t.is(isAllowed(principal, action, bundle === undefined ? undefined : { bundle }), expected);
  });
}

test('policy: admins act as owners only with the admin scope', (t) => {
  t.true(actsAsAdmin(user({}, scopes, true)));
  t.is(roleOn(user({}, scopes, true), 'any'), 'owner');
  t.is(roleOn(user({ app: 'developer' }, ['read'], true), 'app'), 'developer');
  t.is(roleOn(device, 'app'), undefined);
});
