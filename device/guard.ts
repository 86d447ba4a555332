import path from 'node:path';
import semver from 'semver';
import { manifestTargetPath } from '../protocol/targets.ts';
import { UpdateError } from './errors.ts';
import { readJournal } from './journal.ts';
import type { TrustClient } from '../tuf/client.ts';

/**
 * Anti-downgrade (Uptane's "no rollback to a lower version"): after a refresh, a release whose
 * version is lower than the one the device runs of the same bundle is refused, unless the signed
 * targets mark its manifest as an allowed rollback (`custom.convoy.rollback`, set by
 * `convoy deploy --rollback`). The permission is read from signed metadata, never from the notice,
 * so neither a broker nor a mirror can grant it.
 */
export async function checkDowngrade(trust: TrustClient, dataDir: string, release: { bundle: string; version: string }): Promise<void> {
  const { installed } = await readJournal(path.join(dataDir, 'journal.json'));
  if (!installed || installed.bundle !== release.bundle) return;
  if (!semver.lt(release.version, installed.version)) return;
  const info = await trust.targetInfo(manifestTargetPath(release.bundle, release.version));
  if (isSignedRollback(info?.custom)) return;
  throw new UpdateError('downgrade_refused', `${release.bundle}@${release.version} is older than the running ${installed.version} and the signed targets do not allow a rollback to it`, false);
}

export function isSignedRollback(custom: Record<string, unknown> | undefined): boolean {
  const convoy = custom?.convoy as { rollback?: unknown } | undefined;
  return convoy?.rollback === true;
}
