import { createContext, useContext } from 'react';
import type { CurrentUser } from '../../protocol/access.ts';
import type { Client } from './api.ts';

/**
 * The signed-in user. The token lives in sessionStorage only: it is gone when the tab closes and
 * is never written to localStorage or a cookie.
 */
const storageKey = 'convoy.session';

export interface Stored {
  user: string;
  token: string;
}

export function loadStored(): Stored | undefined {
  try {
    const raw = window.sessionStorage.getItem(storageKey);
    if (!raw) return undefined;
    const value = JSON.parse(raw) as Partial<Stored>;
    return typeof value.user === 'string' && typeof value.token === 'string' ? { user: value.user, token: value.token } : undefined;
  } catch {
    return undefined;
  }
}

export function saveStored(value: Stored | undefined): void {
  if (value) window.sessionStorage.setItem(storageKey, JSON.stringify(value));
  else window.sessionStorage.removeItem(storageKey);
}

export interface Session {
  user: CurrentUser;
  client: Client;
  signOut(): void;
  /**
   * Whether the policy lets one do `action` (on `bundle` for bundle actions), as the server told
   * us at sign-in. What is not allowed is not offered; the server still decides every request.
   */
  can(action: string, bundle?: string, group?: string): boolean;
}

export function canDo(user: CurrentUser, action: string, bundle?: string, group?: string): boolean {
  if (group !== undefined) {
    const entry = user.groups.find((g) => g.group === group);
    return (entry ? entry.actions : user.otherGroups).includes(action);
  }
  if (bundle === undefined) return user.actions.includes(action);
  const entry = user.bundles.find((b) => b.bundle === bundle);
  return (entry ? entry.actions : user.otherBundles).includes(action);
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in screen');
  return session;
}
