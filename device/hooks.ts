import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../protocol/log.ts';
import { describeResult, runCommand } from './command.ts';
import { UpdateError } from './errors.ts';
import type { UpdateRecord } from './state.ts';

/**
 * State hooks, after Mender's state scripts: executables in the hooks directory named
 * `<Phase>_<Enter|Leave>[_suffix]` (e.g. `Install_Enter_10_stop-printer`) run in name order when
 * the daemon enters or leaves a phase, with a timeout; their output goes to the log. A failing
 * `Download_Enter`, `Install_Enter` or `Commit_Enter` hook stops the update (before the switch it
 * simply fails; at commit it rolls back); failures of `Leave` and `Rollback` hooks are logged
 * only, since there is nothing safer to do. Hooks may run again after a crash: keep them idempotent.
 */
export const hookPhases = ['Download', 'Install', 'Commit', 'Rollback'] as const;
export type HookPhase = (typeof hookPhases)[number];
export type HookPoint = `${HookPhase}_${'Enter' | 'Leave'}`;

const hookName = /^(Download|Install|Commit|Rollback)_(Enter|Leave)(_[A-Za-z0-9._-]+)?$/;

export interface HookRunner {
  run(point: HookPoint, update: UpdateRecord): Promise<void>;
}

export function createHookRunner(options: { dir: string | null; timeoutMs: number; dataDir: string; log: Logger }): HookRunner {
  return {
    async run(point, update) {
      if (!options.dir) return;
      let entries: string[];
      try {
        entries = await fs.readdir(options.dir);
      } catch {
        return;
      }
      const names = entries.filter((name) => hookName.test(name) && (name === point || name.startsWith(`${point}_`))).sort();
      for (const name of names) {
        const file = path.join(options.dir, name);
        const result = await runCommand([file], {
          cwd: options.dataDir,
          env: {
            CONVOY_HOOK: point,
            CONVOY_BUNDLE: update.release.bundle,
            CONVOY_VERSION: update.release.version,
            CONVOY_SLOT: update.slot,
            CONVOY_STATE: update.state,
          },
          timeoutMs: options.timeoutMs,
          log: options.log,
          what: `hook ${name}`,
        });
        if (!result.ok) {
          const message = describeResult(`hook ${name}`, result, options.timeoutMs);
          if (point.endsWith('_Enter') && point !== 'Rollback_Enter') throw new UpdateError('hook_failed', message, false);
          options.log.warn('hook failed; continuing', { hook: name, reason: message });
        }
      }
    },
  };
}
