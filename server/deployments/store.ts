import type { Deployment } from '../../protocol/api.ts';
import type { DeploymentState, FailureThreshold, PhaseSpec, RetryPolicy, TargetState } from '../../protocol/rollout.ts';
import { defaultRetryPolicy } from '../../protocol/rollout.ts';
import type { ReadScope } from '../auth/reads.ts';
import type { Db } from '../db/knex.ts';

/** knex queries for `deployments`, `deployment_devices` and `deployment_events` (owned here). */

export interface DeploymentRow {
  id: number;
  bundle: string;
  version: string;
  group_name: string;
  created_by: string;
  created_at: string;
  state: DeploymentState;
  phases: string | null;
  phase: number;
  phase_started_at: string | null;
  soak_ms: number | string;
  max_failures: string | null;
  retry: string | null;
  rollback: boolean | number;
  reason: string | null;
  start_at: string | null;
  updated_at: string | null;
  failures_accepted: number;
}

/** A deployment as the service works with it (JSON columns parsed). */
export interface DeploymentRecord {
  id: number;
  bundle: string;
  version: string;
  group: string;
  createdBy: string;
  createdAt: string;
  state: DeploymentState;
  phases: PhaseSpec[];
  phase: number;
  phaseStartedAt: string | null;
  soakMs: number;
  maxFailures: FailureThreshold | null;
  retry: RetryPolicy;
  rollback: boolean;
  reason: string | null;
  startAt: string | null;
  updatedAt: string;
  failuresAccepted: number;
}

export interface TargetRow {
  deployment_id: number;
  device_id: string;
  phase: number;
  state: TargetState;
  attempt: number;
  error_code: string | null;
  error_message: string | null;
  notified_at: string | null;
  updated_at: string;
}

function toRecord(row: DeploymentRow): DeploymentRecord {
  return {
    id: row.id,
    bundle: row.bundle,
    version: row.version,
    group: row.group_name,
    createdBy: row.created_by,
    createdAt: row.created_at,
    // Deployments made before phases existed were pointers: complete from the start.
    state: row.state ?? 'completed',
    phases: row.phases ? (JSON.parse(row.phases) as PhaseSpec[]) : [{ percent: 100 }],
    phase: row.phase ?? 0,
    phaseStartedAt: row.phase_started_at,
    soakMs: Number(row.soak_ms ?? 0),
    maxFailures: row.max_failures ? (JSON.parse(row.max_failures) as FailureThreshold) : null,
    retry: row.retry ? (JSON.parse(row.retry) as RetryPolicy) : defaultRetryPolicy,
    rollback: Boolean(row.rollback),
    reason: row.reason,
    startAt: row.start_at,
    updatedAt: row.updated_at ?? row.created_at,
    failuresAccepted: row.failures_accepted ?? 0,
  };
}

export function toDeployment(record: DeploymentRecord): Deployment {
  return { id: record.id, bundle: record.bundle, version: record.version, group: record.group, createdAt: record.createdAt, createdBy: record.createdBy };
}

