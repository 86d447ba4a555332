import type { Role } from '../../protocol/access.ts';
import { actsAsAdmin, roleRank, type Principal } from './policy.ts';

/**
 * The read model of the fleet (issue #14 items 2 and 8, #10): which deployments and devices a
 * principal may see. The route's action (`deployment:read`, `device:read`) only says "a reader
 * somewhere"; these narrow it to the rows. Pure: the principal carries its roles, the callers
 * pass the row's facts. Every path (list, one, live events, CLI and UI through them) asks here.
 *
 * - A deployment is visible to Reporters (or higher) of its bundle and to Reporters of its group:
 *   the bundle's team follows its release, the group's team follows what reaches its devices.
 * - A device is visible to Reporters of one of its groups (its static group or a dynamic group it
 *   matches now), and to Maintainers of a bundle it runs or is being moved to (installed, target
 *   or an unfinished deployment that targets it): they need to see why their release failed.
 * - Instance admins acting as admins see everything.
 */
export type ReadScope =
  | { all: true }
  /** Rows of these bundles or these groups only (either list may be empty). */
  | { all: false; bundles: string[]; groups: string[] };

const reporter = roleRank('reporter');
const maintainer = roleRank('maintainer');

function held(roles: ReadonlyMap<string, Role> | undefined, atLeast: number): string[] {
  return [...(roles ?? new Map<string, Role>()).entries()].filter(([, role]) => roleRank(role) >= atLeast).map(([name]) => name).sort();
}

/** What deployments a principal may see: Reporter+ bundles, Reporter+ groups (devices: none). */
export function deploymentReadScope(principal: Principal): ReadScope {
  if (principal.type !== 'user') return { all: false, bundles: [], groups: [] };
  if (actsAsAdmin(principal)) return { all: true };
  return { all: false, bundles: held(principal.roles, reporter), groups: held(principal.groupRoles, reporter) };
}

/** What devices a principal may see: by Reporter+ groups, and by Maintainer+ bundles they run. */
export function deviceReadScope(principal: Principal): ReadScope {
  if (principal.type !== 'user') return { all: false, bundles: [], groups: [] };
  if (actsAsAdmin(principal)) return { all: true };
  return { all: false, bundles: held(principal.roles, maintainer), groups: held(principal.groupRoles, reporter) };
}

/** Whether a row with these bundles and groups falls in the scope. */
export function inScope(scope: ReadScope, row: { bundles: readonly (string | null | undefined)[]; groups: readonly string[] }): boolean {
  if (scope.all) return true;
  return row.groups.some((g) => scope.groups.includes(g)) || row.bundles.some((b) => b != null && scope.bundles.includes(b));
}

export function mayReadDeployment(principal: Principal, deployment: { bundle: string; group: string }): boolean {
  return inScope(deploymentReadScope(principal), { bundles: [deployment.bundle], groups: [deployment.group] });
}
