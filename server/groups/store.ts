import type { Db } from '../db/knex.ts';

/** knex queries for `device_groups` (this capability owns it; members live with auth's tables). */

export interface GroupRow {
  name: string;
  kind: 'static' | 'dynamic';
  description: string;
  filter: string | null;
  created_by: string;
  created_at: string;
}

export function createGroupStore(db: Db) {
  return {
    db,
    async insert(row: GroupRow, trx: Db = db): Promise<void> {
      await trx('device_groups').insert(row);
    },
    async find(name: string): Promise<GroupRow | undefined> {
      return db<GroupRow>('device_groups').where({ name }).first();
    },
    async list(): Promise<GroupRow[]> {
      return db<GroupRow>('device_groups').orderBy('name');
    },
    async listDynamic(): Promise<GroupRow[]> {
      return db<GroupRow>('device_groups').where({ kind: 'dynamic' }).orderBy('name');
    },
    async delete(name: string): Promise<number> {
      return db('device_groups').where({ name }).delete();
    },
  };
}

export type GroupStore = ReturnType<typeof createGroupStore>;
