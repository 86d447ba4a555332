import semver from 'semver';
import type { Device } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { deviceReleaseTopic, groupReleaseTopic, type DeviceNotice, type DeviceStatus, type ReleaseNotice } from '../../protocol/messages.ts';
import {
  defaultRetryPolicy,
  targetStates,
  type FailureThreshold,
  type PhaseSpec,
  type RetryPolicy,
  type RolloutDetail,
  type RolloutSummary,
  type TargetState,
} from '../../protocol/rollout.ts';
import type { Caller, Principal } from '../auth/policy.ts';
import { deploymentReadScope, mayReadDeployment } from '../auth/reads.ts';
import type { Broker } from '../broker/broker.ts';
import type { Db } from '../db/knex.ts';
import { ApiError } from '../http/errors.ts';
import { activeStates, assignPhases, membershipChanges, nextStep, normalizePhases, phaseSizes, settledStates, targetStateOf } from './plan.ts';
import type { DeploymentRecord, DeploymentStore, TargetRow } from './store.ts';

export interface CreateRollout {
  bundle: string;
  version: string;
  group: string;
  phases?: PhaseSpec[] | undefined;
  soakMs?: number | undefined;
  maxFailures?: FailureThreshold | undefined;
  retry?: RetryPolicy | undefined;
  rollback?: boolean | undefined;
  force?: boolean | undefined;
  startAt?: string | undefined;
}

export interface DeploymentDeps {
  store: DeploymentStore;
  /** Refuses a draft or revoked version (bundles capability). */
  requireApproved: (bundle: string, version: string) => Promise<unknown>;
  /** The devices in a group now (groups capability; throws not_found for an unknown group). */
  devicesOf: (group: string) => Promise<Device[]>;
  /** With --force, a group nobody registered yet is created (static), to deploy ahead of devices. */
  ensureGroup: (group: string, by: string) => Promise<void>;
  /** Whether a signed rollback to this version is already allowed (trust capability). */
  hasRollback: (bundle: string, version: string) => Promise<boolean>;
  /** Whether a group's members are chosen by a filter over inventory (groups capability). */
  isDynamic?: (group: string) => Promise<boolean>;
  /** A device's last stored report (devices capability): progress is reconciled from it at start. */
  findDevice?: (id: string) => Promise<Device | undefined>;
  /** Records the signed permission to downgrade (trust capability): the emergency rollback. */
  allowRollback: (bundle: string, version: string, by: string) => Promise<void>;
  broker: () => Broker;
  now: () => Date;
  log: Logger;
}

const unsettled: TargetState[] = ['pending', 'notified', 'updating'];

/**
 * Deployments with a lifecycle (issue #10). The pure planner (plan.ts) decides; this shell stores
 * its decisions and tells devices, each on its own retained topic:
 * - creating one chooses every targeted device's phase once and stores it;
 * - a tick (after each report, each operator action, and on a timer for soak times) starts the
 *   next phase, pauses on too many failures, or completes;
 * - releasing a device to a deployment publishes its notice; aborting publishes an abort notice to
 *   the devices already told, so those that have not switched stop and stay where they are.
 * Multi-group rule: a device follows the newest deployment that has been released to it, whatever
 * group that deployment targets; older ones it was part of are superseded for that device.
 * Supersede rule: a new deployment to a group supersedes that group's scheduled, running and
 * paused deployments; their devices that have not finished are told to stop (abort notice) and get
 * the new release when their phase of the new deployment comes.
 */
