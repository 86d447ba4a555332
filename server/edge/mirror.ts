import path from 'node:path';
import { downloadVerified } from '../../lib/download.ts';
import { ensurePrivateDir } from '../../lib/files.ts';
import type { EdgeTask, EdgeTaskList } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import { hexOf } from '../../protocol/names.ts';
import type { BlobStore } from '../blobs/store.ts';
import type { MetadataMirror } from './metadata.ts';
import { UpstreamUnavailable, type Upstream } from './upstream.ts';

/*
 * Pull-mode mirroring: the edge asks its origin for its pending tasks (the origin never opens a
 * connection to the edge), fetches each blob with the resumable downloader devices use
 * (lib/download.ts: Range + If-Range into `<blob>.part`, sha256 checked before the rename, so a
 * blob becomes visible only once verified), and the metadata last, verified by TUF
 * (metadata.ts). A blob already in the store (fetched before a crash) is reported without being
 * fetched again; a `.part` left by `kill -9` resumes where it stopped.
 */

export interface MirrorOptions {
  upstream: Upstream;
  blobs: BlobStore;
  metadata: MetadataMirror;
  /** How long to wait after a failed call before asking again, in milliseconds (and between asks without long polls). */
  pollMs: number;
  /** An idle edge's request for tasks is held this long by the origin, in seconds (0: plain polling every pollMs). */
  longPollSeconds: number;
  /** Blobs fetched side by side. */
  parallel: number;
  /** A transfer with no byte for this long is cut and retried, in milliseconds. */
  stallTimeoutMs: number;
  log: Logger;
  /** A blob was just fetched and verified (the serve-time check records it). */
  onVerified?(digest: string): Promise<void>;
}

export interface Mirror {
  /** One pass over the pending tasks; resolves with how many it settled. */
  syncOnce(): Promise<number>;
  /** Starts polling until stop(). */
  start(): void;
  /** Asks at once (an origin hint, a test). */
  wake(): void;
  stop(): Promise<void>;
  /** When the last pass ended without an outage (undefined: never). */
  lastSyncAt(): Date | undefined;
  /** Fetches a blob again (one found damaged on disk); false when the origin will not give it. */
  repair(digest: string): Promise<boolean>;
}

const transferTries = 3;
/**
 * An edge reads its origin's blobs into one reused 1 MiB buffer per transfer (lib/raw-get.ts):
 * node:http's fresh Buffer per 64 KiB read cost the edge more CPU than the sha256 of the bytes.
 * An edge is a server, so 1 MiB per parallel transfer is nothing; devices keep node:http.
 */
const mirrorReadBufferBytes = 1024 * 1024;

const roundAll = (timings: object): Record<string, number> => Object.fromEntries(Object.entries(timings).map(([key, value]) => [key, Math.round(value as number)]));

