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
  'bundle:pull',
  'group:list',
  'group:create',
  'group:read',
  'group:delete',
  'group-member:read',
  'group-member:write',
  'device:write',
  'deployment:control',
  'edge:read',
  'edge:write',
  'registry:read',
  'registry:write',
  'replication:read',
  'replication:write',
  'replication:run',
  'session:read',
  'enrollment:create',
  'device:enroll',
  'device:revoke',
  'edge:sync',
] as const;
export type Action = (typeof actions)[number];

/** What an action applies to, taken from the request by the route declaration. */
export interface Resource {
  bundle?: string;
  /** A device group (issue #14 item 2: groups are owned like bundles). */
  group?: string;
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
      /** The user's role on each device group they are a member of. */
      groupRoles?: ReadonlyMap<string, Role>;
      tokenId: number;
      /** When the token used expires (null: never); tokens it creates may not outlive it. */
      tokenExpiresAt: string | null;
    }
  | { type: 'device'; deviceId: string; group: string };

/**
 * An edge node (edge mode), signed in with the token `convoy edge add` printed. Not a Principal:
 * it holds no role and acts for no user or device, so routes see it apart (`RouteContext.edge`).
 */
export interface EdgePrincipal {
  type: 'edge';
  edge: string;
}

/** Whoever a request is from: the policy decides for all three kinds. */
export type Caller = Principal | EdgePrincipal;

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
  on: 'bundle' | 'any-bundle' | 'group' | 'instance';
  /** `on: 'group'` only: the caller must also hold at least this role on the bundle the request names. */
  bundleRole?: Role;
  /** `on: 'any-bundle'` only: at least this role on some device group holds the action too. */
  anyGroup?: Role;
  role: Role | 'user' | 'admin';
  scope: Scope;
  devices?: boolean;
  /**
   * Edge nodes hold only the actions marked `edges`. `edgesOnly`: the action is an edge's own
   * (its tasks, its heartbeat), so nobody else holds it, admins included: an admin has no tasks.
   */
  edges?: boolean;
  edgesOnly?: boolean;
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
  'blob:read': { on: 'any-bundle', role: 'reporter', scope: 'read', devices: true, edges: true, what: 'Download a blob by digest' },
  'blob:write': { on: 'any-bundle', role: 'developer', scope: 'write', what: 'Upload a blob (inert until a draft one may edit names it)' },
  'tuf:read': { on: 'any-bundle', role: 'reporter', scope: 'read', devices: true, edges: true, what: 'Read TUF metadata and signed targets' },
  'deployment:read': { on: 'any-bundle', role: 'reporter', anyGroup: 'reporter', scope: 'read', what: 'List deployments and see one with its progress: those of bundles or groups one is Reporter of (docs/permissions.md, Read model)' },
  'deployment:create': { on: 'group', role: 'maintainer', bundleRole: 'guest', scope: 'deploy', what: 'Deploy an approved version to a device group: Maintainer on the group and read on the bundle (a rollback to a version approved before needs no approve scope)' },
  'deployment:control': { on: 'group', role: 'maintainer', scope: 'deploy', what: "Pause, resume, abort a deployment to the group, or retry its failed devices" },
  'device:read': { on: 'any-bundle', role: 'maintainer', anyGroup: 'reporter', scope: 'read', what: 'List devices, their inventory and reported state: those in groups one is Reporter of, or running a bundle one maintains (Read model)' },
  'device:write': { on: 'group', role: 'maintainer', scope: 'admin', what: "Move a device between static groups (Maintainer on both) or decommission it (its token stops at once)" },
  'group:list': { on: 'instance', role: 'user', scope: 'read', what: 'List the device groups one is a member of (admins: all)' },
  'group:create': { on: 'instance', role: 'admin', scope: 'admin', what: 'Create a device group, static or dynamic (its creator becomes an Owner)' },
  'group:read': { on: 'group', role: 'guest', scope: 'read', what: 'See a device group, its members and a preview of a filter' },
  'group:delete': { on: 'group', role: 'owner', scope: 'admin', what: 'Delete a device group without devices or running deployments' },
  'group-member:read': { on: 'group', role: 'guest', scope: 'read', what: "List a device group's members" },
  'group-member:write': { on: 'group', role: 'maintainer', scope: 'write', what: 'Add, change or remove members of a device group (only Owners touch the Owner role)' },
  'device:create': { on: 'instance', role: 'admin', scope: 'admin', what: 'Register a device and mint its credentials' },
  'user:read': { on: 'instance', role: 'admin', scope: 'read', what: 'List users' },
  'user:write': { on: 'instance', role: 'admin', scope: 'admin', what: 'Create users; create or revoke tokens of other users' },
  'token:read': { on: 'instance', role: 'user', scope: 'read', what: 'List one’s own access tokens' },
  'token:write': { on: 'instance', role: 'user', scope: 'read', what: 'Create (never wider or longer-lived than the token used; 30 days unless told) and revoke one’s own tokens (a token revokes itself; another only with the write scope and every scope it carries)' },
  'audit:read': { on: 'instance', role: 'admin', scope: 'read', what: 'Read the audit log' },
  'version:revoke': { on: 'bundle', role: 'maintainer', scope: 'approve', what: 'Revoke an approved version: out of the signed targets, never installed again' },
  'version:sign': { on: 'bundle', role: 'maintainer', scope: 'approve', what: 'Offline mode: fetch the proposed targets and upload a signature made with one’s own key' },
  'keys:read': { on: 'instance', role: 'user', scope: 'read', what: 'See who signs what: roles, key ids, thresholds' },
  'keys:admin': { on: 'instance', role: 'admin', scope: 'admin', what: 'Set approval thresholds, create online keys, upload root metadata signed offline' },
  'openapi:read': { on: 'instance', role: 'user', scope: 'read', devices: true, what: 'Read the OpenAPI document of this API (also served without a token)' },
  // The same role as blob:read: downloading content needs Reporter whichever path it takes.
  // Devices pull the images of the bundles deployed to them (a container runtime with the device's token, issue 12).
  'bundle:pull': { on: 'bundle', role: 'reporter', scope: 'read', devices: true, what: 'Download a bundle’s content through /v2: blobs and manifests (pulling an image; mounting from it); devices: the bundles deployed to them' },
  // Destinations are shared by every bundle's policies: anyone may see their names (never a
  // credential) to write a policy; only admins add or remove them (an edge token is a fleet key).
  'edge:read': { on: 'instance', role: 'user', scope: 'read', what: 'List edge nodes and when each last reached the origin' },
  'edge:write': { on: 'instance', role: 'admin', scope: 'admin', what: 'Add an edge node (its token is shown once) or remove one' },
  'registry:read': { on: 'instance', role: 'user', scope: 'read', what: 'List registry endpoints (URL, whether credentials are set; never the credentials)' },
  'registry:write': { on: 'instance', role: 'admin', scope: 'admin', what: 'Add a registry endpoint with its credentials (stored encrypted) or remove one' },
  'replication:read': { on: 'bundle', role: 'reporter', scope: 'read', what: 'See the bundle’s replication policies, runs and their tasks' },
  // Replicating a release is distributing it, as a deployment is: the same role and scope.
  'replication:write': { on: 'bundle', role: 'maintainer', scope: 'deploy', what: 'Create, change, enable, disable and delete the bundle’s replication policies' },
  'replication:run': { on: 'bundle', role: 'maintainer', scope: 'deploy', what: 'Start a replication run of one of the bundle’s policies' },
  'session:read': { on: 'instance', role: 'user', scope: 'read', what: 'See who one is: one’s roles, token scopes and the actions one holds (the web UI asks this)' },
  'enrollment:create': { on: 'instance', role: 'admin', scope: 'admin', what: 'Create enrollment tokens (a group for a batch of devices, or one device to enroll again), list the live ones and revoke one' },
  // Served without a token: the enrollment token or the current certificate in the body is the credential.
  'device:enroll': { on: 'instance', role: 'user', scope: 'read', devices: true, what: 'Enroll a device (an enrollment token and a CSR) or renew its certificate (also served without a token)' },
  'device:revoke': { on: 'instance', role: 'admin', scope: 'admin', what: 'Revoke a device: its certificates and tokens stop working, it is decommissioned, its MQTT sessions end' },
  // An edge's own calls (edge mode, docs/replication.md): its heartbeat, its pending tasks and
  // their outcome, and asking whether a device credential holds. Only edges: an admin has no tasks.
  'edge:sync': { on: 'instance', role: 'admin', scope: 'admin', edges: true, edgesOnly: true, what: 'Edge nodes only: report in, list and settle their replication tasks, check a device credential' },
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

