import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ensurePrivateDir, writeFileAtomic } from '../../lib/files.ts';
import type { Logger } from '../../protocol/log.ts';
import { UpstreamRefused, UpstreamUnavailable, type Upstream } from './upstream.ts';

/*
 * Store and forward of device reports (issue #12 item 1): every status or inventory report the
 * edge's broker receives is written to disk first (one file per report, atomically, named so
 * they sort in arrival order), then forwarded to the origin in that order and deleted once the
 * origin has it. While the uplink is down the queue grows on disk (bounded by `maxQueued`: the
 * oldest go first); a crash loses nothing written. A report forwarded twice (a crash between the
 * origin's answer and the delete) counts once: the origin ignores a sequence number it has seen.
 */

export interface ReportQueue {
  enqueue(deviceId: string, payload: Buffer): Promise<void>;
  /** Forwards what is queued, in order; stops at the first outage. Resolves with how many went. */
  flush(): Promise<number>;
  /** Reports waiting for the origin. */
  pending(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createReportQueue(deps: { dir: string; upstream: Pick<Upstream, 'forwardReport'>; retryMs: number; maxQueued?: number; log: Logger }): ReportQueue {
  const max = deps.maxQueued ?? 100_000;
  let counter = 0;
  let flushing: Promise<number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const list = async () => (await fs.readdir(deps.dir).catch(() => [] as string[])).filter((name) => name.endsWith('.json')).sort();

  async function flushOnce(): Promise<number> {
    let sent = 0;
    for (const name of await list()) {
      if (stopped) break;
      const file = path.join(deps.dir, name);
      let record: { device: string; payload: string };
      try {
        record = JSON.parse(await fs.readFile(file, 'utf8')) as { device: string; payload: string };
      } catch {
        await fs.rm(file, { force: true });
        continue;
      }
      try {
        await deps.upstream.forwardReport(record.device, record.payload);
      } catch (error) {
        if (error instanceof UpstreamUnavailable) return sent;
        // The origin refused it for good (a device since removed): it will never be taken.
        if (error instanceof UpstreamRefused) deps.log.warn('device report refused by the origin; dropped', { device: record.device, error: error.message });
        else throw error;
      }
      await fs.rm(file, { force: true });
      sent++;
    }
    return sent;
  }

  const flush = (): Promise<number> => {
    flushing ??= flushOnce().finally(() => (flushing = undefined));
    return flushing;
  };

  return {
    async enqueue(deviceId, payload) {
      await ensurePrivateDir(deps.dir);
      // Time first, then a counter: names sort in arrival order, across restarts too.
      const name = `${String(Date.now()).padStart(15, '0')}-${String(counter++).padStart(9, '0')}-${randomBytes(3).toString('hex')}.json`;
      await writeFileAtomic(path.join(deps.dir, name), JSON.stringify({ device: deviceId, payload: payload.toString('utf8') }), 0o600);
      const queued = await list();
      for (const old of queued.slice(0, Math.max(0, queued.length - max))) await fs.rm(path.join(deps.dir, old), { force: true });
      void flush().catch((error: unknown) => deps.log.error('forwarding reports failed', { error }));
    },
    flush,
    pending: async () => (await list()).length,
    start() {
      const tick = () => {
        if (stopped) return;
        flush()
          .catch((error: unknown) => deps.log.error('forwarding reports failed', { error }))
          .finally(() => {
            if (!stopped) timer = setTimeout(tick, deps.retryMs);
          });
      };
      tick();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await flushing?.catch(() => {});
    },
  };
}
