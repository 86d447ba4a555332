import Router from '@koa/router';
import type Koa from 'koa';
import type { z } from 'zod';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import { isAllowed, type Action, type Principal } from '../auth/policy.ts';
import type { AuthService } from '../auth/service.ts';
import { ApiError } from './errors.ts';

/**
 * One declaration per route: method, path, the action it needs, its request schema and its
 * handler. The router and the permission check are derived from these declarations (and the
 * OpenAPI document, server/http/openapi.ts), so they cannot drift from what the server does.
 */
export interface RouteContext<Body, Query = undefined> {
  koa: Koa.Context;
  params: Record<string, string>;
  principal: Principal | undefined;
  body: Body;
  /** The query string, parsed by the route's `query` schema (undefined for routes without one). */
  query: Query;
}

/**
 * What a route answers, by status: a JSON schema, `'binary'` for raw bytes or `'empty'` for no
 * body. Error answers (4xx/5xx) all share `errorResponse` and are not listed. The OpenAPI
 * document is generated from these, and tests check every answer against them.
 */
export type RouteResponses = Partial<Record<number, z.ZodType | 'binary' | 'empty'>>;

export interface Route<S extends z.ZodType | undefined = z.ZodType | undefined, Q extends z.ZodType | undefined = z.ZodType | undefined> {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  summary: string;
  action: Action;
  /** Lets requests without a token through (the action is still checked for those with one). */
  anonymous?: boolean;
  /** JSON body schema. Routes that stream their body (blob uploads) leave it out. */
  body?: S;
  /** Query string schema (a strict object of strings); without it, the handler reads `koa.query` itself. */
  query?: Q;
  /** Answers by status, for the OpenAPI document and response checks. */
  responses?: RouteResponses;
  /** A raw (non-JSON) request body, described in the OpenAPI document by its media type. */
  rawBody?: string;
  handler(ctx: RouteContext<S extends z.ZodType ? z.output<S> : undefined, Q extends z.ZodType ? z.output<Q> : undefined>): Promise<void>;
}

/** Keeps the schema and the handler's body type tied together at the declaration site. */
export function route<S extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(spec: Route<S, Q>): Route<S, Q> {
  return spec;
}

export interface RouterDeps {
  auth: AuthService;
  maxJsonBytes: number;
  /** Called after each handler with what it answered (tests use it to check response shapes). */
  onResponse?: (spec: Route, ctx: Koa.Context) => void;
}

export function buildRouter(routes: readonly Route[], deps: RouterDeps): Router {
  const router = new Router();
  for (const spec of routes) {
    const handle: Koa.Middleware = async (ctx) => {
      const principal = await authenticate(ctx, deps.auth);
      if (!principal && !spec.anonymous) throw new ApiError('unauthenticated', 'a valid access token is required (Authorization: Bearer <token>)');
      if (principal && !isAllowed(principal, spec.action)) throw new ApiError('forbidden', `not allowed to ${spec.action}`);
      const query = parseQuery(spec, ctx);
      const body = spec.body ? parseWith(spec.body, await readJson(ctx, deps.maxJsonBytes), 'request body') : undefined;
      await spec.handler({ koa: ctx, params: ctx.params as Record<string, string>, principal, body, query } as RouteContext<never, never>);
      deps.onResponse?.(spec, ctx);
    };
    router.register(spec.path, [spec.method], handle);
  }
  return router;
}

/**
 * Query parameters are input like any other: a route with a query schema (a strict object)
 * refuses unknown parameters, and a parameter given twice rather than silently reducing it to
 * one of its values. Routes without one (protocols with their own rules, such as OCI's) read
 * `koa.query` themselves.
 */
function parseQuery(spec: Route, ctx: Koa.Context): unknown {
  const raw = ctx.query;
  if (!spec.query) return undefined;
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) throw new ApiError('invalid_request', `query parameter "${name}" is given more than once`);
  }
  return parseWith(spec.query, { ...raw }, 'query string');
}

async function authenticate(ctx: Koa.Context, auth: AuthService): Promise<Principal | undefined> {
  const header = ctx.get('authorization');
  if (!header) return undefined;
  const match = /^Bearer ([^\s]+)$/i.exec(header);
  const principal = match ? await auth.authenticate(match[1]!) : undefined;
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
