import * as z from 'zod';
import { errorCodes, type ErrorBody } from '../protocol/errors.ts';
import type { DeviceState } from '../protocol/messages.ts';
import { artifactName, artifactType, bundleName, version } from '../protocol/names.ts';

/*
 * The update as an explicit state machine (after Mender's app/state.go): the journal names the
 * step about to run; the shell (updater.ts) does that step's side effects and hands back an
 * event; `transition` (pure) computes the next journal, which is written atomically before the
 * next side effect. After a restart `recover` (one table) decides: redo, resume or roll back.
 *
 * State names are stable strings, persisted on disk: never rename one, only add.
 */
export const updateStates = [
  'idle',
  'fetching-metadata',
  'downloading',
  'verifying',
  'staging',
  'switching',
  'testing',
  'committed',
  'rolling-back',
  'rolled-back',
  'failed',
  // The operator aborted the deployment before the switch: nothing changed, the update ended.
  'aborted',
] as const;
export type UpdateState = (typeof updateStates)[number];

export const terminalStates: ReadonlySet<UpdateState> = new Set(['idle', 'committed', 'rolled-back', 'failed', 'aborted']);
/** Before the switch nothing the device runs has changed: a failure simply ends the update. */
const beforeSwitch: ReadonlySet<UpdateState> = new Set(['fetching-metadata', 'downloading', 'verifying', 'staging']);

const sha256Hex = z.string().regex(/^[a-f0-9]{64}$/);
/** Slot directory names: `<bundle>@<version>-<update id>`, nothing that walks out of slots/. */
export const slotName = z.string().regex(/^[a-z0-9][A-Za-z0-9@._-]{0,250}$/).refine((s) => !s.includes('..'), 'must not contain ".."');

export const slotRecord = z.strictObject({ bundle: bundleName, version, slot: slotName });
export type SlotRecord = z.infer<typeof slotRecord>;

export const plannedArtifact = z.strictObject({
  name: artifactName,
  type: artifactType,
  /** Signed length and SHA-256 (TUF target info), the only numbers the device trusts. */
  length: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  sha256: sha256Hex,
});
export type PlannedArtifact = z.infer<typeof plannedArtifact>;

const errorBody = z.strictObject({ code: z.enum(errorCodes), message: z.string().max(1000) });

export const updateRecord = z.strictObject({
  /** Random, fixed when the update starts: names the slot so every redo stages the same one. */
  id: z.string().regex(/^[a-z0-9]{6,32}$/),
  release: z.strictObject({ bundle: bundleName, version }),
  deploymentId: z.number().int().positive().nullable(),
  state: z.enum(updateStates),
  /** Set when the signed metadata has been read (leaving fetching-metadata). */
  artifacts: z.array(plannedArtifact).max(10_000).nullable(),
  slot: slotName,
  /** What `current` pointed at before the switch: the rollback target (null: nothing ran). */
  from: slotRecord.nullable(),
  /** Transient failures in a row in this state; drives the backoff. */
  attempts: z.number().int().nonnegative(),
  /** Downloads whose bytes hashed wrong; bounded, then the update fails. */
  digestFailures: z.number().int().nonnegative(),
  /** Times this state was entered again by a restart; bounded so a crash loop ends (Mender's store count). */
  restarts: z.number().int().nonnegative(),
  error: errorBody.nullable(),
  startedAt: z.iso.datetime(),
  /** The operator's retry generation of the deployment this update is for (absent in older journals: 0). */
  attempt: z.number().int().nonnegative().optional(),
  /** Verification failures allowed before the update fails (the deployment's retry policy; absent: 1). */
  maxAttempts: z.number().int().min(1).max(100).optional(),
  /**
   * The servers (base URLs, device.json `servers`) that served this update's metadata and
   * downloads, in the order they first did: which edge or origin a device's bytes came from.
   */
  servedBy: z.array(z.string().min(1).max(2048)).max(8).optional(),
});
export type UpdateRecord = z.infer<typeof updateRecord>;

export const journalSchemaId = 'convoy.device.journal/v3';
/**
 * Per bundle, the version the device last committed: the anti-downgrade floor for the device's
 * whole life (device/guard.ts). It rises with every commit and only goes down when a release
 * below it is committed, which the guard allows only with a signed rollback permission; so no
 * detour through another bundle (or an empty slot) forgets it.
 */
export const highWaterMarks = z.record(bundleName, version).refine((marks) => Object.keys(marks).length <= 10_000, 'at most 10000 bundles');
export type HighWaterMarks = z.infer<typeof highWaterMarks>;
export const journalSchema = z.strictObject({
  schema: z.literal(journalSchemaId),
  /** Incremented on every write: tells two journals apart, and shows how busy a device was. */
  storeCount: z.number().int().nonnegative(),
  /** What `current` points at. */
  installed: slotRecord.nullable(),
  /** Previous committed releases still on disk, newest first (rollback targets, kept N). */
  kept: z.array(slotRecord).max(10),
  /** The last or running update; its state is the device's state. */
  update: updateRecord.nullable(),
  /** bundle → version last committed (v3): what an unsigned offer may not go below. */
  highWater: highWaterMarks,
});
export type Journal = z.infer<typeof journalSchema>;

