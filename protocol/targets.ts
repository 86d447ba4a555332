import { bundleNamePattern } from './names.ts';

/**
 * TUF target paths: how the signed targets metadata names what a release contains.
 *   <bundle>/<version>/manifest.json       the bundle manifest
 *   <bundle>/<version>/artifacts/<name>    each artifact
 * Bundle, version and artifact names are validated allow-lists (protocol/names.ts), so a path
 * never holds "..", a leading "/" or an empty segment.
 */
export function manifestTargetPath(bundle: string, version: string): string {
  return `${bundle}/${version}/manifest.json`;
}

export function artifactTargetPath(bundle: string, version: string, artifact: string): string {
  return `${bundle}/${version}/artifacts/${artifact}`;
}

/*
 * Per-bundle TUF delegated targets roles (TUF §5.6, `delegations.roles`): top-level targets.json
 * delegates each bundle's paths to a terminating role that lists only that bundle's targets, so
 * the metadata a device or a reporter can read names only what it may read.
 * The role is `bundle-<name>`: a bundle name is lowercase letters, digits, ".", "_", "-", so the
 * prefix keeps it apart from the top-level roles (a bundle may well be called "targets" or
 * "root") and the mapping is one-to-one; every character is left as is by encodeURIComponent,
 * so the file names tuf-js asks for and writes (`<n>.bundle-<name>.json`) are the role name.
 */
const bundleRolePrefix = 'bundle-';

export function bundleRoleName(bundle: string): string {
  return `${bundleRolePrefix}${bundle}`;
}

/** The bundle a delegated role stands for, or undefined for any other role name. */
export function bundleOfRole(role: string): string | undefined {
  if (!role.startsWith(bundleRolePrefix)) return undefined;
  const bundle = role.slice(bundleRolePrefix.length);
  return bundleNamePattern.test(bundle) ? bundle : undefined;
}

/**
 * The path patterns a bundle's role is trusted for. TUF path patterns match segment by segment
 * ("*" never crosses a "/", §5.6.7.2 as tuf-js implements it), so `<bundle>/*` alone would match
 * nothing: one pattern per target shape above.
 */
export function bundleRolePaths(bundle: string): string[] {
  return [`${bundle}/*/manifest.json`, `${bundle}/*/artifacts/*`];
}

/** The bundle a target path belongs to (its first segment). */
export function bundleOfTarget(targetPath: string): string {
  return targetPath.slice(0, targetPath.indexOf('/'));
}