/** The role a principal effectively holds on a device group (admins act as Owners). */
export function roleOnGroup(principal: Principal, group: string): Role | undefined {
  if (principal.type !== 'user') return undefined;
  return actsAsAdmin(principal) ? 'owner' : principal.groupRoles?.get(group);
}

/** The role a principal effectively holds on a bundle (admins act as Owners). */
export function roleOn(principal: Principal, bundle: string): Role | undefined {
  if (principal.type !== 'user') return undefined;
  return actsAsAdmin(principal) ? 'owner' : principal.roles.get(bundle);
}

export function isAllowed(principal: Caller, action: Action, resource?: Resource): boolean {
  const rule = ruleOf(action);
  if (principal.type === 'edge') return rule.edges === true;
  if (rule.edgesOnly) return false;
  if (principal.type === 'device') return rule.devices === true;
  if (!principal.scopes.has(rule.scope)) return false;
  if (actsAsAdmin(principal)) return true;
  if (rule.role === 'admin') return false;
  if (rule.role === 'user') return true;
  const needed = roleRank(rule.role);
  switch (rule.on) {
    case 'bundle':
      // A bundle-level action without a bundle to check against is refused (fail closed).
      return resource?.bundle !== undefined && roleRank(principal.roles.get(resource.bundle)) >= needed;
    case 'group':
      if (resource?.group === undefined || roleRank(principal.groupRoles?.get(resource.group)) < needed) return false;
      return rule.bundleRole === undefined || (resource.bundle !== undefined && roleRank(principal.roles.get(resource.bundle)) >= roleRank(rule.bundleRole));
    case 'any-bundle':
      return (
        [...principal.roles.values()].some((held) => roleRank(held) >= needed) ||
        (rule.anyGroup !== undefined && [...(principal.groupRoles?.values() ?? [])].some((held) => roleRank(held) >= roleRank(rule.anyGroup)))
      );
    case 'instance':
      return false;
  }
}

