import type { AuditEvent, AuditOutcome } from '../../protocol/access.ts';
import type { Logger } from '../../protocol/log.ts';
import { principalName, type Principal } from '../auth/policy.ts';
import type { Db } from '../db/knex.ts';

/**
 * The audit log: one row per mutating request, written after the outcome is known. Append-only:
 * this module only inserts and reads, and the database refuses UPDATE and DELETE on the table
 * (migration 0002_access). Never records bodies, so no secret (token, key) can land in it.
 */
export interface AuditEntry {
  action: string;
  method: string;
  target: string;
  principal: Principal | undefined;
  bundle: string | undefined;
  /** The version acted on, from the path or the body (a deployment's, a new draft's). */
  version?: string | undefined;
  /** The device group acted on (a deployment's target). */
  group?: string | undefined;
  requestId: string;
  status: number;
  error: string | undefined;
}

export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  bundle?: string | undefined;
  outcome?: AuditOutcome | undefined;
  since?: string | undefined;
  until?: string | undefined;
}

interface AuditRow {
  id: number;
  at: string;
  actor: string | null;
  action: string;
  method: string;
  target: string;
  bundle: string | null;
  version: string | null;
  group_name: string | null;
  outcome: AuditOutcome;
  status: number;
  error: string | null;
  request_id: string;
}

export function outcomeOfStatus(status: number): AuditOutcome {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'denied';
  return status < 400 ? 'success' : 'failed';
}

function toEvent(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    method: row.method,
    target: row.target,
    bundle: row.bundle,
    version: row.version ?? null,
    group: row.group_name ?? null,
    outcome: row.outcome,
    status: Number(row.status),
    error: row.error,
    requestId: row.request_id,
  };
}

export function createAuditLog(deps: { db: Db; now: () => Date; log: Logger }) {
  const { db } = deps;
  const filtered = (filter: AuditFilter) => {
    const query = db<AuditRow>('audit_events');
    if (filter.actor !== undefined) query.where('actor', filter.actor);
    if (filter.action !== undefined) query.where('action', filter.action);
    if (filter.bundle !== undefined) query.where('bundle', filter.bundle);
    if (filter.outcome !== undefined) query.where('outcome', filter.outcome);
    if (filter.since !== undefined) query.where('at', '>=', filter.since);
    if (filter.until !== undefined) query.where('at', '<', filter.until);
    return query;
  };

  return {
    async record(entry: AuditEntry): Promise<void> {
      const row = {
        at: deps.now().toISOString(),
        actor: entry.principal ? principalName(entry.principal) : null,
        action: entry.action,
        method: entry.method,
        target: entry.target.slice(0, 1000),
        // Only a well-formed bundle name is kept as a filterable column; the target has the rest.
        bundle: entry.bundle !== undefined && /^[a-z0-9][a-z0-9._-]{0,63}$/.test(entry.bundle) ? entry.bundle : null,
        // Bounded like the columns; the values were validated by the route's schemas when they
        // came from a request that got that far, and are only recorded, never interpreted.
        version: entry.version?.slice(0, 256) ?? null,
        group_name: entry.group?.slice(0, 64) ?? null,
        outcome: outcomeOfStatus(entry.status),
        status: entry.status,
        error: entry.error ?? null,
        request_id: entry.requestId,
      };
      try {
        await db('audit_events').insert(row);
      } catch (error) {
        // The action already happened; losing its record is an outage to shout about, and the
        // log line carries the record so it is not lost.
        deps.log.error('could not write the audit record', { record: row, error });
      }
    },

    /** Newest first, `perPage` at a time. */
    async list(filter: AuditFilter, page: number, perPage: number): Promise<{ events: AuditEvent[]; total: number }> {
      const counted = await filtered(filter).count<{ n: number | string }[]>({ n: '*' }).first();
      const rows = await filtered(filter).orderBy('id', 'desc').limit(perPage).offset((page - 1) * perPage);
      return { events: rows.map(toEvent), total: Number(counted?.n ?? 0) };
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
