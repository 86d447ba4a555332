import * as z from 'zod';
import { pageQueryFields } from './api.ts';
import { bundleName } from './names.ts';

/*
 * Who may do what: users, their roles per bundle, access tokens and the audit log. The server
 * validates requests with these schemas; the CLI validates answers with them.
 */

const timestamp = z.iso.datetime();

/** The GitLab role ladder, lowest first: each role holds everything the ones below it hold. */
export const roles = ['guest', 'reporter', 'developer', 'maintainer', 'owner'] as const;
export const role = z.enum(roles);
export type Role = z.infer<typeof role>;

/** What a token may be used for. A token's scopes narrow its user's roles; they never widen them. */
export const scopes = ['read', 'write', 'approve', 'deploy', 'admin'] as const;
export const scope = z.enum(scopes);
export type Scope = z.infer<typeof scope>;

/** User names are MQTT user names and appear in the audit log: a strict allow-list. */
export const userName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');

export const createUserRequest = z.strictObject({ name: userName, admin: z.boolean().optional() });

export const user = z.strictObject({ name: userName, admin: z.boolean(), createdAt: timestamp });
export type User = z.infer<typeof user>;

export const putMemberRequest = z.strictObject({ user: userName, role });

export const member = z.strictObject({ bundle: bundleName, user: userName, role, createdAt: timestamp });
export type Member = z.infer<typeof member>;

/** At most one year ahead: a token that never ends is a leak that never ends. */
export const maxTokenLifetimeMs = 366 * 24 * 3600 * 1000;
/** A token created without an expiry lives this long (the CLI's default too). */
export const defaultTokenLifetimeMs = 30 * 24 * 3600 * 1000;

export const createTokenRequest = z.strictObject({
  name: z.string().min(1).max(128).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII'),
  scopes: z.array(scope).min(1).max(scopes.length).refine((list) => new Set(list).size === list.length, 'must not repeat a scope'),
  /**
   * Absent: 30 days (never later than the token creating it); null: never expires, which only a
   * token that never expires may ask for.
   */
  expiresAt: timestamp.nullable().optional(),
  /** Another user's name: only an admin may create tokens for someone else. */
  user: userName.optional(),
});

export const accessToken = z.strictObject({
  id: z.number().int().positive(),
  user: userName,
  name: z.string(),
  scopes: z.array(scope),
  createdAt: timestamp,
  expiresAt: timestamp.nullable(),
  lastUsedAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
});
export type AccessToken = z.infer<typeof accessToken>;

/** Returned once, at creation: the secret is stored only as a hash and never shown again. */
export const createdToken = z.strictObject({ token: z.string(), info: accessToken });

export const auditOutcomes = ['success', 'denied', 'unauthenticated', 'failed'] as const;
export const auditOutcome = z.enum(auditOutcomes);
export type AuditOutcome = z.infer<typeof auditOutcome>;

export const auditEvent = z.strictObject({
  id: z.number().int().positive(),
  at: timestamp,
  /** User name or `device:<id>`; null when the caller could not be authenticated. */
  actor: z.string().nullable(),
  action: z.string(),
  method: z.string(),
  /** The request path: the exact thing acted on. */
  target: z.string(),
  bundle: bundleName.nullable(),
  /** The version acted on (in the path or the body), when there is one. */
  version: z.string().nullable(),
  /** The device group acted on (a deployment's target), when there is one. */
  group: z.string().nullable(),
  outcome: auditOutcome,
  status: z.number().int(),
  /** The error code when the outcome is not success. */
  error: z.string().nullable(),
  requestId: z.string(),
});
export type AuditEvent = z.infer<typeof auditEvent>;

/** `/api/v1/bundles/:name/members/:user`. */
export const memberPath = z.strictObject({ name: bundleName, user: userName });
/** `/api/v1/tokens/:id`: a token's number. */
export const tokenPath = z.strictObject({ id: z.string().regex(/^[1-9]\d{0,14}$/, 'must be a positive whole number').transform(Number) });
/** `GET /api/v1/tokens?user=` (another user's tokens: admins). */
export const tokenListQuery = z.strictObject({ user: userName.optional() });

/** Query filters of GET /api/v1/audit; page and per_page follow the GitLab API convention. */
export const auditQuery = z.strictObject({
  actor: z.string().max(80).optional(),
  action: z.string().max(64).optional(),
  bundle: bundleName.optional(),
  outcome: auditOutcome.optional(),
  since: timestamp.optional(),
  until: timestamp.optional(),
  // The same strict whole numbers as every listing: `0x10`, `1e1` or ` 5` are refused, and
  // per_page above 100 counts as 100 (the README's rule).
  ...pageQueryFields,
});

/** Request ids a caller may supply (X-Request-Id); anything else is replaced by a fresh one. */
export const requestIdPattern = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * `GET /api/v1/user`: who the caller is and what they may do, computed by the server's policy
 * table, so a client (the web UI) offers only what will be allowed without a copy of the rules.
 */
export const currentUser = z.strictObject({
  name: userName,
  /** The user is an instance admin (their powers need a token with the `admin` scope). */
  admin: z.boolean(),
  /** Acting as an admin now: the admin flag and a token carrying the `admin` scope. */
  actingAsAdmin: z.boolean(),
  scopes: z.array(scope),
  tokenExpiresAt: timestamp.nullable(),
  /** Actions held without naming a bundle (instance-wide ones, and those on "some bundle"). */
  actions: z.array(z.string()),
  /** The bundles one is a member of, one's role there and the bundle actions one holds on it. */
  bundles: z.array(z.strictObject({ bundle: bundleName, role, actions: z.array(z.string()) })),
  /** Bundle actions held on a bundle one is not a member of (admins: all the token's scopes allow). */
  otherBundles: z.array(z.string()),
  /** The device groups one is a member of, one's role there and the group actions one holds on it. */
  groups: z.array(z.strictObject({ group: z.string(), role, actions: z.array(z.string()) })),
  /** Group actions held on a device group one is not a member of (admins). */
  otherGroups: z.array(z.string()),
});
export type CurrentUser = z.infer<typeof currentUser>;