export const emptyJournal: Journal = { schema: journalSchemaId, storeCount: 0, installed: null, kept: [], update: null, highWater: {} };

/** Restarts of one state after which the update stops redoing it (a crash loop must end). */
export const maxRestarts = 20;
export const maxDigestFailures = 3;

export type UpdateEvent =
  | { type: 'start'; id: string; release: { bundle: string; version: string }; deploymentId: number | null; at: string; attempt?: number; maxAttempts?: number }
  /** The operator aborted this update's deployment: allowed only while nothing has switched. */
  | { type: 'abort' }
  | { type: 'planned'; artifacts: PlannedArtifact[]; servedBy?: readonly string[] }
  | { type: 'downloaded'; servedBy?: readonly string[] }
  | { type: 'verified' }
  /** Downloaded bytes hash wrong (in transit, or on disk since): fetch them again, a bounded number of times. */
  | { type: 'corrupted'; error: ErrorBody }
  | { type: 'staged' }
  | { type: 'switched' }
  | { type: 'healthy' }
  | { type: 'unhealthy'; error: ErrorBody }
  | { type: 'reverted' }
  /** Worth retrying as is (network, server outage, full disk): same state, one more attempt. */
  | { type: 'retry'; error: ErrorBody; progressed: boolean }
  | { type: 'fail'; error: ErrorBody }
  /** The daemon started and found this journal. */
  | { type: 'restarted' };

/** The record's servers with `more` added (each once, first use first; at most 8 kept). */
function servedBy(update: UpdateRecord, more: readonly string[] | undefined): Partial<UpdateRecord> {
  if (!more?.length) return {};
  const all = [...(update.servedBy ?? [])];
  for (const server of more) if (!all.includes(server)) all.push(server);
  return { servedBy: all.slice(0, 8) };
}

export class TransitionError extends Error {
  override readonly name = 'TransitionError';
}

/** May the running update be aborted? Only while nothing the device runs changed. */
export function canAbort(journal: Journal): boolean {
  const update = journal.update;
  return update !== null && (beforeSwitch.has(update.state) || update.state === 'switching');
}

/** May a new release replace the running update? Only while nothing the device runs changed. */
export function canStart(journal: Journal): boolean {
  return !journal.update || terminalStates.has(journal.update.state) || beforeSwitch.has(journal.update.state);
}

/**
 * The pure transition function: the journal after `event` in the journal's state. Throws a
 * TransitionError for an event the state does not accept (a bug in the shell, never data).
 */
