import { scopes as allScopes, type AccessToken, type Member, type Role, type Scope, type User } from '../../protocol/access.ts';
import type { Db } from '../db/knex.ts';
import type { Principal } from './policy.ts';

/** knex queries for users, memberships and tokens. No rules here: the service decides. */

interface TokenRow {
  id: number;
  user_id: number | null;
  device_id: string | null;
  name: string;
  scopes: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

interface UserRow {
  id: number;
  name: string;
  is_admin: boolean | number;
  created_at: string;
}

export function parseScopes(text: string | null): Scope[] {
  const listed = new Set((text ?? '').split(','));
  return allScopes.filter((s) => listed.has(s));
}

function toUser(row: UserRow): User {
  return { name: row.name, admin: Boolean(row.is_admin), createdAt: row.created_at };
}

function toToken(row: TokenRow & { user_name: string }): AccessToken {
  return {
    id: row.id,
    user: row.user_name,
    name: row.name,
    scopes: parseScopes(row.scopes),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

/** A live device token: who the device is, the devices capability answers. */
export interface DeviceToken {
  type: 'device-token';
  deviceId: string;
}

/** How stale a token's `last_used_at` may get: it is written at most this often (ms). */
const lastUsedResolutionMs = 60_000;

export function createAuthStore(db: Db) {
  const tokensWithUser = () => db('tokens').join('users', 'users.id', 'tokens.user_id').select('tokens.*', 'users.name as user_name');

  return {
    db,
    async countAdmins(): Promise<number> {
      const row = await db('users').where({ is_admin: true }).count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async createAdmin(name: string, tokenHash: string, now: string): Promise<void> {
      await db.transaction(async (trx) => {
        const [row] = await trx('users').insert({ name, is_admin: true, created_at: now }).returning<{ id: number }[]>('id');
        await trx('tokens').insert({ hash: tokenHash, user_id: row!.id, name: 'initial admin token', scopes: allScopes.join(','), created_at: now });
      });
    },

    async insertDeviceToken(deviceId: string, tokenHash: string, now: string, trx: Db = db): Promise<void> {
      await trx('tokens').insert({ hash: tokenHash, device_id: deviceId, name: `device ${deviceId}`, created_at: now });
    },

    /** Resolves a token hash to the user it stands for, or the device it was minted for, if the token is live. */
    async findPrincipal(tokenHash: string, now: string): Promise<Principal | DeviceToken | undefined> {
      const token = await db('tokens').where({ hash: tokenHash }).first<TokenRow | undefined>();
      if (!token || token.revoked_at || (token.expires_at && token.expires_at <= now)) return undefined;
      // Recorded to the minute: a write (and, on SQLite, a disk sync) on every request made each
      // API call cost three commits instead of two (registering 2,000 devices: one in three).
      if (!token.last_used_at || token.last_used_at < new Date(Date.parse(now) - lastUsedResolutionMs).toISOString()) {
        await db('tokens').where({ id: token.id }).update({ last_used_at: now });
      }
      if (token.user_id !== null) {
        const user = await db('users').where({ id: token.user_id }).first<UserRow | undefined>();
        if (!user) return undefined;
        const memberships = await db('members').where({ user_id: user.id }).select<{ bundle: string; role: Role }[]>('bundle', 'role');
        const groupMemberships = await db('group_members').where({ user_id: user.id }).select<{ group_name: string; role: Role }[]>('group_name', 'role');
        return {
          type: 'user',
          userId: user.id,
          name: user.name,
          isAdmin: Boolean(user.is_admin),
          scopes: new Set(parseScopes(token.scopes)),
          roles: new Map(memberships.map((m) => [m.bundle, m.role])),
          groupRoles: new Map(groupMemberships.map((m) => [m.group_name, m.role])),
          tokenId: token.id,
          tokenExpiresAt: token.expires_at,
        };
      }
      // A device's token: the devices capability knows the device (auth never reads its table).
      if (token.device_id !== null) return { type: 'device-token', deviceId: token.device_id };
      return undefined;
    },

    async insertUser(name: string, admin: boolean, now: string): Promise<void> {
      await db('users').insert({ name, is_admin: admin, created_at: now });
    },

    async findUser(name: string, trx: Db = db): Promise<(User & { id: number }) | undefined> {
      const row = await trx('users').where({ name }).first<UserRow | undefined>();
      return row ? { id: row.id, ...toUser(row) } : undefined;
    },

    async listUsers(): Promise<User[]> {
      return (await db('users').orderBy('name')).map(toUser);
    },

    async findMember(bundle: string, userId: number, trx: Db = db): Promise<Role | undefined> {
      const row = await trx('members').where({ bundle, user_id: userId }).first<{ role: Role } | undefined>();
      return row?.role;
    },

    async putMember(bundle: string, userId: number, role: Role, now: string, trx: Db = db): Promise<void> {
      const updated = await trx('members').where({ bundle, user_id: userId }).update({ role });
      if (updated === 0) await trx('members').insert({ bundle, user_id: userId, role, created_at: now });
    },

    async deleteMember(bundle: string, userId: number, trx: Db = db): Promise<number> {
      return trx('members').where({ bundle, user_id: userId }).delete();
    },

    async countOwners(bundle: string, trx: Db = db): Promise<number> {
      const row = await trx('members').where({ bundle, role: 'owner' }).count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },

    async listMembers(bundle: string): Promise<Member[]> {
      const rows = await db('members').join('users', 'users.id', 'members.user_id').where({ bundle }).orderBy('users.name')
        .select<{ bundle: string; name: string; role: Role; created_at: string }[]>('members.bundle', 'users.name', 'members.role', 'members.created_at');
      return rows.map((r) => ({ bundle: r.bundle, user: r.name, role: r.role, createdAt: r.created_at }));
    },

    async insertUserToken(input: { userId: number; name: string; hash: string; scopes: readonly Scope[]; expiresAt: string | null; now: string }): Promise<number> {
      const [row] = await db('tokens')
        .insert({ hash: input.hash, user_id: input.userId, name: input.name, scopes: input.scopes.join(','), created_at: input.now, expires_at: input.expiresAt })
        .returning<{ id: number }[]>('id');
      return row!.id;
    },

    async findToken(id: number): Promise<AccessToken | undefined> {
      const row = await tokensWithUser().where('tokens.id', id).first();
      return row ? toToken(row) : undefined;
    },

    /** User tokens only: device tokens are managed with their devices. */
    async listTokens(filter: { userId?: number }): Promise<AccessToken[]> {
      const query = tokensWithUser().orderBy('tokens.id');
      if (filter.userId !== undefined) query.where('tokens.user_id', filter.userId);
      return (await query).map(toToken);
    },

    /** Device tokens are revoked with their device (decommissioning); returns how many were live. */
    async revokeDeviceTokens(deviceId: string, now: string, trx: Db = db): Promise<number> {
      return trx('tokens').where({ device_id: deviceId }).whereNull('revoked_at').update({ revoked_at: now });
    },

    /* Members of device groups (issue #14 item 2): the same ladder as bundles. */
    async findGroupMember(group: string, userId: number, trx: Db = db): Promise<Role | undefined> {
      const row = await trx('group_members').where({ group_name: group, user_id: userId }).first<{ role: Role } | undefined>();
      return row?.role;
    },
    async putGroupMember(group: string, userId: number, role: Role, now: string, trx: Db = db): Promise<void> {
      const updated = await trx('group_members').where({ group_name: group, user_id: userId }).update({ role });
      if (updated === 0) await trx('group_members').insert({ group_name: group, user_id: userId, role, created_at: now });
    },
    async deleteGroupMember(group: string, userId: number, trx: Db = db): Promise<number> {
      return trx('group_members').where({ group_name: group, user_id: userId }).delete();
    },
    async countGroupOwners(group: string, trx: Db = db): Promise<number> {
      const row = await trx('group_members').where({ group_name: group, role: 'owner' }).count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },
    async listGroupMembers(group: string): Promise<{ group: string; user: string; role: Role; createdAt: string }[]> {
      const rows = await db('group_members').join('users', 'users.id', 'group_members.user_id').where({ group_name: group }).orderBy('users.name')
        .select<{ group_name: string; name: string; role: Role; created_at: string }[]>('group_members.group_name', 'users.name', 'group_members.role', 'group_members.created_at');
      return rows.map((r) => ({ group: r.group_name, user: r.name, role: r.role, createdAt: r.created_at }));
    },

    async revokeToken(id: number, now: string): Promise<void> {
      await db('tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: now });
    },
  };
}

export type AuthStore = ReturnType<typeof createAuthStore>;
