import type { CurrentUser } from '../../protocol/access.ts';

/*
 * What the header says about the signed-in user's roles: short enough for the top bar, true for
 * bundles and device groups alike. Pure, so the wording is tested without a browser.
 */

const order = ['owner', 'maintainer', 'developer', 'reporter', 'guest'];

/** "maintainer of kiosk", "developer of 3 bundles": names up to two, counts past that. */
function describeMemberships(entries: { name: string; role: string }[], kind: 'bundle' | 'group'): string[] {
  const byRole = new Map<string, string[]>();
  for (const entry of entries) byRole.set(entry.role, [...(byRole.get(entry.role) ?? []), entry.name]);
  return [...byRole.entries()]
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([role, names]) => {
      const what = kind === 'bundle' ? 'bundle' : 'group';
      if (names.length <= 2) return `${role} of ${kind === 'group' ? 'group ' : ''}${names.join(' and ')}`;
      return `${role} of ${names.length} ${what}s`;
    });
}

export function describeRoles(user: CurrentUser): string {
  if (user.actingAsAdmin) return 'Administrator';
  const parts = [...describeMemberships(user.bundles.map((b) => ({ name: b.bundle, role: b.role })), 'bundle'), ...describeMemberships(user.groups.map((g) => ({ name: g.group, role: g.role })), 'group')];
  // An admin signed in with a token lacking the admin scope holds only their memberships now.
  if (user.admin) parts.unshift('Administrator (not with this token)');
  if (parts.length === 0) return 'No roles yet';
  if (parts.length > 3) return `${parts.slice(0, 2).join(', ')} and ${parts.length - 2} more roles`;
  return parts.join(', ');
}
