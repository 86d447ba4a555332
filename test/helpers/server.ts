import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { startServer, type RunningServer, type ServerDeps } from '../../server/app.ts';
import { defaultServerConfig, type ServerConfig } from '../../server/config.ts';
import { createLogger, type Logger } from '../../protocol/log.ts';
import { checkResponse } from '../../server/http/openapi.ts';
import type { Route } from '../../server/http/routes.ts';
import type Koa from 'koa';

export const adminToken = 'test-admin-token-0123456789abcdef';

export interface TestServer extends RunningServer {
  dataDir: string;
  /** Log lines the server wrote, for assertions on what it reported. */
  logs: string[];
  /** Answers that did not match their route's declared responses (checked after every test). */
  responseViolations: string[];
  /** `METHOD path` of every route that gave a successful answer, checked against its schema. */
  answeredRoutes: Set<string>;
  api(method: string, urlPath: string, options?: { json?: unknown; body?: Buffer | string; token?: string | null; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers; raw: Buffer }>;
  /** The PostgreSQL database of this server, or undefined on SQLite (the file is in dataDir). */
  databaseUrl: string | undefined;
  /** Restarts on the same data dir and database, as after a crash or an upgrade. */
  restart(): Promise<void>;
}

export { createTestDatabase };

export async function makeTempDir(prefix = 'convoy-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function startTestServer(overrides: Partial<ServerConfig> = {}, extraDeps: Pick<ServerDeps, 'uiDir'> = {}): Promise<TestServer & { dispose(): Promise<void> }> {
  const dataDir = await makeTempDir();
  const database = await createTestDatabase();
  const logs: string[] = [];
  const log: Logger = createLogger({ namespace: 'server', level: 'debug', write: (line) => logs.push(line) });
  const config: ServerConfig = {
    ...defaultServerConfig,
    dataDir,
    host: '127.0.0.1',
    httpPort: 0,
    mqttPort: 0,
    adminToken,
    databaseUrl: database?.url,
    ...overrides,
  };
  const responseViolations: string[] = [];
  const answeredRoutes = new Set<string>();
  const onResponse = (spec: Route, ctx: Koa.Context) => {
    if (ctx.status < 400) answeredRoutes.add(`${spec.method} ${spec.path}`);
    const violation = checkResponse(spec, ctx);
    if (violation) responseViolations.push(violation);
  };
  let running = await startServer(config, { log, onResponse, ...extraDeps });
  const server = {
    dataDir,
    logs,
    responseViolations,
    answeredRoutes,
    get routes() {
      return running.routes;
    },
    get registryRoutes() {
      return running.registryRoutes;
    },
    databaseUrl: database?.url,
    get url() {
      return running.url;
    },
    get httpPort() {
      return running.httpPort;
    },
    get mqttPort() {
      return running.mqttPort;
    },
    get mqttsPort() {
      return running.mqttsPort;
    },
    get httpsPort() {
      return running.httpsPort;
    },
    generatedAdminToken: running.generatedAdminToken,
    collectGarbage: (options?: { graceMs?: number }) => running.collectGarbage(options),
    close: () => running.close(),
    async restart() {
      await running.close();
      // Same ports, so devices configured with them reconnect on their own.
      running = await startServer({ ...config, httpPort: running.httpPort, mqttPort: running.mqttPort }, { log, onResponse, ...extraDeps });
    },
    async api(method: string, urlPath: string, options: { json?: unknown; body?: Buffer | string; token?: string | null; headers?: Record<string, string> } = {}) {
      const headers: Record<string, string> = { ...options.headers };
      const token = options.token === undefined ? adminToken : options.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let body: Buffer | string | undefined = options.body;
      if (options.json !== undefined) {
        headers['content-type'] ??= 'application/json';
        body = typeof options.json === 'string' ? options.json : JSON.stringify(options.json);
      }
      const response = await fetch(`${running.url}${urlPath}`, { method, headers, body: body ?? null });
      const raw = Buffer.from(await response.arrayBuffer());
      let parsed: unknown = undefined;
      if ((response.headers.get('content-type') ?? '').includes('json') && raw.length > 0) parsed = JSON.parse(raw.toString('utf8'));
      return { status: response.status, body: parsed as any, headers: response.headers, raw };
    },
    async dispose() {
      await running.close();
      await database?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** ava helper: a live server for the test, always closed in `finally`. */
export async function withServer(t: ExecutionContext, run: (server: TestServer) => Promise<void>, overrides: Partial<ServerConfig> = {}): Promise<void> {
  const server = await startTestServer(overrides);
  try {
    await run(server);
    // Every answer of every test is checked against the route's declared responses (OpenAPI).
    t.deepEqual(server.responseViolations, [], 'answers the OpenAPI document does not describe');
  } catch (error) {
    t.log(server.logs.slice(-30).join(''));
    throw error;
  } finally {
    await server.dispose();
  }
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHashHex(bytes)}`;
}

import { createHash } from 'node:crypto';
import { createTestDatabase } from './database.ts';
function createHashHex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Uploads bytes and adds them to a draft (created on demand), as a CI job would. */
export async function pushArtifact(server: TestServer, bundle: string, version: string, name: string, bytes: Buffer, type = 'file'): Promise<string> {
  const digest = sha256Digest(bytes);
  const blob = await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (blob.status !== 201 && blob.status !== 200) throw new Error(`blob upload answered ${blob.status}: ${blob.raw}`);
  const created = await server.api('POST', `/api/v1/bundles/${bundle}/versions`, { json: { version } });
  if (created.status !== 201 && created.status !== 409) throw new Error(`version create answered ${created.status}: ${created.raw}`);
  const added = await server.api('PUT', `/api/v1/bundles/${bundle}/versions/${version}/artifacts/${name}`, { json: { type, digest, size: bytes.length } });
  if (added.status !== 201 && added.status !== 200) throw new Error(`artifact put answered ${added.status}: ${added.raw}`);
  return digest;
}

/**
 * Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. The
 * deadline only catches a hang, it asserts no speed: CI machines are shared and a loaded 2-core
 * box took over 30 s to bring a daemon to its first report, so the default is generous (still
 * under ava's 3-minute timeout, which catches what this does not).
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 120_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
