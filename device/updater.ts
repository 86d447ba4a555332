import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { UpdatePolicy } from '../protocol/device-config.ts';
import { ProtocolError, type ErrorBody } from '../protocol/errors.ts';
import type { Logger } from '../protocol/log.ts';
import { bundleManifest, type BundleManifest } from '../protocol/manifest.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { manifestTargetPath } from '../protocol/targets.ts';
import { describeResult, runCommand } from './command.ts';
import { UpdateError } from './errors.ts';
import { downloadVerified } from '../lib/download.ts';
import { checkDowngrade } from './guard.ts';
import type { HookPhase, HookRunner } from './hooks.ts';
import { pruneSlots, slotExists, stageSlot, switchCurrent } from './install.ts';
import { writeJournal } from './journal.ts';
import { readUpdateLock } from './lock.ts';
import type { ModuleTable } from './modules.ts';
import { artifactTargetPaths, planArtifacts, planManifest, planSpace, uniqueBlobs, type SignedTarget } from './plan.ts';
import {
  backoffDelay,
  canAbort,
  canStart,
  delayUntilWindow,
  terminalStates,
  transition,
  type Journal,
  type PlannedArtifact,
  type UpdateEvent,
  type UpdateRecord,
} from './state.ts';
import type { TrustClient } from '../tuf/client.ts';
import { TrustError } from '../tuf/errors.ts';

/**
 * The shell around the pure state machine (state.ts): for the state the journal names, it does
 * that step's side effects and turns the outcome into an event; the next journal is written
 * atomically before anything else happens. One `step()` runs one state; the daemon calls it in a
 * loop and sleeps when told to wait (backoff, install window, update lock).
 */
export interface UpdaterDeps {
  dataDir: string;
  journalFile: string;
  serverUrl: string;
  /** The bearer token for blob downloads; absent when `get` authenticates. */
  token?: string | undefined;
  /** Makes a download's GET (device/servers.ts: the server pool, with failover); default: to serverUrl. */
  get?: ((url: string, headers: Record<string, string>, signal: AbortSignal) => Promise<import('node:http').IncomingMessage>) | undefined;
  /** The server that answered the last request (the pool's), recorded in the journal's `servedBy`. */
  servedBy?: (() => string) | undefined;
  trust: TrustClient;
  policy: UpdatePolicy;
  modules: ModuleTable;
  hooks: HookRunner;
  log: Logger;
  now: () => Date;
  random: () => number;
  /** Free bytes on the file system of `dir` (statfs by default; a test may pretend a full disk). */
  freeBytes?: (dir: string) => Promise<number>;
  /** Aborted when the daemon stops: transfers end and keep their partial bytes. */
  signal: AbortSignal;
  /** Told about every journal write and every wait, to report it. */
  onChange: (journal: Journal, info: StepInfo) => void;
}

export interface StepInfo {
  /** Why the update is held back right now (install window, update lock, a retry). */
  waiting?: string;
  progress?: { bytes: number; total: number };
}

export type StepResult = { type: 'idle' } | { type: 'continue' } | { type: 'wait'; ms: number; reason: string };

export interface Release {
  bundle: string;
  version: string;
}

export interface Offer extends Release {
  deploymentId: number | null;
  /** The operator's retry generation (`convoy deployment retry` raises it); absent: 0. */
  attempt?: number;
  /** The deployment's retry policy: verification failures allowed before the update fails. */
  maxAttempts?: number;
}

/**
 * Failures of verification (metadata, manifest, artifact bytes) that may come from one bad
 * mirror or cache rather than from the release: they count as attempts, with backoff, up to the
 * deployment's retry policy, never as an instant permanent failure (issue #10 item 3).
 */
const verificationCodes = new Set(['untrusted_metadata', 'target_missing', 'digest_mismatch']);
const beforeSwitchStates = new Set(['fetching-metadata', 'downloading', 'verifying', 'staging']);

