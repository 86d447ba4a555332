import { defaultTokenLifetimeMs, maxTokenLifetimeMs, scopes, type AccessToken, type Member, type Role, type Scope, type User } from '../../protocol/access.ts';
import type { Logger } from '../../protocol/log.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { ApiError } from '../http/errors.ts';
import type { AuthStore } from './store.ts';
import { generateToken, hashToken } from './tokens.ts';
import { actsAsAdmin, isAllowed, roleOn, roleRank, type Principal } from './policy.ts';

export interface AuthService {
  /**
   * Makes sure an admin exists. Returns the token when one was generated, so the caller can show
   * it once; returns undefined when an admin already existed or the token came from the config.
   */
  ensureAdmin(configuredToken: string | undefined): Promise<string | undefined>;
  /**
   * The way back in (`convoy admin reset-token`): revokes every token of the `admin` user and
   * gives it a new one with every scope, returned once. Creates the admin if none exists.
   */
  resetAdminToken(): Promise<string>;
  authenticate(token: string): Promise<Principal | undefined>;
  createUser(name: string, admin: boolean): Promise<User>;
  listUsers(): Promise<User[]>;
  putMember(actor: Principal, bundle: string, user: string, role: Role): Promise<{ member: Member; created: boolean }>;
  removeMember(actor: Principal, bundle: string, user: string): Promise<void>;
  listMembers(bundle: string): Promise<Member[]>;
  /** The bundle's creator becomes its first Owner. */
  addCreator(bundle: string, actor: Principal): Promise<void>;
  createToken(actor: Principal, input: { name: string; scopes: Scope[]; expiresAt?: string | null | undefined; user?: string | undefined }): Promise<{ token: string; info: AccessToken }>;
  listTokens(actor: Principal, user: string | undefined): Promise<AccessToken[]>;
  revokeToken(actor: Principal, id: number): Promise<AccessToken>;
}

