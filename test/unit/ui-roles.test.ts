import test from 'ava';
import type { CurrentUser } from '../../protocol/access.ts';
import { describeRoles } from '../../ui/src/roles.ts';
import { edgeHealth } from '../../ui/src/health.ts';

/* What the UI's header says about the signed-in user's roles, and an edge's health from its last call. */

const base: CurrentUser = { name: 'mara', admin: false, actingAsAdmin: false, scopes: ['read'], tokenExpiresAt: null, actions: [], bundles: [], otherBundles: [], groups: [], otherGroups: [] };
const bundle = (name: string, role: CurrentUser['bundles'][number]['role']) => ({ bundle: name, role, actions: [] });
const group = (name: string, role: CurrentUser['groups'][number]['role']) => ({ group: name, role, actions: [] });

const cases: [string, Partial<CurrentUser>, string][] = [
  ['an admin acting as one', { admin: true, actingAsAdmin: true, bundles: [bundle('shop', 'owner')] }, 'Administrator'],
  ['an admin with a token without the admin scope', { admin: true, bundles: [bundle('shop', 'maintainer')] }, 'Administrator (not with this token), maintainer of shop'],
  ['no memberships', {}, 'No roles yet'],
  ['one bundle', { bundles: [bundle('shop', 'maintainer')] }, 'maintainer of shop'],
  ['two bundles, one role', { bundles: [bundle('shop', 'developer'), bundle('kiosk', 'developer')] }, 'developer of shop and kiosk'],
  ['many bundles', { bundles: ['a', 'b', 'c'].map((n) => bundle(n, 'reporter')) }, 'reporter of 3 bundles'],
  ['bundles and groups, highest role first', { bundles: [bundle('shop', 'reporter'), bundle('kiosk', 'owner')], groups: [group('shop-north', 'maintainer')] }, 'owner of kiosk, reporter of shop, maintainer of group shop-north'],
  [
    'many roles',
    { bundles: [bundle('a', 'owner'), bundle('b', 'maintainer'), bundle('c', 'developer')], groups: [group('g', 'reporter')] },
    'owner of a, maintainer of b and 2 more roles',
  ],
];
for (const [what, user, expected] of cases) {
  test(`header roles: ${what}`, (t) => {
    t.is(describeRoles({ ...base, ...user }), expected);
  });
}

test('edge health: never connected, healthy within 15 minutes, quiet after', (t) => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  const edge = { name: 'shop-eu', description: '', url: null, createdAt: '2026-12-01T00:00:00Z', lastSeenAt: null as string | null };
  t.is(edgeHealth(edge, now).label, 'never connected');
  t.is(edgeHealth({ ...edge, lastSeenAt: '2026-12-01T11:50:00Z' }, now).label, 'healthy');
  t.is(edgeHealth({ ...edge, lastSeenAt: '2026-12-01T11:40:00Z' }, now).label, 'quiet');
});
