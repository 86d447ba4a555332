import semver from 'semver';
import { ApiError } from '../http/errors.ts';

export type Bump = 'major' | 'minor' | 'patch' | 'prerelease';

/**
 * The next version of a bundle, from the versions it has (drafts included: their names are
 * taken). Pure, so it is tested by table.
 *
 * The base is the highest existing version by semver precedence (§11), or 0.0.0 for none, and
 * the bump is semver's own (`semver.inc`), so pre-releases behave as npm users expect:
 *   1.2.0-rc.1 + minor → 1.2.0 (the release the pre-release led to),
 *   1.2.0-rc.1 + prerelease → 1.2.0-rc.2,   1.2.0 + prerelease (rc) → 1.2.1-rc.0,
 *   1.2.0 + minor with preid rc → 1.3.0-rc.0 (semver's `preminor`; likewise premajor, prepatch).
 * A result that would not be above every existing version (e.g. `--preid beta` after
 * 1.2.0-rc.1 gives 1.2.0-beta.0) is refused rather than silently going backwards.
 */
export function computeNextVersion(existing: readonly string[], bump: Bump, preid?: string): { previous: string | null; version: string } {
  const valid = existing.filter((v) => semver.valid(v) === v);
  const previous = valid.length > 0 ? semver.rsort([...valid])[0]! : null;
  const base = previous ?? '0.0.0';
  // Without a preid, a pre-release keeps its own identifier (beta.3 → beta.4); a release starts "rc".
  const next =
    bump !== 'prerelease' && preid !== undefined ? semver.inc(base, `pre${bump}`, preid, '0')
    : bump !== 'prerelease' ? semver.inc(base, bump)
    : preid === undefined && semver.prerelease(base) ? semver.inc(base, 'prerelease')
    : semver.inc(base, 'prerelease', preid ?? 'rc', '0');
  if (!next) throw new ApiError('invalid_request', `cannot bump ${base} by ${bump}`);
  if (previous && !semver.gt(next, previous)) {
    throw new ApiError('invalid_request', `bumping ${previous} by ${bump}${preid ? ` with preid "${preid}"` : ''} gives ${next}, which is not above ${previous}; choose another preid or bump`);
  }
  return { previous, version: next };
}