export function createUpdater(deps: UpdaterDeps, initial: Journal) {
  let journal = initial;
  const log = deps.log;
  /** Enter hooks already run for (update id, phase) in this process. */
  const entered = new Set<string>();
  const downloadsDir = path.join(deps.dataDir, 'downloads');
  const sourceOf = (artifact: { sha256: string }) => path.join(downloadsDir, artifact.sha256);
  /** Whether the current step received new bytes: a retry after progress starts its backoff over. */
  let progressed = false;
  /**
   * Blobs the last download step verified in this process (hashed while they arrived, fsynced,
   * renamed only then): the verifying step trusts them instead of reading a large file a second
   * time (for 1 GiB, seconds of disk and CPU on a small device). A blob found already downloaded,
   * or anything after a restart (this set is empty then), is hashed again from disk.
   */
  const verifiedHere = new Set<string>();
  /** Servers that sent this update metadata or bytes in this process (journal `servedBy`). */
  const served = new Set<string>();

  const commit = async (event: UpdateEvent, info: StepInfo = {}): Promise<Journal> => {
    const next = transition(journal, event);
    await writeJournal(deps.journalFile, next);
    const before = journal.update?.state;
    journal = next;
    if (before !== next.update?.state) log.info('update state', { from: before ?? 'idle', to: next.update?.state, bundle: next.update?.release.bundle, version: next.update?.release.version });
    deps.onChange(journal, info);
    return next;
  };

  const enter = async (phase: HookPhase, update: UpdateRecord) => {
    const key = `${update.id}:${phase}`;
    if (entered.has(key)) return;
    await deps.hooks.run(`${phase}_Enter`, update);
    entered.add(key);
  };

  /** Downloads a signed target into the content-addressed download cache. */
  const download = async (info: { sha256: string; length: number }, onProgress?: (bytes: number) => void): Promise<string> => {
    const destination = sourceOf(info);
    let first: number | undefined;
    const result = await downloadVerified({
      url: `${deps.serverUrl}/api/v1/blobs/sha256:${info.sha256}`,
      token: deps.token,
      get: deps.get,
      destination,
      length: info.length,
      sha256: info.sha256,
      stallTimeoutMs: deps.policy.stallTimeoutMs,
      bandwidthLimit: deps.policy.bandwidthLimit,
      syncIntervalBytes: deps.policy.downloadSyncBytes,
      syncIntervalMs: deps.policy.downloadSyncMs,
      signal: deps.signal,
      onProgress: (bytes) => {
        if (first === undefined) first = bytes;
        else if (bytes > first) {
          progressed = true;
          // Bytes from this server are on disk now (also when the transfer breaks off later).
          if (deps.servedBy) served.add(deps.servedBy());
        }
        onProgress?.(bytes);
      },
    });
    if (result.resumedFrom > 0 && result.received > 0) log.info('resumed a download', { sha256: info.sha256, from: result.resumedFrom, received: result.received, ...(deps.servedBy ? { server: deps.servedBy() } : {}) });
    if (result.cached) verifiedHere.delete(info.sha256);
    else verifiedHere.add(info.sha256);
    return destination;
  };

  const handlers: Record<string, (update: UpdateRecord) => Promise<StepResult>> = {
    async 'fetching-metadata'(update) {
      served.clear();
      await deps.trust.refresh();
      if (deps.servedBy) served.add(deps.servedBy());
      // Anti-downgrade (device/guard.ts): an older version than the one running needs a signed rollback.
      await checkDowngrade(deps.trust, journal, update.release);
      // The plan (device/plan.ts) decides; this shell only looks up signed info and fetches.
      const manifestInfo = planManifest(update.release, await deps.trust.targetInfo(manifestTargetPath(update.release.bundle, update.release.version)));
      const manifestFile = await download(manifestInfo);
      const manifest = await readManifest(manifestFile);
      const targets = new Map<string, SignedTarget | undefined>();
      for (const targetPath of artifactTargetPaths(update.release, manifest)) targets.set(targetPath, await deps.trust.targetInfo(targetPath));
      const artifacts = planArtifacts(update.release, manifest, targets);
      log.info('manifest verified', { bundle: update.release.bundle, version: update.release.version, artifacts: artifacts.length });
      await commit({ type: 'planned', artifacts, servedBy: [...served] });
      return { type: 'continue' };
    },

    async downloading(update) {
      const artifacts = uniqueBlobs(update.artifacts!);
      const total = artifacts.reduce((sum, a) => sum + a.length, 0);
      await checkSpace(artifacts);
      await enter('Download', update);
      const done = new Map<string, number>();
      let lastReport = 0;
      for (const artifact of artifacts) {
        try {
          await download(artifact, (bytes) => {
            done.set(artifact.sha256, bytes);
            const now = Date.now();
            if (now - lastReport < 1000) return;
            lastReport = now;
            deps.onChange(journal, { progress: { bytes: sum(done), total } });
          });
        } catch (error) {
          if (error instanceof UpdateError && error.code === 'digest_mismatch') {
            log.warn('downloaded bytes do not match the signed hash', { sha256: artifact.sha256, failures: update.digestFailures + 1 });
            await commit({ type: 'corrupted', error: { code: error.code, message: error.message } });
            return { type: 'continue' };
          }
          throw error;
        }
        done.set(artifact.sha256, artifact.length);
      }
      // Content an artifact names beyond its own bytes (an OCI manifest's blobs), fetched by
      // digest through the same verified, resumable downloader.
      for (const artifact of update.artifacts!) {
        const module = deps.modules[artifact.type];
        if (!module.prepare) continue;
        await module.prepare({ artifact, source: sourceOf(artifact), fetch: (sha256, length) => download({ sha256, length }) });
      }
      await commit({ type: 'downloaded', servedBy: [...served] }, { progress: { bytes: total, total } });
      return { type: 'continue' };
    },

    async verifying(update) {
      // A blob this process just downloaded was hashed while it arrived and renamed only after
      // (verifiedHere). Any other (found on disk, or after a restart: a power cut may have torn
      // it) is hashed again as it is on disk now, before anything is staged from it.
      for (const artifact of uniqueBlobs(update.artifacts!)) {
        if (verifiedHere.has(artifact.sha256)) continue;
        const actual = await hashFile(sourceOf(artifact));
        if (actual !== artifact.sha256) {
          await fs.rm(sourceOf(artifact), { force: true });
          await commit({ type: 'corrupted', error: { code: 'digest_mismatch', message: `sha256:${artifact.sha256} no longer matches on disk (${actual ?? 'missing'}); fetching it again` } });
          return { type: 'continue' };
        }
      }
      await deps.hooks.run('Download_Leave', update);
      await commit({ type: 'verified' });
      return { type: 'continue' };
    },

    async staging(update) {
      const wait = windowWait();
      if (wait) return wait;
      await enter('Install', update);
      if (!(await slotExists(deps.dataDir, update.slot))) await checkSpace([]);
      await stageSlot({ dataDir: deps.dataDir, slot: update.slot, release: update.release, artifacts: update.artifacts!, sourceOf, modules: deps.modules, log });
      await commit({ type: 'staged' });
      return { type: 'continue' };
    },

    async switching(update) {
      const wait = windowWait();
      if (wait) return wait;
      const lock = await readUpdateLock(path.resolve(deps.dataDir, deps.policy.lockFile));
      if (lock.held) {
        return { type: 'wait', ms: Math.min(deps.policy.retryBaseMs, 5_000), reason: `the update lock is held${lock.pid ? ` by process ${lock.pid}` : ''}; switching when it is free` };
      }
      await enter('Install', update);
      await switchCurrent(deps.dataDir, update.slot);
      log.info('switched to the new release', { bundle: update.release.bundle, version: update.release.version, slot: update.slot });
      await deps.hooks.run('Install_Leave', update);
      await commit({ type: 'switched' });
      return { type: 'continue' };
    },

    async testing(update) {
      const failure = await checkHealth(update);
      if (failure) {
        log.warn('health check failed; rolling back', { reason: failure.message });
        await commit({ type: 'unhealthy', error: failure });
        return { type: 'continue' };
      }
      try {
        await enter('Commit', update);
      } catch (error) {
        const body = errorBodyOf(error);
        await commit({ type: 'unhealthy', error: body });
        return { type: 'continue' };
      }
      await commit({ type: 'healthy' });
      log.info('committed', { bundle: update.release.bundle, version: update.release.version });
      await deps.hooks.run('Commit_Leave', journal.update!);
      await cleanUp();
      return { type: 'continue' };
    },

    async 'rolling-back'(update) {
      await enter('Rollback', update);
      await switchCurrent(deps.dataDir, update.from?.slot ?? null);
      log.warn('rolled back', { to: update.from ? `${update.from.bundle}@${update.from.version}` : 'nothing', reason: update.error?.message });
      await commit({ type: 'reverted' });
      await deps.hooks.run('Rollback_Leave', journal.update!);
      await cleanUp();
      return { type: 'continue' };
    },
  };

  const windowWait = (): StepResult | undefined => {
    const ms = delayUntilWindow(deps.now(), deps.policy.installWindow);
    if (ms === 0) return undefined;
    const window = deps.policy.installWindow!;
    return { type: 'wait', ms: Math.min(ms, 60_000), reason: `outside the install window ${window.start}-${window.end}; downloaded and waiting` };
  };

  const checkSpace = async (pending: readonly PlannedArtifact[]) => {
    const update = journal.update!;
    const held = new Map<string, number>();
    for (const artifact of pending) held.set(artifact.sha256, await sizeOf(sourceOf(artifact)) ?? await sizeOf(`${sourceOf(artifact)}.part`) ?? 0);
    const { needed } = planSpace({ pending, artifacts: update.artifacts!, held, staged: await slotExists(deps.dataDir, update.slot), reserveBytes: deps.policy.reserveBytes });
    const free = await (deps.freeBytes ?? statfsFree)(deps.dataDir);
    if (free < needed) {
      throw new UpdateError('insufficient_space', `${free} bytes free on the data file system, ${needed} needed (download, staging and a reserve of ${deps.policy.reserveBytes})`, true);
    }
  };

  const checkHealth = async (update: UpdateRecord): Promise<ErrorBody | undefined> => {
    const check = deps.policy.healthCheck;
    if (!check) return undefined;
    let last = '';
    for (let attempt = 0; attempt <= check.retries; attempt++) {
      if (attempt > 0) await sleep(check.intervalMs, deps.signal);
      if (deps.signal.aborted) throw new UpdateError('health_check_failed', 'the daemon stopped during the health check', false);
      const result = await runCommand(check.command, {
        cwd: deps.dataDir,
        env: { CONVOY_CURRENT: path.join(deps.dataDir, 'current'), CONVOY_BUNDLE: update.release.bundle, CONVOY_VERSION: update.release.version, CONVOY_SLOT: update.slot },
        timeoutMs: check.timeoutMs,
        log,
        what: 'health check',
      });
      if (result.ok) return undefined;
      last = describeResult('the health check', result, check.timeoutMs);
      log.warn('health check attempt failed', { attempt: attempt + 1, of: check.retries + 1, reason: last });
    }
    return { code: 'health_check_failed', message: `${last} (after ${check.retries + 1} attempts)` };
  };

  /** After an update ends: keep the installed slot, the N previous ones; empty the download cache. */
  const cleanUp = async () => {
    const keepN = deps.policy.keepSlots;
    const kept = journal.kept.slice(0, keepN);
    const keep = new Set([...(journal.installed ? [journal.installed.slot] : []), ...kept.map((k) => k.slot)]);
    const removed = await pruneSlots(deps.dataDir, keep);
    if (kept.length !== journal.kept.length) {
      journal = { ...journal, kept, storeCount: journal.storeCount + 1 };
      await writeJournal(deps.journalFile, journal);
    }
    if (removed.length) log.info('removed old slots', { slots: removed });
    await fs.rm(downloadsDir, { recursive: true, force: true });
  };

  return {
    get journal() {
      return journal;
    },

    /**
     * A release the device should run (a notice or a poll). Starts an update unless the device
     * runs it already, is busy past the switch, or this very deployment already failed or was
     * rolled back here (a new deployment of the same version is a request to try again).
     */
    async offer(offer: Offer): Promise<'started' | 'current' | 'busy' | 'refused-before' | 'running'> {
      const update = journal.update;
      const same = (r: Release | undefined | null) => r?.bundle === offer.bundle && r.version === offer.version;
      if (update && !terminalStates.has(update.state) && same(update.release)) return 'running';
      if (same(journal.installed) && (!update || terminalStates.has(update.state))) return 'current';
      // What failed (or was aborted) for this deployment is tried again only when the operator
      // re-armed it (a higher attempt), never in a loop.
      if (update && terminalStates.has(update.state) && update.state !== 'committed' && same(update.release) && update.deploymentId === offer.deploymentId && (offer.attempt ?? 0) <= (update.attempt ?? 0)) return 'refused-before';
      if (!canStart(journal)) return 'busy';
      if (update && !terminalStates.has(update.state)) log.info('a newer deployment replaces the running update', { from: update.release.version, to: offer.version });
      const id = randomBytes(5).toString('hex');
      await commit({
        type: 'start',
        id,
        release: { bundle: offer.bundle, version: offer.version },
        deploymentId: offer.deploymentId,
        at: deps.now().toISOString(),
        ...(offer.attempt !== undefined ? { attempt: offer.attempt } : {}),
        ...(offer.maxAttempts !== undefined ? { maxAttempts: offer.maxAttempts } : {}),
      });
      // A replaced update may have left a stage directory or downloads behind.
      return 'started';
    },

    /**
     * The operator aborted this deployment: an update for it that has not switched ends here
     * (also while it waits on the update lock or the install window) and the device stays on what
     * it runs. Returns whether it stopped one.
     */
    async abort(deploymentId: number): Promise<boolean> {
      const update = journal.update;
      if (!update || update.deploymentId !== deploymentId || !canAbort(journal)) return false;
      log.info('the deployment was aborted; the update stops before the switch', { deployment: deploymentId, state: update.state, version: update.release.version });
      await commit({ type: 'abort' });
      await cleanUp();
      return true;
    },

    /** At start: apply the recovery table to the state the journal holds. */
    async recover(): Promise<void> {
      const update = journal.update;
      if (!update || terminalStates.has(update.state)) {
        await cleanUp();
        return;
      }
      log.info('recovering an interrupted update', { state: update.state, bundle: update.release.bundle, version: update.release.version });
      await commit({ type: 'restarted' });
    },

    /** Runs the step the journal names. Errors become events: retry later, or fail (roll back). */
    async step(): Promise<StepResult> {
      const update = journal.update;
      if (!update || terminalStates.has(update.state)) return { type: 'idle' };
      const handler = handlers[update.state]!;
      progressed = false;
      try {
        return await handler(update);
      } catch (error) {
        const body = errorBodyOf(error);
        const verificationRetry = verificationCodes.has(body.code) && beforeSwitchStates.has(update.state) && update.attempts + 1 < (update.maxAttempts ?? 1);
        const transient = isTransient(error) || verificationRetry;
        if (deps.signal.aborted) return { type: 'idle' };
        if (!transient) {
          log.warn('update step failed', { state: update.state, code: body.code, reason: body.message });
          const next = await commit({ type: 'fail', error: body });
          if (next.update && terminalStates.has(next.update.state)) await cleanUp();
          return { type: 'continue' };
        }
        // Bytes that arrived but failed verification are no progress: the attempt counts, so a bad
        // mirror never makes a tight loop.
        const next = await commit({ type: 'retry', error: body, progressed: progressed && !verificationRetry });
        const attempts = next.update!.attempts;
        const ms = backoffDelay(attempts, deps.policy.retryBaseMs, deps.policy.retryMaxMs, deps.random());
        log.warn('update step will be retried', { state: update.state, code: body.code, reason: body.message, attempt: attempts, inMs: ms });
        return { type: 'wait', ms, reason: `retrying in ${Math.round(ms / 1000)} s: ${body.message}` };
      }
    },
  };
}

