import type { Db } from '../db/knex.ts';
import { isUniqueViolation } from '../db/errors.ts';
import type { DestinationRef, ReplicationFilter, ReplicationTrigger } from '../../protocol/replication.ts';

/** knex queries for replication's own tables (migration 0009). No rules here: service.ts decides. */

export interface EdgeRow {
  name: string;
  description: string;
  token_hash: string;
  created_at: string;
  last_seen_at: string | null;
  /** Where the origin pushes to (null: the edge pulls). */
  url?: string | null;
  /** The edge's token sealed under CONVOY_SECRET_KEY (secrets.ts), kept only while it has a URL. */
  sealed_token?: string | null;
}

export interface RegistryRow {
  name: string;
  url: string;
  namespace: string | null;
  sealed_username: string | null;
  sealed_password: string | null;
  created_at: string;
}

export interface PolicyRecord {
  bundle: string;
  name: string;
  destinations: DestinationRef[];
  mode: 'push' | 'pull';
  trigger: ReplicationTrigger;
  filter: ReplicationFilter;
  bandwidth: number | null;
  propagateRevocations: boolean;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

interface PolicyRow {
  bundle: string;
  name: string;
  destinations: string;
  mode: string;
  trigger: string;
  filter: string;
  bandwidth: number | string | null;
  propagate_revocations: boolean | number;
  enabled: boolean | number;
  created_at: string;
  updated_at: string;
}

function toPolicy(row: PolicyRow): PolicyRecord {
  return {
    bundle: row.bundle,
    name: row.name,
    destinations: JSON.parse(row.destinations) as DestinationRef[],
    mode: row.mode as 'push' | 'pull',
    trigger: JSON.parse(row.trigger) as ReplicationTrigger,
    filter: JSON.parse(row.filter) as ReplicationFilter,
    bandwidth: row.bandwidth === null ? null : Number(row.bandwidth),
    propagateRevocations: Boolean(row.propagate_revocations),
    enabled: Boolean(row.enabled),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function fromPolicy(p: PolicyRecord): Omit<PolicyRow, 'bundle' | 'name' | 'created_at'> {
  return {
    destinations: JSON.stringify(p.destinations),
    mode: p.mode,
    trigger: JSON.stringify(p.trigger),
    filter: JSON.stringify(p.filter),
    bandwidth: p.bandwidth,
    propagate_revocations: p.propagateRevocations,
    enabled: p.enabled,
    updated_at: p.updatedAt,
  };
}

export interface RunRow {
  id: number;
  bundle: string;
  policy: string;
  trigger: string;
  versions: string;
  status: string;
  by: string;
  started_at: string;
  finished_at: string | null;
}

export interface TaskRow {
  id: number;
  run_id: number;
  destination_type: 'edge' | 'registry';
  destination: string;
  kind: 'blob' | 'metadata' | 'manifest' | 'delete';
  ref: string;
  version: string;
  digest: string | null;
  media_type: string | null;
  size: number | string;
  status: 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
  bytes: number | string;
  duration_ms: number | null;
  attempts: number;
  error: string | null;
}

export type NewTask = Omit<TaskRow, 'id' | 'run_id' | 'bytes' | 'duration_ms' | 'attempts' | 'error'>;

export interface TaskCounts {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  pending: number;
  bytes: number;
}

export function createReplicationStore(db: Db) {
  return {
    async insertEdge(row: EdgeRow): Promise<boolean> {
      try {
        await db('replication_edges').insert(row);
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    listEdges: async (): Promise<EdgeRow[]> => db<EdgeRow>('replication_edges').orderBy('name'),
    findEdge: async (name: string): Promise<EdgeRow | undefined> => db<EdgeRow>('replication_edges').where({ name }).first(),
    findEdgeByTokenHash: async (hash: string): Promise<EdgeRow | undefined> => db<EdgeRow>('replication_edges').where({ token_hash: hash }).first(),
    async updateEdge(name: string, patch: Partial<Pick<EdgeRow, 'url' | 'sealed_token' | 'description'>>): Promise<void> {
      await db('replication_edges').where({ name }).update(patch);
    },
    async touchEdge(name: string, now: string): Promise<void> {
      await db('replication_edges').where({ name }).update({ last_seen_at: now });
    },
    async deleteEdge(name: string): Promise<boolean> {
      return (await db('replication_edges').where({ name }).delete()) > 0;
    },

    async insertRegistry(row: RegistryRow): Promise<boolean> {
      try {
        await db('replication_registries').insert(row);
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    listRegistries: async (): Promise<RegistryRow[]> => db<RegistryRow>('replication_registries').orderBy('name'),
    findRegistry: async (name: string): Promise<RegistryRow | undefined> => db<RegistryRow>('replication_registries').where({ name }).first(),
    async deleteRegistry(name: string): Promise<boolean> {
      return (await db('replication_registries').where({ name }).delete()) > 0;
    },

    async insertPolicy(p: PolicyRecord): Promise<boolean> {
      try {
        await db('replication_policies').insert({ bundle: p.bundle, name: p.name, created_at: p.createdAt, ...fromPolicy(p) });
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    async updatePolicy(p: PolicyRecord): Promise<void> {
      await db('replication_policies').where({ bundle: p.bundle, name: p.name }).update(fromPolicy(p));
    },
    async findPolicy(bundle: string, name: string): Promise<PolicyRecord | undefined> {
      const row = await db<PolicyRow>('replication_policies').where({ bundle, name }).first();
      return row ? toPolicy(row) : undefined;
    },
    async listPolicies(bundle?: string): Promise<PolicyRecord[]> {
      const query = db<PolicyRow>('replication_policies').orderBy('bundle').orderBy('name');
      if (bundle !== undefined) query.where({ bundle });
      return (await query).map(toPolicy);
    },
    async deletePolicy(bundle: string, name: string): Promise<boolean> {
      return (await db('replication_policies').where({ bundle, name }).delete()) > 0;
    },
    /** Policies naming a destination (a destination in use cannot be removed). */
    async policiesUsing(destination: DestinationRef): Promise<PolicyRecord[]> {
      return (await this.listPolicies()).filter((p) => p.destinations.some((d) => d.type === destination.type && d.name === destination.name));
    },

    /** A run and its tasks, all or nothing. */
    async insertRun(run: Omit<RunRow, 'id'>, tasks: readonly NewTask[]): Promise<number> {
      return db.transaction(async (trx) => {
        const [inserted] = await trx('replication_runs').insert(run).returning('id');
        const id = Number(typeof inserted === 'object' ? (inserted as { id: number }).id : inserted);
        for (let i = 0; i < tasks.length; i += 200) {
          await trx('replication_tasks').insert(tasks.slice(i, i + 200).map((task) => ({ ...task, run_id: id })));
        }
        return id;
      });
    },
    findRun: async (bundle: string, id: number): Promise<RunRow | undefined> => db<RunRow>('replication_runs').where({ bundle, id }).first(),
    async listRuns(bundle: string, filter: { policy?: string | undefined }, window: { offset: number; limit: number }): Promise<{ items: RunRow[]; total: number }> {
      const base = () => {
        const query = db<RunRow>('replication_runs').where({ bundle });
        if (filter.policy !== undefined) query.where({ policy: filter.policy });
        return query;
      };
      const [{ count }] = (await base().count({ count: '*' })) as [{ count: number | string }];
      const items = await base().orderBy('id', 'desc').offset(window.offset).limit(window.limit);
      return { items, total: Number(count) };
    },
    async finishRun(id: number, status: string, now: string): Promise<void> {
      await db('replication_runs').where({ id }).update({ status, finished_at: now });
    },
    async setRunStatus(id: number, status: string, finishedAt: string | null): Promise<void> {
      await db('replication_runs').where({ id }).update({ status, finished_at: finishedAt });
    },
    runStatus: async (id: number): Promise<string | undefined> => ((await db('replication_runs').where({ id }).first('status')) as { status: string } | undefined)?.status,
    /** Cancelling: tasks not started are skipped; one in flight finishes. */
    async skipPending(runId: number, reason: string): Promise<void> {
      await db('replication_tasks').where({ run_id: runId, status: 'pending' }).update({ status: 'skipped', error: reason });
    },
    /** Re-running: failed tasks, and those a cancel skipped, go back to pending (attempts are kept). */
    async resetFailed(runId: number): Promise<number> {
      return db('replication_tasks')
        .where({ run_id: runId })
        .andWhere((q) => q.where({ status: 'failed' }).orWhere({ status: 'skipped', error: 'cancelled' }))
        .update({ status: 'pending', error: null });
    },
    /** Runs a stopped server left with registry tasks to do; tasks caught mid-transfer go back to pending. */
    async interruptedRuns(): Promise<RunRow[]> {
      const rows = await db<RunRow>('replication_runs')
        .where('status', 'running')
        .whereExists(function () {
          this.from('replication_tasks').whereRaw('replication_tasks.run_id = replication_runs.id').where('destination_type', 'registry').whereIn('status', ['pending', 'running']);
        })
        .orderBy('id');
      if (rows.length > 0) await db('replication_tasks').whereIn('run_id', rows.map((r) => r.id)).where({ status: 'running' }).update({ status: 'pending' });
      return rows;
    },
    async tasksOf(runId: number): Promise<TaskRow[]> {
      return db<TaskRow>('replication_tasks').where({ run_id: runId }).orderBy('id');
    },
    async countTasks(runIds: readonly number[]): Promise<Map<number, TaskCounts>> {
      const counts = new Map<number, TaskCounts>();
      if (runIds.length === 0) return counts;
      const rows = (await db('replication_tasks').whereIn('run_id', [...runIds]).groupBy('run_id', 'status').select('run_id', 'status').count({ n: '*' }).sum({ bytes: 'bytes' })) as { run_id: number; status: string; n: number | string; bytes: number | string | null }[];
      for (const id of runIds) counts.set(id, { total: 0, succeeded: 0, failed: 0, skipped: 0, pending: 0, bytes: 0 });
      for (const row of rows) {
        const c = counts.get(Number(row.run_id))!;
        const n = Number(row.n);
        c.total += n;
        c.bytes += Number(row.bytes ?? 0);
        if (row.status === 'succeeded' || row.status === 'failed' || row.status === 'skipped') c[row.status] += n;
        else c.pending += n;
      }
      return counts;
    },
    async updateTask(id: number, patch: Partial<Pick<TaskRow, 'status' | 'bytes' | 'duration_ms' | 'attempts' | 'error'>>): Promise<void> {
      await db('replication_tasks').where({ id }).update(patch);
    },
    async recordHeld(destination: DestinationRef, repository: string, digest: string, now: string): Promise<void> {
      try {
        await db('replication_held').insert({ destination_type: destination.type, destination: destination.name, repository, digest, recorded_at: now }).onConflict().ignore();
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
      }
    },
    async heldBy(destination: DestinationRef): Promise<Set<string>> {
      const rows = await db('replication_held').where({ destination_type: destination.type, destination: destination.name }).select('repository', 'digest');
      return new Set(rows.map((r: { repository: string; digest: string }) => (r.repository ? `${r.repository}@${r.digest}` : r.digest)));
    },
    /** An edge's tasks still to do, in planned order (blobs before metadata), of runs not cancelled. */
    async pendingEdgeTasks(edge: string, limit: number): Promise<(TaskRow & { bundle: string; bandwidth: number | string | null })[]> {
      return db('replication_tasks')
        .join('replication_runs', 'replication_runs.id', 'replication_tasks.run_id')
        // The policy's bandwidth limit travels with the task (a deleted policy: none).
        .leftJoin('replication_policies', function () {
          this.on('replication_policies.bundle', '=', 'replication_runs.bundle').andOn('replication_policies.name', '=', 'replication_runs.policy');
        })
        .join('replication_edges', 'replication_edges.name', 'replication_tasks.destination')
        .where({ 'replication_tasks.destination_type': 'edge', 'replication_tasks.destination': edge, 'replication_runs.status': 'running' })
        .whereIn('replication_tasks.status', ['pending', 'running'])
        // A push policy's tasks to an edge with a URL are the origin's to send (service.ts), not the edge's to fetch.
        .where((q) => q.whereNull('replication_edges.url').orWhereNull('replication_policies.mode').orWhereNot('replication_policies.mode', 'push'))
        .orderBy('replication_tasks.id')
        .limit(limit)
        .select('replication_tasks.*', 'replication_runs.bundle', 'replication_policies.bandwidth');
    },
    /**
     * Runs other than `run` whose blobs the origin is still to push to this edge (a push policy's
     * pending or running blob tasks, of runs still running): their versions may already be named
     * by the current metadata, so a push of it waits for them (service.ts, pushToEdge).
     */
    async edgeBlobPushesInFlight(edge: string, run: number): Promise<number[]> {
      const rows: { run_id: number | string }[] = await db('replication_tasks')
        .join('replication_runs', 'replication_runs.id', 'replication_tasks.run_id')
        .join('replication_policies', function () {
          this.on('replication_policies.bundle', '=', 'replication_runs.bundle').andOn('replication_policies.name', '=', 'replication_runs.policy');
        })
        .where({ 'replication_tasks.destination_type': 'edge', 'replication_tasks.destination': edge, 'replication_tasks.kind': 'blob', 'replication_runs.status': 'running', 'replication_policies.mode': 'push' })
        .whereIn('replication_tasks.status', ['pending', 'running'])
        .whereNot('replication_tasks.run_id', run)
        .distinct('replication_tasks.run_id');
      return rows.map((row) => Number(row.run_id));
    },
    findTask: async (id: number): Promise<TaskRow | undefined> => db<TaskRow>('replication_tasks').where({ id }).first(),
    /** Whether any task of the edge names the digest (what an edge may read from the origin). */
    async edgeTaskNames(edge: string, digest: string): Promise<boolean> {
      return (await db('replication_tasks').where({ destination_type: 'edge', destination: edge, digest }).first('id')) !== undefined;
    },
    async forgetHeld(destination: DestinationRef): Promise<void> {
      await db('replication_held').where({ destination_type: destination.type, destination: destination.name }).delete();
    },
  };
}

export type ReplicationStore = ReturnType<typeof createReplicationStore>;
