import { createHash } from 'node:crypto';
import type { DeviceState } from '../../protocol/messages.ts';
import type { DeploymentState, FailureThreshold, PhaseSpec, TargetState } from '../../protocol/rollout.ts';

/*
 * The deployment's lifecycle as pure functions over data (no I/O, the clock passed in): which
 * device goes in which phase, what the deployment does next, and what a device's report means
 * for its progress. The service (service.ts) stores what these decide and sends the notices.
 *
 *   scheduled ─start time─▶ running ─every phase settled─▶ completed
 *                              │  ▲
 *        failures > threshold  │  │ resume (operator)
 *        or pause (operator)   ▼  │
 *                             paused
 *   scheduled | running | paused ─abort─▶ aborted
 *   scheduled | running | paused ─a newer deployment to the same group─▶ superseded
 */

/** Target states in which a device is done with this deployment (for now: retry re-arms failed). */
export const settledStates: ReadonlySet<TargetState> = new Set(['installed', 'failed', 'aborted', 'superseded', 'left']);
/** Target states a later report never changes: the operator, a newer deployment or a group change ended them. */
const finalTargetStates: ReadonlySet<TargetState> = new Set(['aborted', 'superseded', 'left']);

/**
 * Leave rule: a device that is no longer in the targeted group (moved to another static group,
 * decommissioned, or no longer matching a dynamic group's filter) and has not installed this
 * release stops being a target: it becomes `left`, whatever it was (pending, notified, updating,
 * or failed: a retry must not re-arm a device that is not in the group any more). A device that
 * installed it stays `installed` and counted: that happened. Aborted and superseded stay as they
 * are. A device that comes back (moved back, matching again) is a target again, `pending` in the
 * phase released last, like any device that joins. So is a member superseded here by a newer
 * deployment that no longer reaches it (it left that one's group): the device falls back to what
 * its remaining groups run (multi-group rule).
 *
 * `reachedByNewer`: members that a newer deployment has told and still counts (the service asks
 * the store). Returns which targets leave and which members join (new, or back).
 */
export function membershipChanges(
  targets: readonly { device_id: string; state: TargetState }[],
  members: ReadonlySet<string>,
  reachedByNewer: ReadonlySet<string> = new Set(),
): { left: string[]; joined: string[]; rejoined: string[] } {
  const known = new Map(targets.map((t) => [t.device_id, t.state]));
  const left = targets.filter((t) => !members.has(t.device_id) && t.state !== 'installed' && !finalTargetStates.has(t.state)).map((t) => t.device_id);
  const joined: string[] = [];
  const rejoined: string[] = [];
  for (const id of members) {
    const state = known.get(id);
    if (state === undefined) joined.push(id);
    else if (state === 'left' || (state === 'superseded' && !reachedByNewer.has(id))) rejoined.push(id);
  }
  return { left, joined, rejoined };
}
/** Deployment states the operator can still steer; the others are final. */
export const activeStates: ReadonlySet<DeploymentState> = new Set(['scheduled', 'running', 'paused']);

/**
 * Cumulative phase sizes for `total` devices: phase k holds devices [size(k-1), size(k)). The
 * last phase always reaches every device (a plan like `1,10,50` ends with an implicit 100 %),
 * and sizes never shrink (`10dev,5%` on 1,000 devices is 10 then 50).
 */
export function phaseSizes(phases: readonly PhaseSpec[], total: number): number[] {
  const sizes: number[] = [];
  let previous = 0;
  for (const phase of phases) {
    const wanted = 'percent' in phase ? Math.ceil((total * phase.percent) / 100) : phase.count;
    previous = Math.min(total, Math.max(previous, wanted));
    sizes.push(previous);
  }
  if (sizes.length === 0 || sizes[sizes.length - 1]! < total) sizes.push(total);
  return sizes;
}

/** The phases as stored: an implicit last 100 % made explicit, so the count of phases is fixed. */
export function normalizePhases(phases: readonly PhaseSpec[] | undefined): PhaseSpec[] {
  const list = phases && phases.length > 0 ? [...phases] : [{ percent: 100 }];
  const last = list[list.length - 1]!;
  if (!('percent' in last && last.percent === 100)) list.push({ percent: 100 });
  return list;
}

/**
 * Chooses each device's phase once (stored, so a restart never reshuffles it). The order is a
 * hash of deployment id and device id: stable, spread across the fleet (not the alphabetically
 * first shop), and different for each deployment so the same devices do not always go first.
 */