export function createAuthService(deps: {
  store: AuthStore;
  /** The devices capability: which group a device is in (undefined: no such device any more). */
  findDevice: (id: string) => Promise<{ id: string; group: string } | undefined>;
  now: () => Date;
  log: Logger;
  onTokenRevoked?: (tokenId: number) => void;
}): AuthService {
  const { store } = deps;
  const now = () => deps.now().toISOString();

  async function requireUser(name: string): Promise<User & { id: number }> {
    const found = await store.findUser(name);
    if (!found) throw new ApiError('not_found', `user "${name}" does not exist`);
    return found;
  }

  function userOf(actor: Principal): Extract<Principal, { type: 'user' }> {
    if (actor.type !== 'user') throw new ApiError('forbidden', 'only users manage access');
    return actor;
  }

  /**
   * GitLab's rule: nobody grants a role above their own, and only Owners (or admins) grant,
   * change or remove the Owner role. The policy table already checked `member:write`.
   */
  function checkCeiling(actor: Principal, bundle: string, ...touched: (Role | undefined)[]): void {
    const own = roleRank(roleOn(actor, bundle));
    for (const role of touched) {
      if (role !== undefined && roleRank(role) > own) throw new ApiError('forbidden', `only an owner may grant or change the ${role} role`);
    }
  }

  return {
    async ensureAdmin(configuredToken) {
      if ((await store.countAdmins()) > 0) return undefined;
      const token = configuredToken ?? generateToken();
      await store.createAdmin('admin', hashToken(token), now());
      deps.log.info('created the admin user', { user: 'admin', source: configuredToken ? 'CONVOY_ADMIN_TOKEN' : 'generated' });
      return configuredToken ? undefined : token;
    },

    async resetAdminToken() {
      const token = generateToken();
      const admin = await store.findUser('admin');
      if (!admin) {
        await store.createAdmin('admin', hashToken(token), now());
      } else {
        // The old token may have leaked or been lost: it stops working now.
        for (const old of await store.listTokens({ userId: admin.id })) {
          if (!old.revokedAt) await store.revokeToken(old.id, now());
        }
        await store.insertUserToken({ userId: admin.id, name: 'reset admin token', hash: hashToken(token), scopes, expiresAt: null, now: now() });
      }
      deps.log.info('reset the admin token', { user: 'admin' });
      return token;
    },

    async authenticate(token) {
      // Tokens are printable ASCII of bounded length; anything else cannot match, so it is
      // refused before touching the database.
      if (token.length < 16 || token.length > 256 || !/^[\x21-\x7e]+$/.test(token)) return undefined;
      const found = await store.findPrincipal(hashToken(token), now());
      if (found?.type !== 'device-token') return found;
      const device = await deps.findDevice(found.deviceId);
      return device ? { type: 'device', deviceId: device.id, group: device.group } : undefined;
    },

    async createUser(name, admin) {
      try {
        await store.insertUser(name, admin, now());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `user "${name}" already exists`);
        throw error;
      }
      deps.log.info('created a user', { user: name, admin });
      const { id: _id, ...created } = (await store.findUser(name))!;
      return created;
    },

    listUsers: () => store.listUsers(),

    async putMember(actor, bundle, userName, role) {
      const target = await requireUser(userName);
      const created = await store.db.transaction(async (trx) => {
        const current = await store.findMember(bundle, target.id, trx);
        checkCeiling(actor, bundle, role, current);
        if (current === 'owner' && role !== 'owner' && (await store.countOwners(bundle, trx)) <= 1) {
          throw new ApiError('forbidden', `"${userName}" is the last owner of "${bundle}"; make someone else owner first`);
        }
        await store.putMember(bundle, target.id, role, now(), trx);
        return current === undefined;
      });
      const member = (await store.listMembers(bundle)).find((m) => m.user === userName)!;
      return { member, created };
    },

    async removeMember(actor, bundle, userName) {
      const target = await requireUser(userName);
      await store.db.transaction(async (trx) => {
        const current = await store.findMember(bundle, target.id, trx);
        if (current === undefined) throw new ApiError('not_found', `"${userName}" is not a member of "${bundle}"`);
        checkCeiling(actor, bundle, current);
        if (current === 'owner' && (await store.countOwners(bundle, trx)) <= 1) {
          throw new ApiError('forbidden', `"${userName}" is the last owner of "${bundle}"; make someone else owner first`);
        }
        await store.deleteMember(bundle, target.id, trx);
      });
    },

    listMembers: (bundle) => store.listMembers(bundle),

    async addCreator(bundle, actor) {
      if (actor.type === 'user') await store.putMember(bundle, actor.userId, 'owner', now());
    },

    async createToken(actor, input) {
      const self = userOf(actor);
      const forOther = input.user !== undefined && input.user !== self.name;
      if (forOther && !isAllowed(actor, 'user:write')) throw new ApiError('forbidden', 'only an admin may create tokens for another user');
      const owner = await requireUser(input.user ?? self.name);
      const at = deps.now();
      // No expiry given: 30 days, and never past the creating token's own expiry. Never
      // expiring has to be asked for (null): a forgotten token must not live forever by default.
      let expiresAt = input.expiresAt;
      if (expiresAt === undefined) {
        const fallback = at.getTime() + defaultTokenLifetimeMs;
        const own = !forOther && self.tokenExpiresAt !== null ? Date.parse(self.tokenExpiresAt) : Infinity;
        expiresAt = new Date(Math.min(fallback, own)).toISOString();
      }
      if (expiresAt !== null) {
        const expires = Date.parse(expiresAt);
        if (expires <= at.getTime()) throw new ApiError('invalid_request', 'expiresAt must be in the future');
        if (expires - at.getTime() > maxTokenLifetimeMs) throw new ApiError('invalid_request', 'expiresAt must be at most a year ahead');
      }
      // A token never mints a wider or longer-lived one: a leaked read-only token must not turn
      // into a write token, nor outlive its own expiry. Admins minting for others are exempt
      // from the expiry bound (they are issuing, not extending themselves).
      if (!forOther) {
        const wider = input.scopes.filter((s) => !self.scopes.has(s));
        if (wider.length > 0) throw new ApiError('forbidden', `this token lacks the scope(s) ${wider.join(', ')}, so it cannot grant them`);
        if (self.tokenExpiresAt !== null && (expiresAt === null || Date.parse(expiresAt) > Date.parse(self.tokenExpiresAt))) {
          throw new ApiError('forbidden', `this token expires at ${self.tokenExpiresAt}; a token it creates must expire no later`);
        }
      }
      const token = generateToken();
      const id = await store.insertUserToken({
        userId: owner.id,
        name: input.name,
        hash: hashToken(token),
        scopes: input.scopes,
        expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
        now: at.toISOString(),
      });
      deps.log.info('created an access token', { id, user: owner.name, scopes: input.scopes.join(','), by: self.name });
      return { token, info: (await store.findToken(id))! };
    },

    async listTokens(actor, userName) {
      const self = userOf(actor);
      if (userName !== undefined && userName !== self.name) {
        if (!isAllowed(actor, 'user:read')) throw new ApiError('forbidden', "only an admin may list another user's tokens");
        return store.listTokens({ userId: (await requireUser(userName)).id });
      }
      return store.listTokens({ userId: self.userId });
    },

    async revokeToken(actor, id) {
      const self = userOf(actor);
      const found = await store.findToken(id);
      // Someone else's token is answered as missing unless one may manage it: ids are guessable.
      if (!found || (found.user !== self.name && !actsAsAdmin(actor))) throw new ApiError('not_found', `no token ${id}`);
      if (found.user !== self.name && !isAllowed(actor, 'user:write')) throw new ApiError('forbidden', "only an admin may revoke another user's token");
      // As with creating, a token never acts wider than itself: a leaked read-only token must not
      // cut its user off, nor a narrow token revoke a wider one. Any token may revoke itself.
      if (found.id !== self.tokenId && !actsAsAdmin(actor)) {
        if (!self.scopes.has('write')) throw new ApiError('forbidden', 'a read-only token may revoke only itself');
        const wider = found.scopes.filter((s) => !self.scopes.has(s));
        if (wider.length > 0) throw new ApiError('forbidden', `token ${id} carries the scope(s) ${wider.join(', ')}, which this token lacks, so it cannot revoke it`);
      }
      await store.revokeToken(id, now());
      deps.onTokenRevoked?.(id);
      deps.log.info('revoked an access token', { id, user: found.user, by: self.name });
      return (await store.findToken(id))!;
    },
  };
}