export function createDeploymentStore(db: Db) {
  return {
    db,
    async insert(
      input: { bundle: string; version: string; group: string; createdBy: string; state: DeploymentState; phases: PhaseSpec[]; soakMs: number; maxFailures: FailureThreshold | null; retry: RetryPolicy; rollback: boolean; startAt: string | null; now: string },
      trx: Db = db,
    ): Promise<number> {
      const [row] = await trx('deployments')
        .insert({
          bundle: input.bundle,
          version: input.version,
          group_name: input.group,
          created_by: input.createdBy,
          created_at: input.now,
          updated_at: input.now,
          state: input.state,
          phases: JSON.stringify(input.phases),
          phase: 0,
          soak_ms: input.soakMs,
          max_failures: input.maxFailures ? JSON.stringify(input.maxFailures) : null,
          retry: JSON.stringify(input.retry),
          rollback: input.rollback,
          start_at: input.startAt,
        })
        .returning<{ id: number }[]>('id');
      return row!.id;
    },
    async find(id: number, trx: Db = db): Promise<DeploymentRecord | undefined> {
      const row = await trx<DeploymentRow>('deployments').where({ id }).first();
      return row ? toRecord(row) : undefined;
    },
    /** One page of the deployments in `scope` (the caller's read model: filtered here, so `total` counts only those). */
    async list(filter: { group?: string | undefined; state?: string | undefined; bundle?: string | undefined }, page: { offset: number; limit: number }, scope: ReadScope = { all: true }): Promise<{ items: DeploymentRecord[]; total: number }> {
      const base = () => {
        const q = db<DeploymentRow>('deployments');
        if (!scope.all) q.where((w) => w.whereIn('bundle', scope.bundles).orWhereIn('group_name', scope.groups));
        if (filter.group) q.where({ group_name: filter.group });
        if (filter.state) q.where({ state: filter.state as DeploymentState });
        if (filter.bundle) q.where({ bundle: filter.bundle });
        return q;
      };
      const total = Number((await base().count<{ n: number | string }[]>({ n: '*' }).first())?.n ?? 0);
      const rows = await base().orderBy('id', 'desc').offset(page.offset).limit(page.limit);
      return { items: rows.map(toRecord), total };
    },
    async listActive(): Promise<DeploymentRecord[]> {
      return (await db<DeploymentRow>('deployments').whereIn('state', ['scheduled', 'running', 'paused']).orderBy('id')).map(toRecord);
    },
    /** Per group, its newest deployment that still decides what its devices run (not aborted or superseded). */
    async currentPerGroup(): Promise<DeploymentRecord[]> {
      const rows = await db<DeploymentRow>('deployments')
        .whereIn('id', db('deployments').max('id').whereNotIn('state', ['aborted', 'superseded']).groupBy('group_name'))
        .orderBy('id');
      return rows.map(toRecord);
    },
    async activeForGroup(group: string, trx: Db = db): Promise<DeploymentRecord[]> {
      return (await trx<DeploymentRow>('deployments').where({ group_name: group }).whereIn('state', ['scheduled', 'running', 'paused'])).map(toRecord);
    },
    async previousForGroup(group: string, bundle: string): Promise<DeploymentRecord[]> {
      return (await db<DeploymentRow>('deployments').where({ group_name: group, bundle }).whereNot('state', 'aborted').orderBy('id', 'desc').limit(20)).map(toRecord);
    },
    async update(id: number, fields: Partial<{ state: DeploymentState; phase: number; phase_started_at: string | null; reason: string | null; failures_accepted: number }>, now: string, trx: Db = db): Promise<void> {
      await trx('deployments').where({ id }).update({ ...fields, updated_at: now });
    },
    async insertTargets(id: number, targets: { device: string; phase: number }[], now: string, trx: Db = db): Promise<void> {
      const rows = targets.map((t) => ({ deployment_id: id, device_id: t.device, phase: t.phase, state: 'pending', attempt: 0, updated_at: now }));
      // Chunks keep each statement under SQLite's limit on bound variables.
      for (let i = 0; i < rows.length; i += 100) await trx('deployment_devices').insert(rows.slice(i, i + 100));
    },
    async targets(id: number, trx: Db = db): Promise<TargetRow[]> {
      return trx<TargetRow>('deployment_devices').where({ deployment_id: id }).orderBy('device_id');
    },
    /** How many targets are in each phase and state (what the planner needs, in a few rows). */
    async phaseCounts(id: number, trx: Db = db): Promise<{ phase: number; state: TargetState; count: number }[]> {
      const rows = (await trx('deployment_devices').where({ deployment_id: id }).groupBy('phase', 'state').select('phase', 'state').count({ n: '*' })) as unknown as { phase: number; state: TargetState; n: number | string }[];
      return rows.map((r) => ({ phase: Number(r.phase), state: r.state, count: Number(r.n) }));
    },
    /** Targets released (phase ≤ `phase`) and not told yet: the devices to notify now. */
    async dueTargets(id: number, phase: number, trx: Db = db): Promise<TargetRow[]> {
      return trx<TargetRow>('deployment_devices').where({ deployment_id: id, state: 'pending' }).where('phase', '<=', phase).orderBy('device_id');
    },
    /** Each target's device and state only (membership changes compare them with the group). */
    async targetStates(id: number, trx: Db = db): Promise<{ device_id: string; state: TargetState; notified_at: string | null }[]> {
      return trx('deployment_devices').where({ deployment_id: id }).select('device_id', 'state', 'notified_at');
    },
    async target(id: number, device: string, trx: Db = db): Promise<TargetRow | undefined> {
      return trx<TargetRow>('deployment_devices').where({ deployment_id: id, device_id: device }).first();
    },
    /**
     * The bundles a device may read: those of every deployment that targeted it (static or
     * dynamic group) or its static group, whatever their state (a device may still be fetching,
     * or rolling back to, the one deployed before the latest).
     */
    async bundlesForDevice(device: string, group: string): Promise<string[]> {
      const rows = await db('deployments')
        .where('group_name', group)
        .orWhereIn('id', db('deployment_devices').select('deployment_id').where({ device_id: device }))
        .distinct('bundle');
      return rows.map((r: { bundle: string }) => r.bundle);
    },
    /**
     * For each device, the bundles of the unfinished deployments (scheduled, running, paused)
     * that target it, among `bundles`: what a bundle's Maintainer sees devices by.
     */
    async activeBundlesByDevice(bundles: readonly string[], devices?: readonly string[]): Promise<Map<string, Set<string>>> {
      const found = new Map<string, Set<string>>();
      if (bundles.length === 0) return found;
      const q = db('deployment_devices as t')
        .join('deployments as d', 'd.id', 't.deployment_id')
        .whereIn('d.state', ['scheduled', 'running', 'paused'])
        .whereIn('d.bundle', [...bundles])
        .distinct('t.device_id as device', 'd.bundle as bundle');
      if (devices) q.whereIn('t.device_id', [...devices]);
      for (const row of (await q) as { device: string; bundle: string }[]) {
        const set = found.get(row.device) ?? new Set<string>();
        set.add(row.bundle);
        found.set(row.device, set);
      }
      return found;
    },
    /** Every deployment this device is a target of, newest first. */
    async targetsOfDevice(device: string, trx: Db = db): Promise<TargetRow[]> {
      return trx<TargetRow>('deployment_devices').where({ device_id: device }).orderBy('deployment_id', 'desc');
    },
    async updateTarget(id: number, device: string, fields: Partial<Omit<TargetRow, 'deployment_id' | 'device_id'>>, trx: Db = db): Promise<void> {
      await trx('deployment_devices').where({ deployment_id: id, device_id: device }).update(fields);
    },
    async addEvent(id: number, device: string | null, state: string, detail: string | null, at: string, trx: Db = db): Promise<void> {
      await trx('deployment_events').insert({ deployment_id: id, device_id: device, state, detail: detail?.slice(0, 1000) ?? null, at });
    },
    async events(id: number): Promise<{ device_id: string | null; state: string; detail: string | null; at: string }[]> {
      return db('deployment_events').where({ deployment_id: id }).orderBy('id');
    },
    /**
     * Changes whenever the deployment or one of its targets does (the newest event, the newest
     * target change, the deployment's own update): three one-row reads done in the database
     * instead of the whole deployment in JavaScript.
     */
    async changeToken(id: number): Promise<string> {
      const event = (await db('deployment_events').where({ deployment_id: id }).max({ last: 'id' }).first()) as { last: number | string | null } | undefined;
      const target = (await db('deployment_devices').where({ deployment_id: id }).max({ last: 'updated_at' }).first()) as { last: string | null } | undefined;
      const deployment = (await db('deployments').where({ id }).first('updated_at', 'state')) as { updated_at: string | null; state: string } | undefined;
      return [event?.last ?? 0, target?.last ?? '', deployment?.updated_at ?? '', deployment?.state ?? ''].join(' ');
    },
    async countsByState(id: number): Promise<Record<string, number>> {
      const rows = (await db('deployment_devices').where({ deployment_id: id }).groupBy('state').select('state').count({ n: '*' })) as unknown as { state: string; n: number | string }[];
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    },
  };
}

export type DeploymentStore = ReturnType<typeof createDeploymentStore>;
