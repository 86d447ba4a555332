import semver from 'semver';
import { manifestTargetPath } from '../protocol/targets.ts';
import { UpdateError } from './errors.ts';
import type { Journal } from './state.ts';
import type { TrustClient } from '../tuf/client.ts';

/**
 * Anti-downgrade (Uptane's "no rollback to a lower version"): after a refresh, a release whose
 * version is lower than the one the device runs of the same bundle is refused, unless the signed
 * targets mark its manifest as an allowed rollback (`custom.convoy.rollback`, set by
 * `convoy deploy --rollback`). The permission is read from signed metadata, never from the notice,
 * so neither a broker nor a mirror can grant it.
 */
export async function checkDowngrade(trust: TrustClient, journal: Journal, release: { bundle: string; version: string }): Promise<void> {
  const floor = floorOf(journal, release.bundle);
  if (!floor || !semver.lt(release.version, floor)) return;
  const info = await trust.targetInfo(manifestTargetPath(release.bundle, release.version));
  if (isSignedRollback(info?.custom)) return;
  throw new UpdateError('downgrade_refused', `${release.bundle}@${release.version} is older than ${floor}, which this device ran, and the signed targets do not allow a rollback to it`, false);
}

/**
 * The lowest version of `bundle` an unsigned offer may bring: the journal's high-water mark, kept
 * for the device's whole life whatever ran in between (a detour through another bundle must not
 * reset it), and never below what runs now.
 */
export function floorOf(journal: Journal, bundle: string): string | undefined {
  const marks = [journal.highWater[bundle], journal.installed?.bundle === bundle ? journal.installed.version : undefined].filter((v): v is string => !!v);
  return marks.sort(semver.rcompare)[0];
}

export function isSignedRollback(custom: Record<string, unknown> | undefined): boolean {
  const convoy = custom?.convoy as { rollback?: unknown } | undefined;
  return convoy?.rollback === true;
}