export function createDeploymentService(deps: DeploymentDeps) {
  const { store } = deps;
  const now = () => deps.now().toISOString();

  // One chain of work per deployment: reports, ticks and operator actions on one deployment run
  // one after the other, so a decision always sees the previous one's result.
  const chains = new Map<number, Promise<unknown>>();
  function serial<T>(id: number, work: () => Promise<T>): Promise<T> {
    const previous = chains.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const settled = next.catch(() => undefined);
    chains.set(id, settled);
    void settled.then(() => {
      if (chains.get(id) === settled) chains.delete(id);
    });
    return next;
  }

  const publish = (topic: string, notice: DeviceNotice | ReleaseNotice | null) =>
    deps.broker().publish(topic, notice ? JSON.stringify(notice) : '', true).catch((error: unknown) => deps.log.warn('could not publish a notice', { topic, error }));

  function releaseNoticeOf(d: DeploymentRecord, attempt: number): ReleaseNotice {
    return { type: 'release', deploymentId: d.id, group: d.group, bundle: d.bundle, version: d.version, issuedAt: now(), attempt, retry: d.retry };
  }

  async function requireDeployment(id: number): Promise<DeploymentRecord> {
    const found = await store.find(id);
    if (!found) throw new ApiError('not_found', `no deployment ${id}`);
    return found;
  }

  async function summaryOf(d: DeploymentRecord): Promise<RolloutSummary> {
    const counts = Object.fromEntries(targetStates.map((s) => [s, 0])) as Record<string, number>;
    Object.assign(counts, await store.countsByState(d.id));
    return {
      id: d.id,
      bundle: d.bundle,
      version: d.version,
      group: d.group,
      state: d.state,
      phase: d.phase,
      phases: d.phases,
      soakMs: d.soakMs,
      maxFailures: d.maxFailures,
      retry: d.retry,
      rollback: d.rollback,
      reason: d.reason,
      counts,
      createdAt: d.createdAt,
      createdBy: d.createdBy,
      updatedAt: d.updatedAt,
    };
  }

  /** The group topic (dashboards, older daemons): what the whole group runs once fully released. */
  async function announceGroup(d: DeploymentRecord): Promise<void> {
    if ((d.state === 'running' || d.state === 'completed') && d.phase >= d.phases.length - 1) {
      await publish(groupReleaseTopic(d.group), { type: 'release', deploymentId: d.id, group: d.group, bundle: d.bundle, version: d.version, issuedAt: d.createdAt });
    }
  }

  /**
   * Which of these devices a deployment newer than `id` has told and still counts (not
   * superseded, aborted or left), and which one. Bulk statements in chunks: a phase of thousands
   * of devices is a handful of queries.
   */
  async function newerReaching(id: number, ids: readonly string[]): Promise<Map<string, number>> {
    const reached = new Map<string, number>();
    for (let i = 0; i < ids.length; i += 400) {
      const rows = await store.db('deployment_devices')
        .whereIn('device_id', ids.slice(i, i + 400))
        .where('deployment_id', '>', id)
        .whereNotNull('notified_at')
        .whereNotIn('state', ['superseded', 'aborted', 'left'])
        .select<{ device_id: string; deployment_id: number }[]>('device_id', 'deployment_id');
      for (const row of rows) reached.set(row.device_id, row.deployment_id);
    }
    return reached;
  }

  /**
   * Tells the released devices that were not told yet. A device that a newer deployment already
   * reached is not pulled back: its target here is superseded instead (multi-group rule).
   */
  async function notifyReleased(d: DeploymentRecord): Promise<void> {
    if (d.state !== 'running' && d.state !== 'completed') return;
    const due = await store.dueTargets(d.id, d.phase);
    if (due.length === 0) return;
    const at = now();
    const ids = due.map((t) => t.device_id);
    const reachedByNewer = await newerReaching(d.id, ids);
    const told: TargetRow[] = due.filter((t) => !reachedByNewer.has(t.device_id));
    const toldIds = told.map((t) => t.device_id);
    await store.db.transaction(async (trx) => {
      for (const [device, newer] of reachedByNewer) {
        await store.updateTarget(d.id, device, { state: 'superseded', updated_at: at }, trx);
        await store.addEvent(d.id, device, 'superseded', `deployment ${newer} reached this device first`, at, trx);
      }
      for (let i = 0; i < toldIds.length; i += 400) {
        const chunk = toldIds.slice(i, i + 400);
        // Older deployments these devices were following stop counting them (they move on to this one).
        await trx('deployment_devices').whereIn('device_id', chunk).where('deployment_id', '<', d.id).whereIn('state', unsettled).update({ state: 'superseded', updated_at: at });
        await trx('deployment_devices').where({ deployment_id: d.id }).whereIn('device_id', chunk).update({ state: 'notified', notified_at: at, updated_at: at });
        await trx('deployment_events').insert(chunk.map((device) => ({ deployment_id: d.id, device_id: device, state: 'notified', detail: `phase ${d.phase + 1}`, at })));
      }
    });
    await Promise.all(told.map((target) => publish(deviceReleaseTopic(target.device_id), releaseNoticeOf(d, target.attempt))));
    deps.log.info('released to devices', { deployment: d.id, phase: d.phase, devices: told.length });
  }

  /** Runs the planner until it has nothing more to do; stores and announces each step. */
  async function tickNow(id: number): Promise<DeploymentRecord | undefined> {
    let d = await store.find(id);
    if (!d) return undefined;
    for (let guard = 0; guard < 100; guard++) {
      const targets = await store.phaseCounts(id);
      const step = nextStep(
        { state: d.state, phase: d.phase, phaseCount: d.phases.length, phaseStartedAt: d.phaseStartedAt, startAt: d.startAt, soakMs: d.soakMs, maxFailures: d.maxFailures, targets, now: deps.now() },
        d.failuresAccepted,
      );
      if (step.type === 'none') break;
      const at = now();
      if (step.type === 'start') {
        await store.update(id, { state: 'running', phase: 0, phase_started_at: at }, at);
        await store.addEvent(id, null, 'running', 'phase 1 started', at);
      } else if (step.type === 'advance') {
        await store.update(id, { phase: step.phase, phase_started_at: at }, at);
        await store.addEvent(id, null, 'phase', `phase ${step.phase + 1} of ${d.phases.length} started`, at);
      } else if (step.type === 'pause') {
        await store.update(id, { state: 'paused', reason: step.reason }, at);
        await store.addEvent(id, null, 'paused', step.reason, at);
        deps.log.warn('deployment paused itself', { deployment: id, reason: step.reason });
      } else {
        await store.update(id, { state: 'completed' }, at);
        await store.addEvent(id, null, 'completed', null, at);
        deps.log.info('deployment completed', { deployment: id });
      }
      d = (await store.find(id))!;
      await notifyReleased(d);
      if (step.type === 'start' || step.type === 'advance') await announceGroup(d);
    }
    await notifyReleased(d);
    return d;
  }

  const tick = (id: number) => serial(id, () => tickNow(id));

  /**
   * After reports, the planner runs once per short interval rather than once per report: a phase
   * of thousands of devices settling at once would otherwise re-read every target per report.
   */
  const tickTimers = new Map<number, NodeJS.Timeout>();
  const tickDelayMs = 50;
  function scheduleTick(id: number): void {
    if (tickTimers.has(id)) return;
    const timer = setTimeout(() => {
      tickTimers.delete(id);
      void tick(id).catch((error: unknown) => deps.log.error('deployment tick failed', { deployment: id, error }));
    }, tickDelayMs);
    timer.unref();
    tickTimers.set(id, timer);
  }

  /**
   * Devices that left a targeted group stop being its deployment's targets, and devices that
   * joined one (registered later, moved in, or matching a dynamic filter now) become targets of
   * the group's current deployment, in the phase released last, so they get it at once if it runs
   * (or when it resumes): the leave rule in plan.ts (membershipChanges). Leaves are applied for
   * every deployment before any join, so a device moving between two targeted groups gets the
   * abort of the old deployment before the release of the new one on its retained topic.
   * Coalesced: one run at a time.
   */
  let syncing: Promise<void> | undefined;
  let ticking: Promise<void> | undefined;
  let syncAgain = false;
  async function syncMembersNow(scope: 'all' | 'dynamic'): Promise<void> {
    const all = (await store.currentPerGroup()).filter((d) => d.state !== 'aborted' && d.state !== 'superseded');
    const current: DeploymentRecord[] = [];
    for (const d of all) if (scope === 'all' || !deps.isDynamic || (await deps.isDynamic(d.group))) current.push(d);
    // Members are read inside each deployment's chain, so a decommission or move handled on that
    // chain just before is seen (a snapshot taken earlier could bring a device back in).
    const membersOf = async (d: DeploymentRecord): Promise<Set<string> | undefined> =>
      deps.devicesOf(d.group).then(
        (devices) => new Set(devices.map((m) => m.id)),
        () => undefined, // the group was deleted
      );
    let left = 0;
    for (const d of current) {
      await serial(d.id, async () => {
        const members = await membersOf(d);
        if (members) left += await applyLeaves(d, members, `left group ${d.group}`);
      });
    }
    // A device that left a dynamic group may fall back to its static group's deployment (it was
    // superseded there): then every deployment looks for devices joining or coming back.
    for (const d of left > 0 ? all : current) {
      await serial(d.id, async () => {
        const members = await membersOf(d);
        if (members) await applyJoins(d, members);
      });
    }
  }

  /** Marks the targets that left `left`, withdraws the notice of those told, and ticks (the bars changed). */
  async function applyLeaves(d: DeploymentRecord, members: ReadonlySet<string>, detail: string): Promise<number> {
    const targets = await store.targetStates(d.id);
    const { left } = membershipChanges(targets, members);
    if (left.length === 0) return 0;
    const at = now();
    const leaving = new Set(left);
    await store.db.transaction(async (trx) => {
      for (let i = 0; i < left.length; i += 400) {
        const chunk = left.slice(i, i + 400);
        await trx('deployment_devices').where({ deployment_id: d.id }).whereIn('device_id', chunk).update({ state: 'left', updated_at: at });
        await trx('deployment_events').insert(chunk.map((device) => ({ deployment_id: d.id, device_id: device, state: 'left', detail, at })));
      }
    });
    // The notice is withdrawn: a device that has not switched stops and stays where it is (as on
    // abort); its new group's deployment, if any, replaces this with its release (applyJoins).
    const told = targets.filter((t) => leaving.has(t.device_id) && t.notified_at);
    await Promise.all(told.map((t) => publish(deviceReleaseTopic(t.device_id), { type: 'abort', deploymentId: d.id, bundle: d.bundle, version: d.version, issuedAt: at })));
    deps.log.info('devices left a deployment', { deployment: d.id, devices: left.length });
    await tickNow(d.id);
    return left.length;
  }

  async function applyJoins(d: DeploymentRecord, members: ReadonlySet<string>): Promise<void> {
    const targets = await store.targetStates(d.id);
    const superseded = targets.filter((t) => t.state === 'superseded' && members.has(t.device_id)).map((t) => t.device_id);
    const reached = superseded.length > 0 ? new Set((await newerReaching(d.id, superseded)).keys()) : new Set<string>();
    const { joined, rejoined } = membershipChanges(targets, members, reached);
    if (joined.length === 0 && rejoined.length === 0) return;
    const at = now();
    const fresh = (await store.find(d.id))!;
    const phase = fresh.state === 'scheduled' ? 0 : fresh.phase;
    await store.db.transaction(async (trx) => {
      await store.insertTargets(d.id, joined.map((device) => ({ device, phase })), at, trx);
      for (let i = 0; i < rejoined.length; i += 400) {
        await trx('deployment_devices').where({ deployment_id: d.id }).whereIn('device_id', rejoined.slice(i, i + 400))
          .update({ state: 'pending', phase, notified_at: null, error_code: null, error_message: null, updated_at: at });
      }
      const events = [...joined, ...rejoined].map((device) => ({ deployment_id: d.id, device_id: device, state: 'joined', detail: `joined group ${d.group}; phase ${phase + 1}`, at }));
      for (let i = 0; i < events.length; i += 100) await trx('deployment_events').insert(events.slice(i, i + 100));
    });
    deps.log.info('devices joined a deployment', { deployment: d.id, devices: joined.length + rejoined.length });
    await tickNow(d.id);
  }

  /**
   * `inventoryOnly`: what changed is some device's inventory, which moves devices in and out of
   * dynamic groups only; deployments to static groups are left alone (at fleet scale every
   * install report brings an inventory report, and re-reading a 2,000-device group for each is
   * most of the server's garbage).
   */
  let widest: 'all' | 'dynamic' | undefined;
  function syncMembers(options: { inventoryOnly?: boolean } = {}): Promise<void> {
    const scope = options.inventoryOnly ? 'dynamic' : 'all';
    widest = widest === 'all' || scope === 'all' ? 'all' : 'dynamic';
    if (syncing) {
      syncAgain = true;
      return syncing;
    }
    syncing = (async () => {
      do {
        syncAgain = false;
        const run = widest!;
        widest = undefined;
        await syncMembersNow(run).catch((error: unknown) => deps.log.error('syncing group members failed', { error }));
      } while (syncAgain);
    })().finally(() => (syncing = undefined));
    return syncing;
  }

  async function abortTargets(d: DeploymentRecord, state: 'aborted' | 'superseded', detail: string): Promise<number> {
    const at = now();
    const targets = (await store.targets(d.id)).filter((t) => unsettled.includes(t.state));
    for (const t of targets) {
      await store.updateTarget(d.id, t.device_id, { state, updated_at: at });
      await store.addEvent(d.id, t.device_id, state, detail, at);
    }
    // Devices already told stop: those that have not switched stay where they are.
    for (const t of targets.filter((t) => t.notified_at)) {
      await publish(deviceReleaseTopic(t.device_id), { type: 'abort', deploymentId: d.id, bundle: d.bundle, version: d.version, issuedAt: at });
    }
    return targets.length;
  }

  /** The highest version of the bundle the group was deployed or its devices run. */
  async function highestBefore(bundle: string, group: string, members: Device[]): Promise<string | undefined> {
    const versions = [
      ...(await store.previousForGroup(group, bundle)).map((d) => d.version),
      ...members.filter((m) => m.installed?.bundle === bundle).map((m) => m.installed!.version),
    ];
    return versions.sort(semver.rcompare)[0];
  }

  return {
    async create(input: CreateRollout, createdBy: string): Promise<RolloutSummary> {
      await deps.requireApproved(input.bundle, input.version);
      if (input.force) await deps.ensureGroup(input.group, createdBy);
      const members = await deps.devicesOf(input.group);
      if (members.length === 0 && !input.force) {
        throw new ApiError('group_empty', `group "${input.group}" has no devices: check its name (convoy group list), or deploy anyway with --force`);
      }
      const highest = await highestBefore(input.bundle, input.group, members);
      const downgrade = highest !== undefined && semver.lt(input.version, highest);
      if (downgrade && !input.rollback && !input.force && !(await deps.hasRollback(input.bundle, input.version))) {
        throw new ApiError(
          'downgrade_not_allowed',
          `${input.bundle}@${input.version} is lower than ${highest}, which group "${input.group}" was deployed or runs; devices refuse a downgrade unless it is a signed rollback: deploy with --rollback (an emergency rollback needs only the deploy permission)`,
        );
      }
      if (input.rollback) await deps.allowRollback(input.bundle, input.version, createdBy);

      // Supersede rule: the group's unfinished deployments stop here.
      for (const old of await store.activeForGroup(input.group)) {
        await serial(old.id, async () => {
          const fresh = (await store.find(old.id))!;
          if (!activeStates.has(fresh.state)) return;
          const at = now();
          await store.update(old.id, { state: 'superseded', reason: `superseded by a newer deployment to group ${input.group}` }, at);
          await store.addEvent(old.id, null, 'superseded', `a newer deployment to group ${input.group}`, at);
          await abortTargets(fresh, 'superseded', 'a newer deployment to the group');
        });
      }

      const phases = normalizePhases(input.phases);
      const at = now();
      const id = await store.insert({
        bundle: input.bundle,
        version: input.version,
        group: input.group,
        createdBy,
        state: 'scheduled',
        phases,
        soakMs: input.soakMs ?? 0,
        maxFailures: input.maxFailures ?? null,
        retry: input.retry ?? defaultRetryPolicy,
        rollback: Boolean(input.rollback) || downgrade,
        startAt: input.startAt ?? null,
        now: at,
      });
      const assigned = assignPhases(id, members.map((m) => m.id), phases);
      await store.insertTargets(id, [...assigned].map(([device, phase]) => ({ device, phase })), at);
      await store.addEvent(id, null, 'scheduled', `${members.length} devices in ${phases.length} phases (${phaseSizes(phases, members.length).join(', ')} cumulative)`, at);
      deps.log.info('deployed', { id, bundle: input.bundle, version: input.version, group: input.group, devices: members.length, phases: phases.length });
      const d = await tick(id);
      return summaryOf(d!);
    },

    /** One page of the deployments `viewer` may see (server/auth/reads.ts); `total` counts only those. */
    async list(filter: { group?: string | undefined; state?: string | undefined; bundle?: string | undefined }, page: { offset: number; limit: number }, viewer?: Principal): Promise<{ items: RolloutSummary[]; total: number }> {
      const { items, total } = await store.list(filter, page, viewer ? deploymentReadScope(viewer) : { all: true });
      return { items: await Promise.all(items.map(summaryOf)), total };
    },

    /**
     * One deployment as `viewer` may see it: one they may not read answers 404 like a missing
     * one, so its existence is not revealed (the list, the detail and the live stream agree).
     */
    async showFor(viewer: Principal, id: number): Promise<RolloutDetail> {
      const d = await store.find(id);
      if (!d || !mayReadDeployment(viewer, d)) throw new ApiError('not_found', `no deployment ${id}`);
      return this.show(id);
    },

    /** Whether `viewer` may read deployment `id` (false for one that does not exist). */
    async visibleTo(viewer: Principal, id: number): Promise<boolean> {
      const d = await store.find(id);
      return d !== undefined && mayReadDeployment(viewer, d);
    },

    /** Device id → bundles of unfinished deployments targeting it, among `bundles` (the device read model). */
    activeBundlesByDevice: (bundles: readonly string[], devices?: readonly string[]) => store.activeBundlesByDevice(bundles, devices),

    async show(id: number): Promise<RolloutDetail> {
      const d = await requireDeployment(id);
      const targets = await store.targets(id);
      const events = await store.events(id);
      const byDevice = new Map<string, { at: string; state: string; detail: string | null }[]>();
      for (const e of events) {
        if (!e.device_id) continue;
        const list = byDevice.get(e.device_id) ?? [];
        list.push({ at: e.at, state: e.state, detail: e.detail });
        byDevice.set(e.device_id, list);
      }
      const phaseEvents = events.filter((e) => !e.device_id && (e.state === 'running' || e.state === 'phase'));
      const perPhase = d.phases.map((_, phase) => {
        const counts: Record<string, number> = {};
        for (const t of targets.filter((t) => t.phase === phase)) counts[t.state] = (counts[t.state] ?? 0) + 1;
        const started = phaseEvents.find((e) => (e.state === 'running' ? phase === 0 : e.detail?.startsWith(`phase ${phase + 1} `)));
        return { phase, size: targets.filter((t) => t.phase === phase).length, startedAt: phase <= d.phase && d.state !== 'scheduled' ? (started?.at ?? null) : null, counts };
      });
      return {
        ...(await summaryOf(d)),
        perPhase,
        devices: targets.map((t) => ({
          id: t.device_id,
          phase: t.phase,
          state: t.state,
          attempt: t.attempt,
          error: t.error_code ? { code: t.error_code, message: t.error_message ?? '' } : null,
          transitions: byDevice.get(t.device_id) ?? [],
        })),
      };
    },

    /** Changes whenever `show(id)` may answer something new (live progress reads only then). */
    changeToken: (id: number) => store.changeToken(id),

    /**
     * The group a control route acts on (its permission is decided there), as `caller` may see
     * it: a deployment they may not read answers 404 like a missing one, so pause, resume, abort
     * and retry never reveal that it exists; 403 is left to one who sees it but may not act.
     */
    async groupFor(caller: Caller | undefined, id: number): Promise<string> {
      const d = await store.find(id);
      if (!d || !caller || caller.type === 'edge' || !mayReadDeployment(caller, d)) throw new ApiError('not_found', `no deployment ${id}`);
      return d.group;
    },

    pause: (id: number, by: string) =>
      serial(id, async () => {
        const d = await requireDeployment(id);
        if (d.state !== 'running' && d.state !== 'scheduled') throw new ApiError('invalid_state', `deployment ${id} is ${d.state}; only a running or scheduled deployment can be paused`);
        const at = now();
        await store.update(id, { state: 'paused', reason: `paused by ${by}` }, at);
        await store.addEvent(id, null, 'paused', `by ${by}`, at);
        return { deployment: await summaryOf((await store.find(id))!), devices: 0 };
      }),

    resume: (id: number, by: string) =>
      serial(id, async () => {
        const d = await requireDeployment(id);
        if (d.state !== 'paused') throw new ApiError('invalid_state', `deployment ${id} is ${d.state}; only a paused deployment can be resumed`);
        const targets = await store.targets(id);
        const failed = targets.filter((t) => t.phase <= d.phase && t.state === 'failed').length;
        const at = now();
        // The failures seen so far are accepted by the operator: only new ones count from here.
        await store.update(id, { state: d.phaseStartedAt ? 'running' : 'scheduled', reason: null, failures_accepted: failed }, at);
        await store.addEvent(id, null, 'resumed', `by ${by}${failed ? `; ${failed} failures accepted` : ''}`, at);
        const after = await tickNow(id);
        return { deployment: await summaryOf(after!), devices: 0 };
      }),

    abort: (id: number, by: string) =>
      serial(id, async () => {
        const d = await requireDeployment(id);
        if (!activeStates.has(d.state)) throw new ApiError('invalid_state', `deployment ${id} is ${d.state}; only a scheduled, running or paused deployment can be aborted`);
        const at = now();
        await store.update(id, { state: 'aborted', reason: `aborted by ${by}` }, at);
        await store.addEvent(id, null, 'aborted', `by ${by}`, at);
        const stopped = await abortTargets(d, 'aborted', `aborted by ${by}`);
        deps.log.info('deployment aborted', { deployment: id, by, devices: stopped });
        return { deployment: await summaryOf((await store.find(id))!), devices: stopped };
      }),

    /** Re-arms failed devices (one, or all): a new attempt, a fresh notice. Never for aborted ones. */
    retry: (id: number, device: string | undefined, by: string) =>
      serial(id, async () => {
        const d = await requireDeployment(id);
        if (d.state === 'aborted' || d.state === 'superseded') throw new ApiError('invalid_state', `deployment ${id} is ${d.state}: its devices are not retried`);
        const failed = (await store.targets(id)).filter((t) => t.state === 'failed' && (device === undefined || t.device_id === device));
        if (device !== undefined && failed.length === 0) throw new ApiError('invalid_state', `device ${device} has not failed deployment ${id}`);
        const at = now();
        for (const t of failed) {
          await store.updateTarget(id, t.device_id, { state: 'notified', attempt: t.attempt + 1, error_code: null, error_message: null, notified_at: at, updated_at: at });
          await store.addEvent(id, t.device_id, 'retry', `attempt ${t.attempt + 2}, by ${by}`, at);
          await publish(deviceReleaseTopic(t.device_id), releaseNoticeOf(d, t.attempt + 1));
        }
        return { deployment: await summaryOf((await store.find(id))!), devices: failed.length };
      }),

    /** A device's report (already stored by the devices capability): its progress here. */
    async onReport(deviceId: string, status: DeviceStatus): Promise<void> {
      // A report naming its deployment (convoyd and the simulator do) needs no scan of the
      // device's other deployments: one report per device per step, thousands per phase.
      const target = status.deploymentId !== undefined ? await store.target(status.deploymentId, deviceId) : (await store.targetsOfDevice(deviceId)).find((t) => t.notified_at);
      if (!target) return;
      await serial(target.deployment_id, async () => {
        const d = await store.find(target.deployment_id);
        const fresh = await store.target(target.deployment_id, deviceId);
        if (!d || !fresh) return;
        const next = targetStateOf(status, d, fresh.state);
        const error = next === 'failed' ? status.error : null;
        if (next === fresh.state && (next !== 'failed' || fresh.error_code === (error?.code ?? null))) return;
        const at = now();
        await store.updateTarget(d.id, deviceId, { state: next, error_code: error?.code ?? null, error_message: error?.message ?? null, updated_at: at });
        await store.addEvent(d.id, deviceId, next, error ? `${error.code}: ${error.message}` : (status.detail ?? status.phase ?? null), at);
        if (settledStates.has(next)) scheduleTick(d.id);
      });
    },

    /** What this device should run now, as its retained notice says it (the poll twin). */
    async noticeFor(deviceId: string): Promise<DeviceNotice | undefined> {
      // The newest deployment that told it and still counts it; else the newest one it left or
      // that stopped (an abort notice: what it was told is withdrawn).
      const told = (await store.targetsOfDevice(deviceId)).filter((t) => t.notified_at);
      const target = told.find((t) => t.state !== 'left') ?? told[0];
      if (!target) return undefined;
      const d = (await store.find(target.deployment_id))!;
      if (target.state === 'aborted' || target.state === 'superseded' || target.state === 'left') return { type: 'abort', deploymentId: d.id, bundle: d.bundle, version: d.version, issuedAt: target.updated_at };
      return releaseNoticeOf(d, target.attempt);
    },

    /** The group's release as the group topic says it (older daemons, dashboards). */
    async latestFor(group: string): Promise<ReleaseNotice | undefined> {
      const d = (await store.currentPerGroup()).find((c) => c.group === group && c.phase >= c.phases.length - 1 && (c.state === 'running' || c.state === 'completed'));
      return d ? { type: 'release', deploymentId: d.id, group: d.group, bundle: d.bundle, version: d.version, issuedAt: d.createdAt } : undefined;
    },

    /** The bundles a device may read (server/blobs/readers.ts): what was deployed to it or its group. */
    bundlesForDevice: (device: string, group: string) => store.bundlesForDevice(device, group),

    async hasActiveDeployments(group: string): Promise<boolean> {
      return (await store.activeForGroup(group)).length > 0;
    },

    /** A device was decommissioned: it leaves every deployment it had not finished (leave rule). */
    async deviceRemoved(deviceId: string): Promise<void> {
      const ids = [...new Set((await store.targetsOfDevice(deviceId)).map((t) => t.deployment_id))];
      for (const id of ids) {
        await serial(id, async () => {
          const d = await store.find(id);
          if (!d) return;
          // Every member but this device: only its target can leave here.
          const others = new Set((await store.targetStates(id)).map((t) => t.device_id).filter((device) => device !== deviceId));
          await applyLeaves(d, others, 'device decommissioned');
        });
      }
    },

    syncMembers,
    tick,

    /** Waits for the work in flight (at shutdown, after the broker stopped delivering reports). */
    async drain(): Promise<void> {
      for (const [id, timer] of tickTimers) {
        clearTimeout(timer);
        tickTimers.delete(id);
        await tick(id).catch(() => undefined);
      }
      await ticking;
      await syncing;
      await Promise.all([...chains.values()]);
    },

    /**
     * After a start: the embedded broker keeps retained messages in memory only, so every
     * device's notice and every group's release are announced again; then unfinished deployments
     * go on from their stored phase (nothing is reshuffled).
     */
    async announceAll(): Promise<void> {
      for (const d of await store.currentPerGroup()) await announceGroup(d);
      const latest = await store.db('deployment_devices').whereNotNull('notified_at').select<{ device_id: string }[]>('device_id').groupBy('device_id');
      for (const { device_id } of latest) {
        const notice = await this.noticeFor(device_id);
        if (notice) await publish(deviceReleaseTopic(device_id), notice);
      }
      // A report stored on the device's row just before a crash may not have reached its
      // deployment: progress is recomputed from the stored reports, so none is lost.
      if (deps.findDevice) {
        for (const d of await store.currentPerGroup()) {
          if (d.state === 'aborted' || d.state === 'superseded') continue;
          for (const t of (await store.targets(d.id)).filter((t) => t.notified_at && (t.state === 'notified' || t.state === 'updating'))) {
            const device = await deps.findDevice(t.device_id);
            if (device?.state) await this.onReport(t.device_id, { type: 'status', deviceId: t.device_id, state: device.state, installed: device.installed, target: device.target, error: device.error as DeviceStatus['error'], reportedAt: device.lastSeenAt ?? now(), deploymentId: d.id });
          }
        }
      }
      for (const d of await store.listActive()) await tick(d.id);
    },

    /** Soak times and scheduled starts pass without any report: the timer ticks active deployments. */
    tickAll(): Promise<void> {
      ticking ??= (async () => {
        for (const d of await store.listActive()) await tick(d.id);
      })().finally(() => (ticking = undefined));
      return ticking;
    },
  };
}

export type DeploymentService = ReturnType<typeof createDeploymentService>;
export type { Db };
