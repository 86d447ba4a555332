import { roles, type Role, type Scope } from '../../protocol/access.ts';

/**
 * Who may do what. Every route names one action; the `policy` table below alone decides which
 * principals hold it (docs/permissions.md is generated from it, and a test walks it against the
 * running server). Pure: no I/O, the principal carries everything the decision needs.
 *
 * Append new action names at the end of `actions`, and give each a row in `policy`. An action
 * without a row is held by instance admins only (fail closed) and a test names it.
 */
export const actions = [
  'blob:read',
  'blob:write',
  'bundle:read',
  'bundle:write',
  'version:approve',
  'deployment:read',
  'deployment:create',
  'device:read',
  'device:create',
  'tuf:read',
  'bundle:list',
  'bundle:create',
  'bundle:delete',
  'member:read',
  'member:write',
  'user:read',
  'user:write',
  'token:read',
  'token:write',
  'audit:read',
  'version:revoke',
  'version:sign',
  'keys:read',
  'keys:admin',
  'openapi:read',
  'enrollment:create',
  'device:enroll',
  'device:revoke',
] as const;
export type Action = (typeof actions)[number];

/** What an action applies to, taken from the request by the route declaration. */
export interface Resource {
  bundle: string;
}

export type Principal =
  | {
      type: 'user';
      userId: number;
      name: string;
      isAdmin: boolean;
      /** The token's scopes: they narrow what the user's roles allow. */
      scopes: ReadonlySet<Scope>;
      /** The user's role on each bundle they are a member of. */
      roles: ReadonlyMap<string, Role>;
      tokenId: number;
      /** When the token used expires (null: never); tokens it creates may not outlive it. */
      tokenExpiresAt: string | null;
    }
  | { type: 'device'; deviceId: string; group: string };

/**
 * One row per action:
 * - `on: 'bundle'`: the caller needs at least `role` on the bundle the request names;
 * - `on: 'any-bundle'`: at least `role` on some bundle (for things shared across bundles, such as
 *   content-addressed blobs, the one TUF repository and the device fleet);
 * - `on: 'instance'`: `role: 'user'` means any signed-in user, `role: 'admin'` instance admins.
 * The token must also carry `scope`. Instance admins hold every action while their token carries
 * the `admin` scope (and the action's scope); without it they act as the members they are.
 * Devices hold only the actions marked `devices`, for the releases they install.
 */
export interface Rule {
  on: 'bundle' | 'any-bundle' | 'instance';
  role: Role | 'user' | 'admin';
  scope: Scope;
  devices?: boolean;
  /** One line for docs/permissions.md. */
  what: string;
}

