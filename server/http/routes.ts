import Router from '@koa/router';
import type Koa from 'koa';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { requestIdPattern } from '../../protocol/access.ts';
import { pathParamCodes } from '../../protocol/api.ts';
import type { ErrorCode } from '../../protocol/errors.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import { isAllowed, mayHoldSomewhere, ruleOf, type Action, type Caller, type EdgePrincipal, type Principal, type Resource } from '../auth/policy.ts';
import type { AuthService } from '../auth/service.ts';
import type { AuditLog } from '../audit/log.ts';
import { ApiError, httpStatusOf } from './errors.ts';
import { ProtocolError } from '../../protocol/errors.ts';

/**
 * One declaration per route: method, path, the action it needs, its request schema and its
 * handler. The router and the permission check are derived from these declarations (and the
 * OpenAPI document, server/http/openapi.ts), so they cannot drift from what the server does.
 */
export interface RouteContext<Body, Query = undefined, Params = Record<string, string>> {
  koa: Koa.Context;
  /** The path parameters, parsed by the route's `params` schema. */
  params: Params;
  principal: Principal | undefined;
  /** The edge node calling (edge mode, with its edge token); then `principal` is undefined. */
  edge: string | undefined;
  body: Body;
  /** The query string, parsed by the route's `query` schema (undefined for routes without one). */
  query: Query;
  /** Asks the policy table about another action (e.g. to filter a listing); no side effect. */
  can(action: Action, resource?: Resource): boolean;
  /** This request's id (echoed in X-Request-Id and recorded in the audit log). */
  requestId: string;
}

/**
 * What a route answers, by status: a JSON schema, `'binary'` for raw bytes or `'empty'` for no
 * body. Error answers (4xx/5xx) all share `errorResponse` and are not listed. The OpenAPI
 * document is generated from these, and tests check every answer against them.
 */
export type RouteResponses = Partial<Record<number, z.ZodType | 'binary' | 'empty' | EventStream>>;

/** A `text/event-stream` of snapshots, each event's data described by the schema (server/http/events.ts). */
export interface EventStream {
  eventStream: z.ZodType;
}

type Out<T, Fallback> = T extends z.ZodType ? z.output<T> : Fallback;

export interface Route<
  S extends z.ZodType | undefined = z.ZodType | undefined,
  Q extends z.ZodType | undefined = z.ZodType | undefined,
  P extends z.ZodType | undefined = z.ZodType | undefined,
> {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  summary: string;
  action: Action;
  /** Lets requests without a token through (the action is still checked for those with one). */
  anonymous?: boolean;
  /** JSON body schema. Routes that stream their body (blob uploads) leave it out. */
  body?: S;
  /**
   * Path parameter schema (a strict object naming every `:param` of the path). Required when
   * the path has parameters (test/api/openapi.test.ts checks it); parsed before the handler.
   */
  params?: P;
  /**
   * Query string schema (a strict object of strings). Without one, the route takes no query
   * parameters at all: any given is refused, as an unknown parameter would be.
   */
  query?: Q;
  /** Answers by status, for the OpenAPI document and response checks. */
  responses?: RouteResponses;
  /** A raw (non-JSON) request body, described in the OpenAPI document by its media type. */
  rawBody?: string;
  /**
   * What the action applies to, read from the validated path or body (e.g. the bundle name in
   * the path). Bundle-level actions need it: without one the policy refuses all but admins.
   * It gets the caller too, so a route acting on a row the caller may not see (a deployment, a
   * device: server/auth/reads.ts) throws `not_found` here, as a read of it would, instead of
   * letting the permission check answer 403 and reveal that the row exists.
   */
  resource?(request: { params: Out<P, Record<string, string>>; body: Out<S, undefined>; caller: Caller | undefined }): Resource | undefined | Promise<Resource | undefined>;
  handler(ctx: RouteContext<Out<S, undefined>, Out<Q, undefined>, Out<P, Record<string, string>>>): Promise<void>;
}

/** Keeps the schemas and the handler's types tied together at the declaration site. */
export function route<S extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, P extends z.ZodType | undefined = undefined>(
  spec: Route<S, Q, P>,
): Route<S, Q, P> {
  return spec;
}

export interface RouterDeps {
  /** Only `authenticate` is used: an edge (server/edge/) signs devices in by asking its origin. */
  auth: Pick<AuthService, 'authenticate'>;
  /** Who an edge token (`cvye_…`, from `convoy edge add`) stands for; unset: edge tokens are refused. */
  edgeToken?: (token: string) => Promise<EdgePrincipal | undefined>;
  maxJsonBytes: number;
  audit?: AuditLog;
  /** Called after each handler with what it answered (tests use it to check response shapes). */
  onResponse?: (spec: Route, ctx: Koa.Context) => void;
  /** Who a verified TLS client certificate stands for (the devices' mTLS listener); undefined: refused. */
  certificatePrincipal?: CertificatePrincipal;
}

