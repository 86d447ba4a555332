import type { Device } from '../../protocol/api.ts';
import type { DeviceStatus } from '../../protocol/messages.ts';
import type { Db } from '../db/knex.ts';

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
}

function release(bundle: string | null, version: string | null) {
  return bundle && version ? { bundle, version } : null;
}

function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    group: row.group_name,
    state: row.state,
    installed: release(row.installed_bundle, row.installed_version),
    target: release(row.target_bundle, row.target_version),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    lastSeenAt: row.last_seen_at,
    createdAt: row.created_at,
  };
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
    async list(filter: { group?: string }): Promise<Device[]> {
      const query = db<DeviceRow>('devices').orderBy('id');
      if (filter.group) query.where({ group_name: filter.group });
      return (await query).map(toDevice);
    },
    async recordStatus(status: DeviceStatus, now: string): Promise<number> {
      return db('devices').where({ id: status.deviceId }).update({
        state: status.state,
        installed_bundle: status.installed?.bundle ?? null,
        installed_version: status.installed?.version ?? null,
        target_bundle: status.target?.bundle ?? null,
        target_version: status.target?.version ?? null,
        error_code: status.error?.code ?? null,
        error_message: status.error?.message ?? null,
        last_seen_at: now,
      });
    },
  };
}

export type DeviceStore = ReturnType<typeof createDeviceStore>;