export function assignPhases(deploymentId: number, deviceIds: readonly string[], phases: readonly PhaseSpec[]): Map<string, number> {
  // Each device's rank is hashed once, not in the comparator (n log n hashes: 70 ms for 2,000
  // devices, paid between the deploy and the first notice).
  const ranks = new Map(deviceIds.map((id) => [id, rank(deploymentId, id)]));
  const order = [...deviceIds].sort((a, b) => {
    const ha = ranks.get(a)!;
    const hb = ranks.get(b)!;
    return ha < hb ? -1 : ha > hb ? 1 : a < b ? -1 : 1;
  });
  const sizes = phaseSizes(phases, order.length);
  const assigned = new Map<string, number>();
  let phase = 0;
  order.forEach((id, index) => {
    while (index >= sizes[phase]!) phase++;
    assigned.set(id, phase);
  });
  return assigned;
}

function rank(deploymentId: number, deviceId: string): string {
  return createHash('sha256').update(`${deploymentId}\0${deviceId}`).digest('hex');
}

/** Whether `failed` of `released` devices is over the threshold. */
export function overThreshold(threshold: FailureThreshold | null, failed: number, released: number): boolean {
  if (!threshold || failed === 0) return false;
  if ('count' in threshold) return failed > threshold.count;
  return (failed * 100) / Math.max(1, released) > threshold.percent;
}

export function describeThreshold(threshold: FailureThreshold): string {
  return 'count' in threshold ? `${threshold.count} devices` : `${threshold.percent}%`;
}

export interface PlanInput {
  state: DeploymentState;
  /** Index of the last phase released. */
  phase: number;
  phaseCount: number;
  phaseStartedAt: string | null;
  startAt: string | null;
  soakMs: number;
  maxFailures: FailureThreshold | null;
  /**
   * The targets, one entry per device or (as the service passes them) per phase and state with
   * `count` devices: a phase of thousands is a few rows, not thousands of objects per tick.
   */
  targets: readonly { phase: number; state: TargetState; count?: number }[];
  now: Date;
}

export type PlanStep =
  | { type: 'none' }
  | { type: 'start' }
  | { type: 'advance'; phase: number }
  | { type: 'pause'; reason: string }
  | { type: 'complete' };

/**
 * What the deployment does next. A phase is done when every device released so far has settled
 * (installed, failed, aborted, superseded or left) and the soak time since the phase started has passed;
 * then the next phase starts. Failures over the threshold (counted over the devices released so
 * far) pause the deployment with the reason; resuming starts counting against the threshold again
 * only for failures beyond those seen (the operator decided to go on).
 */
export function nextStep(input: PlanInput, failuresAccepted = 0): PlanStep {
  if (input.state === 'scheduled') {
    return !input.startAt || Date.parse(input.startAt) <= input.now.getTime() ? { type: 'start' } : { type: 'none' };
  }
  if (input.state !== 'running') return { type: 'none' };
  // Devices that left the group are not counted in any bar (leave rule).
  const released = input.targets.filter((t) => t.phase <= input.phase && t.state !== 'left' && (t.count ?? 1) > 0);
  const sum = (list: typeof released) => list.reduce((n, t) => n + (t.count ?? 1), 0);
  const failed = sum(released.filter((t) => t.state === 'failed'));
  const releasedCount = sum(released);
  if (failed > failuresAccepted && overThreshold(input.maxFailures, failed - failuresAccepted, releasedCount)) {
    return { type: 'pause', reason: `${failed} of ${releasedCount} devices released so far failed, over the limit of ${describeThreshold(input.maxFailures!)}` };
  }
  if (!released.every((t) => settledStates.has(t.state))) return { type: 'none' };
  const soaked = !input.phaseStartedAt || Date.parse(input.phaseStartedAt) + input.soakMs <= input.now.getTime();
  if (input.phase >= input.phaseCount - 1) return { type: 'complete' };
  return soaked ? { type: 'advance', phase: input.phase + 1 } : { type: 'none' };
}

/**
 * What a device's report means for its progress in the deployment of `release`. Reports about
 * another release (an older one still finishing, or nothing) leave the progress as it is.
 */
export function targetStateOf(
  report: { state: DeviceState; installed: { bundle: string; version: string } | null; target: { bundle: string; version: string } | null },
  release: { bundle: string; version: string },
  current: TargetState,
): TargetState {
  const same = (r: { bundle: string; version: string } | null) => r !== null && r.bundle === release.bundle && r.version === release.version;
  if (finalTargetStates.has(current) || current === 'pending') return current;
  if (same(report.installed) && (report.state === 'installed' || report.state === 'idle' || report.target === null)) return 'installed';
  if (!same(report.target)) return current;
  if (report.state === 'failed' || report.state === 'rolled-back') return 'failed';
  if (report.state === 'installed') return 'installed';
  return 'updating';
}
