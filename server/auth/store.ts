import type { Db } from '../db/knex.ts';
import type { Principal } from './policy.ts';

interface TokenRow {
  id: number;
  user_id: number | null;
  device_id: string | null;
  expires_at: string | null;
  revoked_at: string | null;
}

export function createAuthStore(db: Db) {
  return {
    async countAdmins(): Promise<number> {
      const row = await db('users').where({ is_admin: true }).count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async createAdmin(name: string, tokenHash: string, now: string): Promise<void> {
      await db.transaction(async (trx) => {
        const [row] = await trx('users').insert({ name, is_admin: true, created_at: now }).returning<{ id: number }[]>('id');
        await trx('tokens').insert({ hash: tokenHash, user_id: row!.id, name: 'initial admin token', created_at: now });
      });
    },

    async insertDeviceToken(deviceId: string, tokenHash: string, now: string, trx: Db = db): Promise<void> {
      await trx('tokens').insert({ hash: tokenHash, device_id: deviceId, name: `device ${deviceId}`, created_at: now });
    },

    /** Resolves a token hash to the principal it stands for, if the token is live. */
    async findPrincipal(tokenHash: string, now: string): Promise<Principal | undefined> {
      const token = await db('tokens').where({ hash: tokenHash }).first<TokenRow | undefined>();
      if (!token || token.revoked_at || (token.expires_at && token.expires_at <= now)) return undefined;
      await db('tokens').where({ id: token.id }).update({ last_used_at: now });
      if (token.user_id !== null) {
        const user = await db('users').where({ id: token.user_id }).first<{ id: number; name: string; is_admin: boolean | number }>();
        return user ? { type: 'user', userId: user.id, name: user.name, isAdmin: Boolean(user.is_admin) } : undefined;
      }
      if (token.device_id !== null) {
        const device = await db('devices').where({ id: token.device_id }).first<{ id: string; group_name: string }>();
        return device ? { type: 'device', deviceId: device.id, group: device.group_name } : undefined;
      }
      return undefined;
    },
  };
}

export type AuthStore = ReturnType<typeof createAuthStore>;