export type Updater = ReturnType<typeof createUpdater>;

function errorBodyOf(error: unknown): ErrorBody {
  if (error instanceof UpdateError || error instanceof TrustError || error instanceof ProtocolError) return { code: error.code, message: error.message.slice(0, 1000) };
  const code = (error as NodeJS.ErrnoException).code === 'ENOSPC' ? 'insufficient_space' : 'install_failed';
  return { code, message: String((error as Error)?.message ?? error).slice(0, 1000) };
}

function isTransient(error: unknown): boolean {
  if (error instanceof UpdateError || error instanceof TrustError) return error.transient;
  // A full disk may be freed; anything else unexpected is a fault of this release or device.
  return (error as NodeJS.ErrnoException).code === 'ENOSPC';
}

async function readManifest(file: string): Promise<BundleManifest> {
  return parseWith(bundleManifest, parseJson(await fs.readFile(file, 'utf8'), 'manifest'), 'manifest', 'untrusted_metadata');
}

function sum(map: Map<string, number>): number {
  let total = 0;
  for (const value of map.values()) total += value;
  return total;
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return undefined;
  }
}

async function hashFile(file: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch {
    return undefined;
  }
  return hash.digest('hex');
}

async function statfsFree(dir: string): Promise<number> {
  const stats = await fs.statfs(dir);
  return stats.bavail * stats.bsize;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });
}