export function transition(journal: Journal, event: UpdateEvent): Journal {
  const next = (update: UpdateRecord | null, changes: Partial<Journal> = {}): Journal => ({ ...journal, ...changes, update, storeCount: journal.storeCount + 1 });
  if (event.type === 'start') {
    if (!canStart(journal)) throw new TransitionError(`cannot start an update while ${journal.update!.state}`);
    const slot = `${event.release.bundle}@${event.release.version}-${event.id}`;
    return next({
      id: event.id,
      release: event.release,
      deploymentId: event.deploymentId,
      state: 'fetching-metadata',
      artifacts: null,
      slot,
      from: null,
      attempts: 0,
      digestFailures: 0,
      restarts: 0,
      error: null,
      startedAt: event.at,
      ...(event.attempt !== undefined ? { attempt: event.attempt } : {}),
      ...(event.maxAttempts !== undefined ? { maxAttempts: event.maxAttempts } : {}),
    });
  }
  const update = journal.update;
  if (!update || terminalStates.has(update.state)) throw new TransitionError(`no running update for event "${event.type}"`);
  const to = (state: UpdateState, fields: Partial<UpdateRecord> = {}, changes: Partial<Journal> = {}): Journal =>
    next({ ...update, attempts: 0, restarts: 0, error: null, ...fields, state }, changes);
  const expect = (state: UpdateState) => {
    if (update.state !== state) throw new TransitionError(`event "${event.type}" in state ${update.state}`);
  };

  switch (event.type) {
    case 'abort':
      // Before the switch (the switching state waits on the lock or window before it renames).
      if (!beforeSwitch.has(update.state) && update.state !== 'switching') throw new TransitionError(`cannot abort while ${update.state}`);
      return to('aborted', { error: null });
    case 'planned':
      expect('fetching-metadata');
      return to('downloading', { artifacts: event.artifacts, ...servedBy(update, event.servedBy) });
    case 'downloaded':
      expect('downloading');
      return to('verifying', servedBy(update, event.servedBy));
    case 'corrupted':
      if (update.state !== 'downloading') expect('verifying');
      if (update.digestFailures + 1 >= maxDigestFailures) return to('failed', { error: event.error });
      return to('downloading', { digestFailures: update.digestFailures + 1, error: event.error });
    case 'verified':
      expect('verifying');
      return to('staging');
    case 'staged':
      expect('staging');
      // The rollback target is fixed before the switch, in the same write that allows it.
      return to('switching', { from: journal.installed });
    case 'switched':
      expect('switching');
      return to('testing', {}, { installed: { ...update.release, slot: update.slot } });
    case 'healthy': {
      expect('testing');
      const kept = update.from ? [update.from, ...journal.kept.filter((k) => k.slot !== update.from!.slot && k.slot !== update.slot)] : journal.kept;
      // The mark follows the commit: up for a newer version, down only for a rollback the guard
      // let through because it was signed.
      return to('committed', {}, { kept: kept.slice(0, 10), highWater: { ...journal.highWater, [update.release.bundle]: update.release.version } });
    }
    case 'unhealthy':
      expect('testing');
      return to('rolling-back', { error: event.error });
    case 'reverted':
      expect('rolling-back');
      return to('rolled-back', { error: update.error }, { installed: update.from });
    case 'retry':
      // Switching and testing are local steps: retrying them would keep a half-tested release.
      if (update.state === 'switching' || update.state === 'testing') return transition(journal, { type: 'fail', error: event.error });
      return next({
        ...update,
        attempts: event.progressed ? 0 : update.attempts + 1,
        // While rolling back, the reason for the rollback stays the one reported.
        error: update.state === 'rolling-back' ? (update.error ?? event.error) : event.error,
      });
    case 'fail':
      if (beforeSwitch.has(update.state)) return to('failed', { error: event.error });
      // After the switch the new release may already run: a failure means going back.
      if (update.state === 'switching' || update.state === 'testing') return to('rolling-back', { error: event.error });
      // A failed rollback: nothing safer to do; report it (current may be either slot).
      return to('failed', { error: event.error });
    case 'restarted': {
      if (update.restarts + 1 > maxRestarts) {
        const error: ErrorBody = { code: 'install_failed', message: `the daemon restarted ${maxRestarts} times in state ${update.state}; giving up on this update` };
        return transition({ ...journal, update: { ...update, restarts: 0 } }, { type: 'fail', error });
      }
      const action = recover(update.state);
      if (action === 'roll-back') {
        return next({
          ...update,
          state: 'rolling-back',
          restarts: 0,
          error: { code: 'health_check_failed', message: 'the device restarted while the new release was being tested' },
        });
      }
      return next({ ...update, restarts: update.restarts + 1 });
    }
  }
}

export type RecoveryAction = 'nothing' | 'redo' | 'roll-back';

/**
 * The one recovery table: what a state found in the journal at start means. Every step before
 * the switch is idempotent (downloads resume, staging starts over in a fresh directory), the
 * switch and the rollback are a rename that can be repeated; a crash while testing counts as a
 * failed test (Mender: an unexpected reboot in ArtifactCommit rolls back).
 */
export function recover(state: UpdateState): RecoveryAction {
  switch (state) {
    case 'idle':
    case 'committed':
    case 'rolled-back':
    case 'failed':
    case 'aborted':
      return 'nothing';
    case 'fetching-metadata':
    case 'downloading':
    case 'verifying':
    case 'staging':
    case 'switching':
    case 'rolling-back':
      return 'redo';
    case 'testing':
      return 'roll-back';
  }
}

/** The coarse state reported over MQTT (at most 16 characters, see protocol/messages.ts). */
export function reportedState(journal: Journal, waiting: boolean): DeviceState {
  const update = journal.update;
  if (!update || update.state === 'idle' || update.state === 'aborted') return journal.installed ? 'installed' : 'idle';
  if (waiting) return 'waiting';
  switch (update.state) {
    case 'fetching-metadata':
      return 'updating';
    case 'committed':
      return 'installed';
    default:
      return update.state;
  }
}

/** Exponential backoff with jitter (±50 %), capped: many devices must not retry in lockstep. */
export function backoffDelay(attempts: number, baseMs: number, maxMs: number, random: number): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempts, 30));
  return Math.round(raw * (0.5 + random));
}

/** Minutes since local midnight of an `HH:MM` string. */
function minutesOf(clock: string): number {
  const [h, m] = clock.split(':').map(Number);
  return h! * 60 + m!;
}

/**
 * Whether `now` (local time) is inside [start, end). A window that ends before it starts wraps
 * past midnight (22:00–04:00); start equal to end means the whole day.
 */
export function insideWindow(now: Date, window: { start: string; end: string } | null): boolean {
  if (!window) return true;
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  const t = now.getHours() * 60 + now.getMinutes();
  if (start === end) return true;
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** Milliseconds from `now` until the window opens (0 when inside). */
export function delayUntilWindow(now: Date, window: { start: string; end: string } | null): number {
  if (insideWindow(now, window)) return 0;
  const start = minutesOf(window!.start);
  const t = now.getHours() * 60 + now.getMinutes();
  const minutes = (start - t + 24 * 60) % (24 * 60);
  return minutes * 60_000 - now.getSeconds() * 1000 - now.getMilliseconds();
}