/**
 * Whether the caller could hold `action` on some resource: false when the refusal does not depend
 * on which row a request names (the caller's kind, the token's scopes, an instance action). The
 * router asks this before a route looks its row up: such a 403 reveals nothing about the row,
 * while a refusal that depends on the row comes after the read model (404 for a row not seen).
 */
export function mayHoldSomewhere(caller: Caller, action: Action): boolean {
  const rule = ruleOf(action);
  if (caller.type !== 'user' || rule.edgesOnly || !caller.scopes.has(rule.scope) || rule.on === 'instance' || rule.on === 'any-bundle') return isAllowed(caller, action);
  return true;
}

/**
 * The read model per bundle: whether a principal may use an `any-bundle` action (blob and TUF
 * target reads) on the content of one bundle. Content-addressed paths name no bundle, so the
 * route's own check only says "a reporter somewhere"; this narrows it to the bundles whose
 * versions hold the bytes. Users need the action's role on that bundle (admins acting as admins:
 * any); devices read only the bundles their group may run (`runs`, from the deployments).
 */
export function isAllowedOnBundle(principal: Caller, action: Action, bundle: string, runs: ReadonlySet<string> = new Set()): boolean {
  const rule = ruleOf(action);
  // An edge reads blobs its tasks name (server/blobs/readers.ts asks replication), not bundles.
  if (principal.type === 'edge') return false;
  if (principal.type === 'device') return rule.devices === true && runs.has(bundle);
  if (rule.on !== 'any-bundle') return isAllowed(principal, action, { bundle });
  if (!principal.scopes.has(rule.scope)) return false;
  if (actsAsAdmin(principal)) return true;
  if (rule.role === 'admin' || rule.role === 'user') return isAllowed(principal, action);
  return roleRank(principal.roles.get(bundle)) >= roleRank(rule.role);
}

export function principalName(principal: Principal): string {
  return principal.type === 'user' ? principal.name : `device:${principal.deviceId}`;
}