export type CertificatePrincipal = (peer: { commonName: string; serial: string }) => Promise<Principal | undefined>;

/** A path parameter `:name` as the bundle acted on; most bundle routes declare this. */
export const bundleInPath = ({ params }: { params: Record<string, string> }): Resource | undefined =>
  params.name === undefined ? undefined : { bundle: params.name };

/** Reads never change anything; every other method is recorded in the audit log. */
const readOnlyMethods = new Set(['GET', 'HEAD']);

export function buildRouter(routes: readonly Route[], deps: RouterDeps): Router {
  const router = new Router();
  for (const spec of routes) {
    const handle: Koa.Middleware = async (ctx) => {
      const supplied = ctx.get('x-request-id');
      const requestId = requestIdPattern.test(supplied) ? supplied : randomUUID();
      ctx.set('X-Request-Id', requestId);
      let principal: Principal | undefined;
      let caller: Caller | undefined;
      let resource: Resource | undefined;
      let failure: unknown;
      let audited: { version?: string; group?: string } = {};
      try {
        caller = await authenticate(ctx, deps.auth, deps.certificatePrincipal, deps.edgeToken);
        principal = caller?.type === 'edge' ? undefined : caller;
        if (!caller && !spec.anonymous) throw new ApiError('unauthenticated', 'a valid access token is required (Authorization: Bearer <token>)');
        // Instance-level actions are decided before the body is read; bundle-level ones may
        // name their bundle in the body, so those are decided right after it is validated.
        const needsResource = spec.resource !== undefined;
        if (caller && !needsResource) deny(caller, spec.action, undefined);
        // A refusal that no row could change (a device, a token without the scope) comes first:
        // it reveals nothing, and the route's lookup below may then answer 404 for a hidden row.
        if (caller && needsResource && !mayHoldSomewhere(caller, spec.action)) deny(caller, spec.action, undefined);
        const params = parseParams(spec, ctx);
        const query = parseQuery(spec, ctx);
        const body = spec.body ? parseWith(spec.body, await readJson(ctx, deps.maxJsonBytes), 'request body') : undefined;
        // May look something up (the group a device or deployment belongs to), and answers 404
        // for a row the caller may not see before the permission check could answer 403.
        resource = await spec.resource?.({ params, body, caller } as never);
        audited = releaseOf(params, body);
        if (caller && needsResource) deny(caller, spec.action, resource);
        const who = caller;
        const can = (action: Action, on?: Resource) => who !== undefined && isAllowed(who, action, on);
        const edge = caller?.type === 'edge' ? caller.edge : undefined;
        await spec.handler({ koa: ctx, params, principal, edge, body, query, can, requestId } as RouteContext<never, never>);
        deps.onResponse?.(spec, ctx);
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        if (deps.audit && !readOnlyMethods.has(spec.method)) {
          await deps.audit.record({ action: spec.action, method: spec.method, target: ctx.path, principal, bundle: resource?.bundle, ...audited, requestId, ...outcomeOf(ctx, failure) });
        }
      }
    };
    router.register(spec.path, [spec.method], handle);
  }
  return router;
}

/**
 * Path parameters are input like any other: parsed by the route's schema before the handler, a
 * bad one answering the code its name calls for (a bad bundle name: invalid_name).
 */
function parseParams(spec: Route, ctx: Koa.Context): unknown {
  const raw = { ...(ctx.params as Record<string, string>) };
  if (!spec.params) return raw;
  const result = spec.params.safeParse(raw);
  if (result.success) return result.data;
  const first = result.error.issues[0]?.path[0];
  const code = typeof first === 'string' ? pathParamCodes[first] : undefined;
  return parseWith(spec.params, raw, 'path parameter', code ?? 'invalid_request');
}

/**
 * Query parameters are input like any other: a route refuses the parameters its query schema
 * (a strict object) does not name, a route without one refuses them all, and a parameter given
 * twice is refused rather than silently reduced to one of its values. (The OCI registry under
 * /v2 is not in this table: its protocol has its own rules.)
 */
function parseQuery(spec: Route, ctx: Koa.Context): unknown {
  const raw = ctx.query;
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) throw new ApiError('invalid_request', `query parameter "${name}" is given more than once`);
  }
  if (!spec.query) {
    const names = Object.keys(raw);
    if (names.length > 0) throw new ApiError('invalid_request', `unknown query parameter${names.length > 1 ? 's' : ''} ${names.map((n) => `"${n}"`).join(', ')}: ${spec.method} ${spec.path} takes none`);
    return undefined;
  }
  return parseWith(spec.query, { ...raw }, 'query string');
}

