import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../protocol/log.ts';
import { startServer } from './app.ts';
import { createAuditLog } from './audit/log.ts';
import { createAuthService } from './auth/service.ts';
import { createAuthStore } from './auth/store.ts';
import { ConfigError, loadServerConfig, type ServerConfig } from './config.ts';

export { ConfigError };
import { openDatabase } from './db/knex.ts';
import { PortInUseError } from './listeners.ts';

function loadConfigOrExit(env: NodeJS.ProcessEnv): ServerConfig {
  try {
    return loadServerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`convoy: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/** `convoy serve --mode edge` (CONVOY_MODE=edge): an edge node (server/edge/) until SIGINT or SIGTERM. */
async function serveEdge(env: NodeJS.ProcessEnv): Promise<void> {
  const { loadEdgeConfig } = await import('./edge/config.ts');
  const { startEdge } = await import('./edge/app.ts');
  let config;
  try {
    config = loadEdgeConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`convoy: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const edge = await startEdge(config);
  process.stdout.write(`Convoy edge is serving devices at ${edge.url}, MQTT on port ${edge.mqttPort}, mirroring ${config.upstreamUrl}\n`);
  if (edge.httpsUrl) process.stdout.write(`Convoy edge is serving enrolled devices (their certificates) at ${edge.httpsUrl}\n`);
  if (edge.mqttsPort !== undefined) process.stdout.write(`Convoy edge is serving enrolled devices MQTT over TLS on port ${edge.mqttsPort}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`convoy: ${signal} received, shutting down\n`);
    edge.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `convoy serve` / `npm start`: runs the origin server (or, with CONVOY_MODE=edge, an edge node) until SIGINT or SIGTERM. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (env.CONVOY_MODE === 'edge') return serveEdge(env);
  if (env.CONVOY_MODE !== undefined && env.CONVOY_MODE !== '' && env.CONVOY_MODE !== 'origin') {
    process.stderr.write(`convoy: configuration error: CONVOY_MODE must be origin or edge, got "${env.CONVOY_MODE}"\n`);
    process.exit(2);
  }
  const config = loadConfigOrExit(env);
  let server;
  try {
    server = await startServer(config);
  } catch (error) {
    // An operator's mistake, not a bug: one line, no stack trace. Nothing was created yet.
    if (error instanceof PortInUseError) {
      process.stderr.write(`convoy: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  process.stdout.write(`Convoy is serving the API at ${server.url} and MQTT on port ${server.mqttPort}\n`);
  if (server.generatedAdminToken) {
    // Shown once, to the operator's terminal; only its hash is stored.
    process.stdout.write(
      `\nCreated the admin user with this access token (it is not shown again; store it now):\n\n  ${server.generatedAdminToken}\n\n` +
        `  export CONVOY_URL=${server.url} CONVOY_TOKEN=<the token above>\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`convoy: ${signal} received, shutting down\n`);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/**
 * `convoy admin reset-token`: the way back in when the admin token is lost (never shown, or
 * forgotten). Run on the server's machine with the server's configuration (CONVOY_DATA_DIR,
 * CONVOY_DATABASE_URL): whoever can read the data dir holds the instance anyway. Revokes the
 * admin's tokens, prints a new one once, and records the reset in the audit log.
 */
export async function resetAdminToken(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  if (!config.databaseUrl) {
    // Opening SQLite would create an empty database in a mistyped data dir: refuse instead.
    const file = path.join(config.dataDir, 'convoy.sqlite');
    if (!(await fs.stat(file).catch(() => undefined))) {
      throw new ConfigError(`no Convoy database at ${file}: run this with the server's CONVOY_DATA_DIR (and CONVOY_DATABASE_URL, if it uses PostgreSQL)`);
    }
  }
  const log = createLogger({ namespace: 'admin', level: 'warn', write: (line) => process.stderr.write(line) });
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const now = () => new Date();
    // Resetting the admin token never looks a device up: nothing here signs a device in.
    const auth = createAuthService({ store: createAuthStore(db), now, log, findDevice: async () => undefined });
    const token = await auth.resetAdminToken();
    await createAuditLog({ db, now, log }).record({
      action: 'token:write', method: 'CLI', target: 'convoy admin reset-token', principal: undefined, bundle: undefined, requestId: randomUUID(), status: 200, error: undefined,
    });
    process.stdout.write(
      `Revoked the admin's tokens and created this one (it is not shown again; store it now):\n\n  ${token}\n\n` +
        'A running server accepts it at once; MQTT connections signed in with an old token last until they reconnect.\n',
    );
  } finally {
    await db.destroy();
  }
}
