import test from 'ava';
import { scopes, type Role, type Scope } from '../../protocol/access.ts';
import { isAllowedOnBundle, type Principal } from '../../server/auth/policy.ts';
import { createBlobReaders } from '../../server/blobs/readers.ts';

/** The read model per bundle as a table: who reads what `alpha` holds (and what `beta` holds). */

function user(roles: Record<string, Role>, options: { admin?: boolean; scopes?: Scope[] } = {}): Principal {
  return {
    type: 'user',
    userId: 1,
    name: 'u',
    isAdmin: options.admin ?? false,
    scopes: new Set(options.scopes ?? scopes),
    roles: new Map(Object.entries(roles)),
    tokenId: 1,
    tokenExpiresAt: null,
  };
}
const device: Principal = { type: 'device', deviceId: 'd1', group: 'alpha-fleet' };
const alphaFleet = new Set(['alpha']);

const table: [string, Principal, 'blob:read' | 'tuf:read', string, boolean][] = [
  ['reporter of alpha reads alpha', user({ alpha: 'reporter' }), 'blob:read', 'alpha', true],
  ['reporter of alpha does not read beta', user({ alpha: 'reporter' }), 'blob:read', 'beta', false],
  ['owner of alpha does not read beta', user({ alpha: 'owner' }), 'tuf:read', 'beta', false],
  ['guest of beta does not read beta blobs', user({ beta: 'guest' }), 'blob:read', 'beta', false],
  ['maintainer of beta reads beta targets', user({ beta: 'maintainer' }), 'tuf:read', 'beta', true],
  ['reporter without the read scope reads nothing', user({ alpha: 'reporter' }, { scopes: ['write'] }), 'blob:read', 'alpha', false],
  ['admin acting as admin reads beta', user({}, { admin: true }), 'blob:read', 'beta', true],
  ['admin without the admin scope acts as the member they are', user({ alpha: 'reporter' }, { admin: true, scopes: ['read'] }), 'blob:read', 'beta', false],
  ["device reads its group's bundle", device, 'blob:read', 'alpha', true],
  ['device does not read another bundle', device, 'tuf:read', 'beta', false],
];

for (const [what, principal, action, bundle, expected] of table) {
  test(`isAllowedOnBundle: ${what}`, (t) => {
    t.is(isAllowedOnBundle(principal, action, bundle, principal.type === 'device' ? alphaFleet : new Set()), expected);
  });
}

test('blob readers: any holding bundle the caller may read suffices; a digest nobody holds is for admins only', async (t) => {
  const holders: Record<string, string[]> = { shared: ['beta', 'alpha'], betaOnly: ['beta'] };
  const readers = createBlobReaders({
    sources: [async (digest) => holders[digest] ?? [], async () => []],
    deviceBundles: async (device) => (device.group === 'alpha-fleet' ? ['alpha'] : []),
  });
  const reporter = user({ alpha: 'reporter' });
  t.true(await readers.mayRead(reporter, 'blob:read', 'shared'));
  t.false(await readers.mayRead(reporter, 'blob:read', 'betaOnly'));
  t.false(await readers.mayRead(reporter, 'blob:read', 'nobody'));
  t.true(await readers.mayRead(user({}, { admin: true }), 'blob:read', 'nobody'));
  t.true(await readers.mayRead(device, 'blob:read', 'shared'));
  t.false(await readers.mayRead(device, 'blob:read', 'betaOnly'));
  // Naming: a fresh digest, one the bundle holds, or one readable elsewhere.
  const developer = user({ alpha: 'developer' });
  t.true(await readers.mayName(developer, 'nobody', 'alpha'));
  t.true(await readers.mayName(developer, 'shared', 'alpha'));
  t.false(await readers.mayName(developer, 'betaOnly', 'alpha'));
  t.true(await readers.mayName(user({ alpha: 'developer', beta: 'reporter' }), 'betaOnly', 'alpha'));
});