/**
 * The release a request acts on, for the audit log: the version in the path or the body (a new
 * draft, a deployment) and the device group in the path or the body (a deployment's target).
 * Read only from values the route's schemas already validated.
 */
function releaseOf(params: unknown, body: unknown): { version?: string; group?: string } {
  const pick = (key: string): string | undefined => {
    for (const source of [params, body]) {
      const value = source !== null && typeof source === 'object' ? (source as Record<string, unknown>)[key] : undefined;
      if (typeof value === 'string') return value;
    }
    return undefined;
  };
  const version = pick('version');
  const group = pick('group');
  return { ...(version !== undefined ? { version } : {}), ...(group !== undefined ? { group } : {}) };
}

/** `group "g1"`, or `the group` when refused before the row was looked up. */
const named = (kind: string, name: string | undefined) => (name === undefined ? `the ${kind}` : `${kind} "${name}"`);

function deny(principal: Caller, action: Action, resource: Resource | undefined): void {
  if (isAllowed(principal, action, resource)) return;
  const rule = ruleOf(action);
  if (rule.edgesOnly) throw new ApiError('forbidden', `not allowed to ${action}: only edge nodes hold it (their token from convoy edge add)`);
  if (principal.type === 'edge') throw new ApiError('forbidden', `not allowed to ${action}: an edge token only mirrors releases`);
  const needs =
    rule.on === 'instance'
      ? rule.role === 'admin' ? 'an instance admin' : 'a signed-in user'
      : rule.on === 'group'
        ? `${rule.role} or higher on ${named('group', resource?.group)}${rule.bundleRole ? ` and ${rule.bundleRole} or higher on ${named('bundle', resource?.bundle)}` : ''}`
        : `${rule.role} or higher${rule.on === 'bundle' ? ` on ${resource?.bundle === undefined ? 'the bundle' : `"${resource.bundle}"`}` : ' on some bundle'}`;
  throw new ApiError('forbidden', `not allowed to ${action}: needs ${needs} and a token with the "${rule.scope}" scope`);
}

function outcomeOf(ctx: Koa.Context, failure: unknown): { status: number; error: string | undefined } {
  if (failure === undefined) return { status: ctx.status, error: undefined };
  const code: ErrorCode | undefined = failure instanceof ApiError || failure instanceof ProtocolError ? failure.code : undefined;
  if (code) return { status: httpStatusOf(code), error: code };
  const status = (failure as { status?: unknown } | null)?.status;
  return { status: typeof status === 'number' ? status : 500, error: 'internal' };
}

async function authenticate(ctx: Koa.Context, auth: Pick<AuthService, 'authenticate'>, byCertificate?: CertificatePrincipal, byEdgeToken?: RouterDeps['edgeToken']): Promise<Caller | undefined> {
  const header = ctx.get('authorization');
  if (!header) {
    // The devices' mTLS listener: the TLS layer verified the chain; the certificate must also be
    // one the server issued and has not revoked (checked per request, so a revocation is at once).
    const socket = ctx.req.socket as Partial<TLSSocket>;
    if (!byCertificate || !socket.authorized || !socket.getPeerCertificate) return undefined;
    const cert = socket.getPeerCertificate();
    const principal = await byCertificate({ commonName: String(cert.subject?.CN ?? ''), serial: cert.serialNumber ?? '' });
    if (!principal) throw new ApiError('unauthenticated', 'this device certificate is revoked or unknown to the server');
    return principal;
  }
  const match = /^Bearer ([^\s]+)$/i.exec(header);
  // Edge tokens carry their own prefix (server/replication/service.ts addEdge): looked up there.
  const principal = !match ? undefined : match[1]!.startsWith('cvye_') ? await byEdgeToken?.(match[1]!) : await auth.authenticate(match[1]!);
  // A token that is present but wrong is an error even on anonymous routes: the caller meant to
  // be someone, and silently treating them as anonymous hides expired or revoked tokens.
  if (!principal) throw new ApiError('unauthenticated', 'the access token is invalid, expired or revoked');
  return principal;
}

/** Reads a JSON body of bounded size; the limit holds whatever Content-Length claims. */
export async function readJson(ctx: Koa.Context, maxBytes: number): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new ApiError('unsupported_media_type', 'the request body must be JSON (Content-Type: application/json)');
  }
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > maxBytes) throw new ApiError('payload_too_large', `the request body exceeds ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new ApiError('payload_too_large', `the request body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return parseJson(Buffer.concat(chunks).toString('utf8'), 'request body');
}