export const policy: { readonly [A in Action]?: Rule } = {
  'bundle:list': { on: 'instance', role: 'user', scope: 'read', what: 'List the bundles one is a member of (admins: all)' },
  // Admins only: an Owner holds the "any bundle" actions (device list, blob reads), so letting
  // anyone create a bundle would let anyone grant themselves those.
  'bundle:create': { on: 'instance', role: 'admin', scope: 'write', what: 'Create a bundle (its creator becomes an Owner; admins then add the team)' },
  'bundle:read': { on: 'bundle', role: 'guest', scope: 'read', what: 'See a bundle, its versions and their contents; subscribe to its release notices' },
  'bundle:write': { on: 'bundle', role: 'developer', scope: 'write', what: 'Create, edit and delete draft versions and their contents' },
  'bundle:delete': { on: 'bundle', role: 'owner', scope: 'write', what: 'Delete a bundle that has no approved version' },
  'version:approve': { on: 'bundle', role: 'maintainer', scope: 'approve', what: 'Approve a draft: freeze and sign it' },
  'member:read': { on: 'bundle', role: 'guest', scope: 'read', what: "List a bundle's members" },
  'member:write': { on: 'bundle', role: 'maintainer', scope: 'write', what: 'Add, change or remove members (only Owners grant or touch the Owner role)' },
  'blob:read': { on: 'any-bundle', role: 'reporter', scope: 'read', devices: true, what: 'Download a blob by digest' },
  'blob:write': { on: 'any-bundle', role: 'developer', scope: 'write', what: 'Upload a blob (inert until a draft one may edit names it)' },
  'tuf:read': { on: 'any-bundle', role: 'reporter', scope: 'read', devices: true, what: 'Read TUF metadata and signed targets' },
  'deployment:read': { on: 'any-bundle', role: 'reporter', scope: 'read', what: 'List deployments' },
  'deployment:create': { on: 'bundle', role: 'maintainer', scope: 'deploy', what: "Deploy an approved version of the bundle to a device group" },
  'device:read': { on: 'any-bundle', role: 'maintainer', scope: 'read', what: 'List devices and their reported state' },
  'device:create': { on: 'instance', role: 'admin', scope: 'admin', what: 'Register a device and mint its credentials' },
  'user:read': { on: 'instance', role: 'admin', scope: 'read', what: 'List users' },
  'user:write': { on: 'instance', role: 'admin', scope: 'admin', what: 'Create users; create or revoke tokens of other users' },
  'token:read': { on: 'instance', role: 'user', scope: 'read', what: 'List one’s own access tokens' },
  'token:write': { on: 'instance', role: 'user', scope: 'read', what: 'Create (never wider or longer-lived than the token used) and revoke one’s own tokens' },
  'audit:read': { on: 'instance', role: 'admin', scope: 'read', what: 'Read the audit log' },
  'version:revoke': { on: 'bundle', role: 'maintainer', scope: 'approve', what: 'Revoke an approved version: out of the signed targets, never installed again' },
  'version:sign': { on: 'bundle', role: 'maintainer', scope: 'approve', what: 'Offline mode: fetch the proposed targets and upload a signature made with one’s own key' },
  'keys:read': { on: 'instance', role: 'user', scope: 'read', what: 'See who signs what: roles, key ids, thresholds' },
  'keys:admin': { on: 'instance', role: 'admin', scope: 'admin', what: 'Set approval thresholds, create online keys, upload root metadata signed offline' },
  'openapi:read': { on: 'instance', role: 'user', scope: 'read', devices: true, what: 'Read the OpenAPI document of this API (also served without a token)' },
  'enrollment:create': { on: 'instance', role: 'admin', scope: 'admin', what: 'Create enrollment tokens: a group for a batch of devices, or one device to enroll again' },
  // Served without a token: the enrollment token or the current certificate in the body is the credential.
  'device:enroll': { on: 'instance', role: 'user', scope: 'read', devices: true, what: 'Enroll a device (an enrollment token and a CSR) or renew its certificate (also served without a token)' },
  'device:revoke': { on: 'instance', role: 'admin', scope: 'admin', what: 'Revoke a device: its certificates and tokens stop working, its MQTT sessions end' },
};

/** The rule of an action; an action nobody wrote a rule for is held by admins only. */
export function ruleOf(action: Action): Rule {
  return policy[action] ?? { on: 'instance', role: 'admin', scope: 'admin', what: '(no rule written: instance admins only)' };
}

export function roleRank(role: Role | undefined): number {
  return role === undefined ? -1 : roles.indexOf(role);
}

/** Instance admin powers need the admin flag AND a token that carries the `admin` scope. */
export function actsAsAdmin(principal: Principal): boolean {
  return principal.type === 'user' && principal.isAdmin && principal.scopes.has('admin');
}

/** The role a principal effectively holds on a bundle (admins act as Owners). */
export function roleOn(principal: Principal, bundle: string): Role | undefined {
  if (principal.type !== 'user') return undefined;
  return actsAsAdmin(principal) ? 'owner' : principal.roles.get(bundle);
}

export function isAllowed(principal: Principal, action: Action, resource?: Resource): boolean {
  const rule = ruleOf(action);
  if (principal.type === 'device') return rule.devices === true;
  if (!principal.scopes.has(rule.scope)) return false;
  if (actsAsAdmin(principal)) return true;
  if (rule.role === 'admin') return false;
  if (rule.role === 'user') return true;
  const needed = roleRank(rule.role);
  switch (rule.on) {
    case 'bundle':
      // A bundle-level action without a bundle to check against is refused (fail closed).
      return resource !== undefined && roleRank(principal.roles.get(resource.bundle)) >= needed;
    case 'any-bundle':
      return [...principal.roles.values()].some((held) => roleRank(held) >= needed);
    case 'instance':
      return false;
  }
}

export function principalName(principal: Principal): string {
  return principal.type === 'user' ? principal.name : `device:${principal.deviceId}`;
}
