import type { Logger } from '../../protocol/log.ts';
import type { AuthStore } from './store.ts';
import { generateToken, hashToken } from './tokens.ts';
import type { Principal } from './policy.ts';

export interface AuthService {
  /**
   * Makes sure an admin exists. Returns the token when one was generated, so the caller can show
   * it once; returns undefined when an admin already existed or the token came from the config.
   */
  ensureAdmin(configuredToken: string | undefined): Promise<string | undefined>;
  authenticate(token: string): Promise<Principal | undefined>;
}

export function createAuthService(deps: { store: AuthStore; now: () => Date; log: Logger }): AuthService {
  return {
    async ensureAdmin(configuredToken) {
      if ((await deps.store.countAdmins()) > 0) return undefined;
      const token = configuredToken ?? generateToken();
      await deps.store.createAdmin('admin', hashToken(token), deps.now().toISOString());
      deps.log.info('created the admin user', { user: 'admin', source: configuredToken ? 'CONVOY_ADMIN_TOKEN' : 'generated' });
      return configuredToken ? undefined : token;
    },
    async authenticate(token) {
      // Tokens are printable ASCII of bounded length; anything else cannot match, so it is
      // refused before touching the database.
      if (token.length < 16 || token.length > 256 || !/^[\x21-\x7e]+$/.test(token)) return undefined;
      return deps.store.findPrincipal(hashToken(token), deps.now().toISOString());
    },
  };
}
