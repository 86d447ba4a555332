import type { CurrentUser } from '../../protocol/access.ts';
import { actions, actsAsAdmin, isAllowed, roleRank, ruleOf, type Action, type Principal } from './policy.ts';

/**
 * What a signed-in user may do, asked of the policy table itself (pure). Clients show only what
 * will be allowed; the server still decides every request, so this is a courtesy, not a guard.
 */
export function describeUser(principal: Extract<Principal, { type: 'user' }>): CurrentUser {
  const bundleActions = actions.filter((action) => ruleOf(action).on === 'bundle');
  const groupActions = actions.filter((action) => ruleOf(action).on === 'group');
  const held = (list: readonly Action[], bundle?: string) => list.filter((action) => isAllowed(principal, action, bundle === undefined ? undefined : { bundle }));
  // A name no bundle or group can have (names are allow-listed): what one holds where one is no member.
  const nowhere = '\u0000';
  /**
   * Group actions on a group. One that also needs a role on the bundle the request names
   * (deploying) counts when one holds that role on some bundle: the form offers only those.
   */
  const heldOnGroup = (group: string) =>
    groupActions.filter((action) => {
      const needs = ruleOf(action).bundleRole;
      const bundle = needs === undefined ? undefined : actsAsAdmin(principal) ? nowhere : [...principal.roles].find(([, role]) => roleRank(role) >= roleRank(needs))?.[0];
      return isAllowed(principal, action, { group, ...(bundle === undefined ? {} : { bundle }) });
    });
  return {
    name: principal.name,
    admin: principal.isAdmin,
    actingAsAdmin: actsAsAdmin(principal),
    scopes: [...principal.scopes],
    tokenExpiresAt: principal.tokenExpiresAt,
    actions: held(actions.filter((action) => ruleOf(action).on === 'instance' || ruleOf(action).on === 'any-bundle')),
    bundles: [...principal.roles].sort(([a], [b]) => a.localeCompare(b)).map(([bundle, role]) => ({ bundle, role, actions: held(bundleActions, bundle) })),
    otherBundles: held(bundleActions, nowhere),
    groups: [...(principal.groupRoles ?? new Map())].sort(([a], [b]) => a.localeCompare(b)).map(([group, role]) => ({ group, role, actions: heldOnGroup(group) })),
    otherGroups: heldOnGroup(nowhere),
  };
}
