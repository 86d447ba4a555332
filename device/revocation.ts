import type { ErrorBody } from '../protocol/errors.ts';
import type { Logger } from '../protocol/log.ts';
import { manifestTargetPath } from '../protocol/targets.ts';
import { UpdateError } from './errors.ts';
import type { TrustClient } from '../tuf/client.ts';
import { TrustError } from '../tuf/errors.ts';

/**
 * Between updates the device keeps refreshing signed metadata, so it learns two things without
 * waiting for a notice: its running version was revoked (its manifest left the signed targets),
 * or it is being frozen (no fresh timestamp: the refresh fails once the last one expires).
 * `onChange` is called only when the verdict changes: an error to report, or null once clear.
 */
export function watchInstalledRelease(options: {
  trust: TrustClient;
  intervalMs: number;
  installed: () => { bundle: string; version: string } | null;
  /** True while an update runs: it refreshes on its own and must not be raced. */
  busy: () => boolean;
  onChange: (error: ErrorBody | null) => void;
  log: Logger;
}): { stop(): void } {
  let last: string | null = null;
  let checking = false;
  const check = async () => {
    const installed = options.installed();
    if (checking || options.busy() || !installed) return;
    checking = true;
    let verdict: ErrorBody | null = null;
    try {
      await options.trust.refresh();
      if (!(await options.trust.targetInfo(manifestTargetPath(installed.bundle, installed.version)))) {
        verdict = { code: 'version_revoked', message: `the running ${installed.bundle}@${installed.version} is no longer in the signed targets: it was revoked` };
      }
    } catch (error) {
      // A network outage is not news; untrusted or expired metadata is (rollback, freeze).
      if ((error instanceof UpdateError || error instanceof TrustError) && !error.transient) verdict = { code: error.code, message: error.message };
    } finally {
      checking = false;
    }
    const key = verdict ? `${verdict.code}:${verdict.message}` : null;
    if (key === last || options.busy()) return;
    last = key;
    if (verdict) options.log.warn('signed metadata check', { code: verdict.code, reason: verdict.message });
    options.onChange(verdict);
  };
  const timer = setInterval(() => void check(), options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
