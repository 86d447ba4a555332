/**
 * Who may do what. Every route names one action; this table alone decides which principals hold
 * it. The skeleton knows two kinds of principal: users (all admins for now; roles per bundle come
 * with the permissions work) and devices, which may only read what they install.
 */
export const actions = [
  'blob:read',
  'blob:write',
  'bundle:read',
  'bundle:write',
  'version:approve',
  'deployment:read',
  'deployment:create',
  'device:read',
  'device:create',
  'tuf:read',
  'version:revoke',
  'version:sign',
  'keys:read',
  'keys:admin',
] as const;
export type Action = (typeof actions)[number];

export type Principal =
  | { type: 'user'; userId: number; name: string; isAdmin: boolean }
  | { type: 'device'; deviceId: string; group: string };

const deviceActions: ReadonlySet<Action> = new Set(['blob:read', 'tuf:read']);

export function isAllowed(principal: Principal, action: Action): boolean {
  switch (principal.type) {
    case 'user':
      return principal.isAdmin;
    case 'device':
      return deviceActions.has(action);
  }
}

export function principalName(principal: Principal): string {
  return principal.type === 'user' ? principal.name : `device:${principal.deviceId}`;
}