export function createMirror(options: MirrorOptions): Mirror {
  const { upstream, blobs, log } = options;
  const controller = new AbortController();
  let running: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let lastSync: Date | undefined;

  async function fetchBlob(task: Pick<Extract<EdgeTask, { kind: 'blob' }>, 'digest' | 'size' | 'bandwidth'>): Promise<number> {
    if (await blobs.stat(task.digest)) return 0;
    const destination = blobs.pathOf(task.digest);
    await ensurePrivateDir(path.dirname(destination));
    let lastError: unknown;
    for (let attempt = 1; attempt <= transferTries; attempt++) {
      try {
        const result = await downloadVerified({
          url: upstream.blobUrl(task.digest),
          token: upstream.token,
          destination,
          length: task.size,
          sha256: hexOf(task.digest),
          stallTimeoutMs: options.stallTimeoutMs,
          readBufferBytes: mirrorReadBufferBytes,
          // The policy's limit is for the edge as a whole: each of the parallel transfers takes its share.
          ...(task.bandwidth ? { bandwidthLimit: Math.max(1, Math.floor(task.bandwidth / Math.max(1, options.parallel))) } : {}),
          signal: controller.signal,
        });
        await options.onVerified?.(task.digest);
        // Where the time went (scripts/bench/replicate.ts sums these with BENCH_DEBUG=1).
        const { timings } = result;
        log.debug('blob fetched', { digest: task.digest, bytes: result.received, resumedFrom: result.resumedFrom, attempt, ...roundAll(timings), mbPerSecond: timings.transferMs > 0 ? Math.round(result.received / 1e3 / timings.transferMs) : null });
        return result.received;
      } catch (error) {
        lastError = error;
        if (controller.signal.aborted || (error as { transient?: boolean }).transient === false) break;
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
      }
    }
    throw lastError;
  }

  type Outcome = { status: 'succeeded'; bytes: number; durationMs: number } | { status: 'failed'; error: string; durationMs: number };

  /** Does a task's work; an outage or a shutdown throws (the task stays pending at the origin: the next pass resumes it). */
  async function perform(task: EdgeTask, work: () => Promise<number>): Promise<Outcome> {
    const started = Date.now();
    try {
      const bytes = await work();
      return { status: 'succeeded', bytes, durationMs: Date.now() - started };
    } catch (error) {
      if (error instanceof UpstreamUnavailable || controller.signal.aborted) throw error;
      const message = (error as Error).message.slice(0, 1000);
      log.warn('edge task failed', { task: task.id, kind: task.kind, error: message });
      return { status: 'failed', error: message, durationMs: Date.now() - started };
    }
  }

  /** Tells the origin how a task went; true when it succeeded. */
  async function report(task: EdgeTask, outcome: Outcome): Promise<boolean> {
    const reporting = performance.now();
    await upstream.report(task.id, outcome.status === 'succeeded' ? outcome : { status: 'failed', bytes: 0, durationMs: outcome.durationMs, error: outcome.error });
    log.debug('task reported', { task: task.id, kind: task.kind, reportMs: Math.round(performance.now() - reporting) });
    return outcome.status === 'succeeded';
  }

  const settle = async (task: EdgeTask, work: () => Promise<number>): Promise<boolean> => report(task, await perform(task, work));

  /** `given`: the tasks a long poll just answered (asking again would cost a round trip). */
  async function syncOnce(given?: EdgeTaskList): Promise<number> {
    const asked = performance.now();
    const { tasks } = given ?? (await upstream.tasks());
    if (tasks.length > 0) log.debug('tasks received', { tasks: tasks.length, answerMs: Math.round(performance.now() - asked) });
    let settled = 0;
    const blobTasks = tasks.filter((t): t is Extract<EdgeTask, { kind: 'blob' }> => t.kind === 'blob');
    const failedRuns = new Set<number>();
    // A pool of `parallel` workers over the blob tasks, in planned order.
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.max(1, options.parallel) }, async () => {
        // A worker's report of its last blob goes out while it fetches the next, one report in
        // flight per worker: a report is a database write at the origin, and waiting for it left
        // the link idle between blobs. All are in before the metadata (below) asks what is left.
        let reporting: Promise<unknown> = Promise.resolve();
        try {
          while (next < blobTasks.length && !controller.signal.aborted) {
            const task = blobTasks[next++]!;
            const outcome = await perform(task, () => fetchBlob(task));
            if (outcome.status === 'failed') failedRuns.add(task.run);
            await reporting;
            reporting = report(task, outcome).then((succeeded) => succeeded && settled++);
          }
        } finally {
          await reporting;
        }
      }),
    );
    if (controller.signal.aborted) return settled;
    // Withdrawals: the revoked version's manifest leaves the store (its blobs may be shared).
    for (const task of tasks) {
      if (task.kind !== 'withdraw') continue;
      if (await settle(task, async () => (await blobs.remove(task.digest).catch(() => undefined), 0))) settled++;
    }
    const metadataTasks = tasks.filter((t): t is Extract<EdgeTask, { kind: 'metadata' }> => t.kind === 'metadata');
    if (metadataTasks.length > 0) {
      // Metadata naming bytes this edge failed to fetch is not published: it would send devices
      // to a blob the edge does not have. Those tasks fail with the reason; a retry redoes them.
      const ready = metadataTasks.filter((t) => !failedRuns.has(t.run));
      for (const task of metadataTasks.filter((t) => failedRuns.has(t.run))) {
        await upstream.report(task.id, { status: 'failed', bytes: 0, error: 'blobs of this run failed at the edge; metadata not published' });
      }
      // The origin's current timestamp may already name a version approved since this pass began,
      // whose blobs a newer run planned for this edge: publish only once no blob is outstanding,
      // so a device never reads metadata naming bytes the edge lacks (the next pass fetches them).
      const outstanding = ready.length > 0 && (await upstream.tasks()).tasks.some((t) => t.kind === 'blob');
      if (outstanding) log.debug('metadata waits for blobs of a newer run');
      else if (ready.length > 0) {
        const started = Date.now();
        try {
          const result = await options.metadata.sync([...new Set(ready.map((t) => t.file))]);
          log.debug('metadata published', { files: result.published.length, ms: Date.now() - started });
          // A planned file the origin has since replaced (a re-signed timestamp) counts as the newer one fetched.
          const published = new Set(result.published);
          // Side by side: each is a round trip and a database write at the origin, and the run
          // ends with the last of them.
          const durationMs = Date.now() - started;
          await Promise.all(ready.map((task) => upstream.report(task.id, { status: 'succeeded', bytes: published.has(task.file) ? task.size : 0, durationMs })));
          settled += ready.length;
        } catch (error) {
          if (error instanceof UpstreamUnavailable || controller.signal.aborted) throw error;
          const message = `metadata refused: ${(error as Error).message}`.slice(0, 1000);
          log.error('edge metadata refused', { error: message });
          for (const task of ready) await upstream.report(task.id, { status: 'failed', bytes: 0, error: message });
        }
      }
    }
    lastSync = new Date();
    return settled;
  }

  async function loop(): Promise<void> {
    let polled: EdgeTaskList | undefined;
    while (!controller.signal.aborted) {
      let settled = 0;
      try {
        const given = polled;
        polled = undefined;
        settled = await syncOnce(given);
      } catch (error) {
        if (controller.signal.aborted) return;
        log.warn('edge sync failed; retrying', { error: (error as Error).message });
      }
      // Straight on while there is work; otherwise a long poll: the origin answers as soon as a
      // run gives this edge tasks (its hint, over the connection the edge opens), or after
      // longPollSeconds. After a failure (the origin unreachable) the poll interval passes first.
      if (settled > 0) continue;
      try {
        if (options.longPollSeconds > 0) {
          const answer = await upstream.tasks(options.longPollSeconds, controller.signal);
          if (answer.tasks.length > 0) {
            // The moment the origin's hint arrived (the benchmark measures the wake-up from it).
            log.debug('long poll answered', { tasks: answer.tasks.length });
            polled = answer;
          }
          continue;
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        log.debug('long poll failed', { error: (error as Error).message });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => wakeUp?.(), options.pollMs);
        wakeUp = () => {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        };
      });
    }
  }

  return {
    syncOnce: () => syncOnce(),
    start() {
      running ??= loop();
    },
    wake: () => wakeUp?.(),
    async stop() {
      controller.abort();
      wakeUp?.();
      await running?.catch(() => {});
    },
    lastSyncAt: () => lastSync,
    async repair(digest) {
      try {
        // The origin lets an edge read what its tasks named; HEAD gives the length to verify against.
        const head = await fetch(upstream.blobUrl(digest), { method: 'HEAD', headers: { authorization: `Bearer ${upstream.token}` }, signal: AbortSignal.timeout(options.stallTimeoutMs) });
        const size = Number(head.headers.get('content-length'));
        if (!head.ok || !Number.isSafeInteger(size)) return false;
        await fetchBlob({ digest, size, bandwidth: null });
        return true;
      } catch (error) {
        log.warn('blob repair failed', { digest, error: (error as Error).message });
        return false;
      }
    },
  };
}
