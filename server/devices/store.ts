import type { Device } from '../../protocol/api.ts';
import type { DeviceStatus } from '../../protocol/messages.ts';
import type { InventoryAttributes } from '../../protocol/rollout.ts';
import type { Db } from '../db/knex.ts';

/** knex queries for `devices` and `device_events` (this capability owns both). */

interface DeviceRow {
  id: string;
  group_name: string;
  state: Device['state'];
  installed_bundle: string | null;
  installed_version: string | null;
  target_bundle: string | null;
  target_version: string | null;
  error_code: string | null;
  error_message: string | null;
  last_seen_at: string | null;
  created_at: string;
  inventory: string | null;
  online: boolean | number;
  last_seq: number | string | null;
  decommissioned_at: string | null;
}

function release(bundle: string | null, version: string | null) {
  return bundle && version ? { bundle, version } : null;
}

function inventoryOf(row: DeviceRow): InventoryAttributes {
  if (!row.inventory) return {};
  try {
    return JSON.parse(row.inventory) as InventoryAttributes;
  } catch {
    return {};
  }
}

function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    group: row.group_name,
    state: row.state,
    online: Boolean(row.online) && !row.decommissioned_at,
    installed: release(row.installed_bundle, row.installed_version),
    target: release(row.target_bundle, row.target_version),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    inventory: inventoryOf(row),
    lastSeenAt: row.last_seen_at,
    createdAt: row.created_at,
    decommissionedAt: row.decommissioned_at,
  };
}

export interface DeviceEvent {
  at: string;
  state: string;
  deploymentId: number | null;
  detail: string | null;
}

export function createDeviceStore(db: Db) {
  return {
    db,
    async insert(id: string, group: string, now: string, trx: Db): Promise<void> {
      await trx('devices').insert({ id, group_name: group, created_at: now });
    },
    async find(id: string): Promise<Device | undefined> {
      const row = await db<DeviceRow>('devices').where({ id }).first();
      return row ? toDevice(row) : undefined;
    },
    async findMany(ids: readonly string[]): Promise<Device[]> {
      const found: Device[] = [];
      for (let i = 0; i < ids.length; i += 400) found.push(...(await db<DeviceRow>('devices').whereIn('id', ids.slice(i, i + 400))).map(toDevice));
      return found;
    },
    /** Every device that is not decommissioned, for group evaluation; ordered by id. */
    async listActive(): Promise<Device[]> {
      return (await db<DeviceRow>('devices').whereNull('decommissioned_at').orderBy('id')).map(toDevice);
    },
    async listAll(filter: { group?: string; state?: string; online?: boolean }): Promise<Device[]> {
      const query = db<DeviceRow>('devices').orderBy('id');
      if (filter.group) query.where({ group_name: filter.group });
      if (filter.state) query.where({ state: filter.state as Device['state'] });
      if (filter.online !== undefined) {
        if (filter.online) query.where({ online: true }).whereNull('decommissioned_at');
        else query.where((q) => q.where({ online: false }).orWhereNotNull('decommissioned_at'));
      }
      return (await query).map(toDevice);
    },
    /**
     * Applies a status report. With a sequence number, a report the server has already applied
     * (or an older one, delivered late by QoS 1 redelivery) changes nothing: returns false.
     */
    async recordStatus(status: DeviceStatus, now: string): Promise<boolean> {
      const query = db('devices').where({ id: status.deviceId }).whereNull('decommissioned_at');
      if (status.seq !== undefined) query.where((q) => q.whereNull('last_seq').orWhere('last_seq', '<', status.seq!));
      const updated = await query.update({
        state: status.state,
        installed_bundle: status.installed?.bundle ?? null,
        installed_version: status.installed?.version ?? null,
        target_bundle: status.target?.bundle ?? null,
        target_version: status.target?.version ?? null,
        error_code: status.error?.code ?? null,
        error_message: status.error?.message ?? null,
        last_seen_at: now,
        online: true,
        ...(status.seq !== undefined ? { last_seq: status.seq } : {}),
      });
      return updated > 0;
    },
    async recordInventory(deviceId: string, attributes: InventoryAttributes, seq: number | undefined, now: string): Promise<boolean> {
      const query = db('devices').where({ id: deviceId }).whereNull('decommissioned_at');
      if (seq !== undefined) query.where((q) => q.whereNull('last_seq').orWhere('last_seq', '<', seq));
      const updated = await query.update({ inventory: JSON.stringify(attributes), last_seen_at: now, online: true, ...(seq !== undefined ? { last_seq: seq } : {}) });
      return updated > 0;
    },
    async setOnline(deviceId: string, online: boolean, now: string): Promise<void> {
      await db('devices').where({ id: deviceId }).update({ online, ...(online ? { last_seen_at: now } : {}) });
    },
    /** Presence of many devices in one statement per chunk (the broker batches a storm's sign-ins). */
    async setOnlineMany(ids: readonly string[], online: boolean, now: string): Promise<void> {
      for (let i = 0; i < ids.length; i += 400) await db('devices').whereIn('id', ids.slice(i, i + 400)).update({ online, ...(online ? { last_seen_at: now } : {}) });
    },
    async setGroup(deviceId: string, group: string): Promise<void> {
      await db('devices').where({ id: deviceId }).update({ group_name: group });
    },
    async decommission(deviceId: string, now: string, trx: Db = db): Promise<number> {
      return trx('devices').where({ id: deviceId }).whereNull('decommissioned_at').update({ decommissioned_at: now, online: false });
    },
    async addEvent(deviceId: string, event: DeviceEvent): Promise<void> {
      await db('device_events').insert({ device_id: deviceId, deployment_id: event.deploymentId, state: event.state, detail: event.detail?.slice(0, 1000) ?? null, at: event.at });
    },
    async history(deviceId: string, limit = 50): Promise<DeviceEvent[]> {
      const rows = await db('device_events').where({ device_id: deviceId }).orderBy('id', 'desc').limit(limit)
        .select<{ at: string; state: string; deployment_id: number | null; detail: string | null }[]>('at', 'state', 'deployment_id', 'detail');
      return rows.reverse().map((r) => ({ at: r.at, state: r.state, deploymentId: r.deployment_id, detail: r.detail }));
    },
    async countInGroup(group: string): Promise<number> {
      const row = await db('devices').where({ group_name: group }).whereNull('decommissioned_at').count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },
  };
}

export type DeviceStore = ReturnType<typeof createDeviceStore>;
