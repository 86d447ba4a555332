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
 * OpenAPI document will be), so they cannot drift from what the server does.
 */
export interface RouteContext<Body> {
  koa: Koa.Context;
  params: Record<string, string>;
  principal: Principal | undefined;
  body: Body;
}

export interface Route<S extends z.ZodType | undefined = z.ZodType | undefined> {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  summary: string;
  action: Action;
  /** Lets requests without a token through (the action is still checked for those with one). */
  anonymous?: boolean;
  /** JSON body schema. Routes that stream their body (blob uploads) leave it out. */
  body?: S;
  handler(ctx: RouteContext<S extends z.ZodType ? z.output<S> : undefined>): Promise<void>;
}

/** Keeps the schema and the handler's body type tied together at the declaration site. */
export function route<S extends z.ZodType | undefined = undefined>(spec: Route<S>): Route<S> {
  return spec;
}

export function buildRouter(routes: readonly Route[], deps: { auth: AuthService; maxJsonBytes: number }): Router {
  const router = new Router();
  for (const spec of routes) {
    const handle: Koa.Middleware = async (ctx) => {
      const principal = await authenticate(ctx, deps.auth);
      if (!principal && !spec.anonymous) throw new ApiError('unauthenticated', 'a valid access token is required (Authorization: Bearer <token>)');
      if (principal && !isAllowed(principal, spec.action)) throw new ApiError('forbidden', `not allowed to ${spec.action}`);
      const body = spec.body ? parseWith(spec.body, await readJson(ctx, deps.maxJsonBytes), 'request body') : undefined;
      await spec.handler({ koa: ctx, params: ctx.params as Record<string, string>, principal, body } as RouteContext<never>);
    };
    router.register(spec.path, [spec.method], handle);
  }
  return router;
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
