import type { CurrentUser } from '../../protocol/access.ts';
import { actions, actsAsAdmin, isAllowed, ruleOf, type Action, type Principal } from './policy.ts';

/**
 * What a signed-in user may do, asked of the policy table itself (pure). Clients show only what
 * will be allowed; the server still decides every request, so this is a courtesy, not a guard.
 */
export function describeUser(principal: Extract<Principal, { type: 'user' }>): CurrentUser {
  const bundleActions = actions.filter((action) => ruleOf(action).on === 'bundle');
  const held = (list: readonly Action[], bundle?: string) => list.filter((action) => isAllowed(principal, action, bundle === undefined ? undefined : { bundle }));
  // A name no bundle can have (names are lowercase): what one holds on a bundle one is not in.
  const nowhere = '\u0000';
  return {
    name: principal.name,
    admin: principal.isAdmin,
    actingAsAdmin: actsAsAdmin(principal),
    scopes: [...principal.scopes],
    tokenExpiresAt: principal.tokenExpiresAt,
    actions: held(actions.filter((action) => ruleOf(action).on !== 'bundle')),
    bundles: [...principal.roles].sort(([a], [b]) => a.localeCompare(b)).map(([bundle, role]) => ({ bundle, role, actions: held(bundleActions, bundle) })),
    otherBundles: held(bundleActions, nowhere),
  };
}
