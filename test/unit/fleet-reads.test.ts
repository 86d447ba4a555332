import test from 'ava';
import type { Role, Scope } from '../../protocol/access.ts';
import type { Principal } from '../../server/auth/policy.ts';
import { deploymentReadScope, deviceReadScope, inScope, mayReadDeployment } from '../../server/auth/reads.ts';

/** The read model's pure core (server/auth/reads.ts), table by table. */

function user(roles: Record<string, Role>, groupRoles: Record<string, Role> = {}, options: { admin?: boolean; scopes?: Scope[] } = {}): Principal {
  return {
    type: 'user', userId: 1, name: 'u', isAdmin: options.admin ?? false, scopes: new Set(options.scopes ?? ['read']),
    roles: new Map(Object.entries(roles)), groupRoles: new Map(Object.entries(groupRoles)), tokenId: 1, tokenExpiresAt: null,
  };
}

const deployment = { bundle: 'alpha', group: 'g1' };
const deploymentCases: [string, Principal, boolean][] = [
  ['reporter of the bundle', user({ alpha: 'reporter' }), true],
  ['guest of the bundle', user({ alpha: 'guest' }), false],
  ['owner of another bundle', user({ beta: 'owner' }), false],
  ['reporter of the group', user({}, { g1: 'reporter' }), true],
  ['guest of the group', user({}, { g1: 'guest' }), false],
  ['maintainer of another group', user({}, { g2: 'maintainer' }), false],
  ['admin acting as admin', user({}, {}, { admin: true, scopes: ['read', 'admin'] }), true],
  ['admin whose token lacks the admin scope', user({}, {}, { admin: true, scopes: ['read'] }), false],
  ['a device', { type: 'device', deviceId: 'd', group: 'g1' }, false],
];
for (const [who, principal, expected] of deploymentCases) {
  test(`a deployment of alpha to g1: ${who} ${expected ? 'sees' : 'does not see'} it`, (t) => {
    t.is(mayReadDeployment(principal, deployment), expected);
    t.is(inScope(deploymentReadScope(principal), { bundles: [deployment.bundle], groups: [deployment.group] }), expected);
  });
}

const device = { groups: ['g1', 'dyn'], bundles: ['alpha', null] };
const deviceCases: [string, Principal, boolean][] = [
  ['reporter of its static group', user({}, { g1: 'reporter' }), true],
  ['reporter of a dynamic group it matches', user({}, { dyn: 'reporter' }), true],
  ['maintainer of a bundle it runs', user({ alpha: 'maintainer' }), true],
  ['developer of a bundle it runs', user({ alpha: 'developer' }), false],
  ['maintainer of a bundle it does not run', user({ beta: 'maintainer' }), false],
  ['reporter of another group', user({}, { g2: 'reporter' }), false],
  ['admin', user({}, {}, { admin: true, scopes: ['read', 'admin'] }), true],
];
for (const [who, principal, expected] of deviceCases) {
  test(`a device in g1 and dyn running alpha: ${who} ${expected ? 'sees' : 'does not see'} it`, (t) => {
    t.is(inScope(deviceReadScope(principal), device), expected);
  });
}
