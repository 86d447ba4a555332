import type Koa from 'koa';
import * as z from 'zod';
import { errorResponse } from '../../protocol/api.ts';
import type { Route } from './routes.ts';

/*
 * The OpenAPI 3.1 document, generated from the route declarations: the same zod schemas the
 * routes validate requests with (and tests validate answers with) become its JSON Schemas
 * (`z.toJSONSchema`, draft 2020-12, which OpenAPI 3.1 uses as is). Nothing here is written by
 * hand, so the document cannot drift from what the server does.
 */

type JsonSchema = Record<string, unknown>;

function toSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonSchema;
  delete json.$schema; // the document's jsonSchemaDialect says it once
  return json;
}

/** `/api/v1/bundles/:name` → `/api/v1/bundles/{name}`; `/tuf/targets/*path` → `/tuf/targets/{path}`. */
export function openApiPath(koaPath: string): { path: string; params: string[] } {
  const params: string[] = [];
  const path = koaPath.replace(/[:*]([A-Za-z_][A-Za-z0-9_]*)/g, (_, param: string) => {
    params.push(param);
    return `{${param}}`;
  });
  return { path, params };
}

function operationId(route: Route): string {
  const words = route.path
    .split('/')
    .filter((part) => part && part !== 'api' && part !== 'v1')
    .map((part) => part.replace(/^[:*]/, 'by-'))
    .join('-');
  return `${route.method.toLowerCase()}-${words}`.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''));
}

/**
 * Routes of other protocols are described by their own specifications, not by this document:
 * the OCI distribution API (`/v2/…`, with its own error shape) is one.
 */
export function isDocumented(route: Pick<Route, 'path'>): boolean {
  return !/^\/v2(?:\/|$)/.test(route.path);
}

export function buildOpenApiDocument(routes: readonly Route[], info: { title: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes.filter(isDocumented)) {
    const { path, params } = openApiPath(route.path);
    // Path parameters come from the route's `params` schema, the one the router parses with.
    const pathSchemas = route.params ? ((toSchema(route.params, 'input') as { properties?: Record<string, JsonSchema> }).properties ?? {}) : {};
    const parameters: unknown[] = params.map((param) => ({
      name: param,
      in: 'path',
      required: true,
      schema: pathSchemas[param] ?? { type: 'string' },
    }));
    if (route.query) {
      const query = toSchema(route.query, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        parameters.push({ name, in: 'query', required: (query.required ?? []).includes(name), schema });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, answer] of Object.entries(route.responses ?? {})) {
      if (answer === 'empty') responses[status] = { description: 'no body' };
      else if (answer === 'binary') responses[status] = { description: 'the bytes', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
      else if (typeof answer === 'object' && 'eventStream' in answer) {
        // Server-sent events: each `snapshot` event's data is one JSON document of this schema.
        responses[status] = { description: 'server-sent events (event: snapshot) whose data is this schema', content: { 'text/event-stream': { schema: { type: 'string' }, itemSchema: toSchema(answer.eventStream, 'output') } } };
      } else if (answer) responses[status] = { description: 'success', content: { 'application/json': { schema: toSchema(answer, 'output') } } };
    }
    responses.default = { description: 'an error: 4xx for bad input or state, 5xx for faults', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    const operation: Record<string, unknown> = {
      operationId: operationId(route),
      summary: route.summary,
      'x-convoy-action': route.action,
      security: route.anonymous ? [{}, { bearerAuth: [] }] : [{ bearerAuth: [] }],
      parameters,
      responses,
    };
    if (route.body) operation.requestBody = { required: true, content: { 'application/json': { schema: toSchema(route.body, 'input') } } };
    else if (route.rawBody) operation.requestBody = { required: true, content: { [route.rawBody]: { schema: { type: 'string', contentMediaType: route.rawBody } } } };
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info,
    paths,
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an access token' } },
      schemas: { Error: toSchema(errorResponse, 'output') },
    },
  };
}

/**
 * Checks one answer against its route's declaration: the status must be declared and the body
 * must match its schema. Returns what is wrong, or undefined. Routes that declare no responses
 * are not checked here (the OpenAPI test lists them).
 */
export function checkResponse(route: Route, ctx: Pick<Koa.Context, 'status' | 'body' | 'method'>): string | undefined {
  if (!route.responses) return undefined;
  const where = `${route.method} ${route.path} answered ${ctx.status}`;
  const declared = route.responses[ctx.status];
  if (declared === undefined) {
    if (ctx.status >= 400) return errorResponse.safeParse(ctx.body).success ? undefined : `${where} with a body that is not the error shape`;
    return `${where}, a status its declaration does not list (${Object.keys(route.responses).join(', ')})`;
  }
  if (declared === 'empty') return ctx.body === undefined || ctx.body === null || ctx.body === '' ? undefined : `${where} with a body, declared empty`;
  if (declared === 'binary') return undefined;
  if (typeof declared === 'object' && 'eventStream' in declared) return typeof (ctx.body as { pipe?: unknown } | null)?.pipe === 'function' ? undefined : `${where} without a stream, declared text/event-stream`;
  if (ctx.method === 'HEAD') return undefined;
  const wire: unknown = ctx.body === undefined ? undefined : JSON.parse(JSON.stringify(ctx.body));
  const result = declared.safeParse(wire);
  if (result.success) return undefined;
  return `${where} with a body its schema does not describe: ${result.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
}
