import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, withServer } from '../helpers/server.ts';

/*
 * Issue 9, defect 2.4: a first start that fails on a busy port creates nothing (so the next start
 * still shows the generated admin token), says so in one line, and `convoy admin reset-token`
 * is the documented way back in. Through the real CLI, as an operator runs it.
 */

const exec = promisify(execFile);

/** The server's environment for a data dir of its own (SQLite), without the caller's CONVOY_*. */
function serverEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('CONVOY_')) env[name] = value;
  return { ...env, CONVOY_DATA_DIR: dataDir, CONVOY_HOST: '127.0.0.1', CONVOY_HTTP_PORT: '0', CONVOY_MQTT_PORT: '0', CONVOY_LOG_LEVEL: 'error', ...extra };
}

async function convoy(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoyBin, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function occupyPort(): Promise<{ port: number; release(): Promise<void> }> {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  return { port: (holder.address() as net.AddressInfo).port, release: () => new Promise((resolve) => holder.close(() => resolve())) };
}

/** Runs `convoy serve` until it prints the generated admin token; stops it (by its pid) after. */
async function firstStart(env: NodeJS.ProcessEnv): Promise<{ token: string; url: string }> {
  const child = spawn(process.execPath, [convoyBin, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    return await new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no admin token printed within 60 s: ${out} ${err}`)), 60_000);
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const token = /^\s+(cvy_\S+)$/m.exec(out)?.[1];
        const url = /serving the API at (\S+)/.exec(out)?.[1];
        if (token && url) {
          clearTimeout(timer);
          resolve({ token, url });
        }
      });
      child.on('exit', (code) => reject(new Error(`convoy serve exited (${code}): ${out} ${err}`)));
    });
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
}

for (const listener of ['HTTP', 'MQTT'] as const) {
  test(`a busy ${listener} port fails the start in one line, creates nothing, and the next start still shows the admin token`, async (t) => {
    const work = await makeTempDir();
    const busy = await occupyPort();
    try {
      const dataDir = path.join(work, 'data');
      const env = serverEnv(dataDir, { [`CONVOY_${listener}_PORT`]: String(busy.port) });
      const failed = await convoy(['serve'], env);
      t.is(failed.code, 1);
      const lines = failed.stderr.trim().split('\n');
      t.is(lines.length, 1, `one line, no stack trace: ${failed.stderr}`);
      t.regex(lines[0]!, new RegExp(`^convoy: the ${listener} port ${busy.port} on 127\\.0\\.0\\.1 is already in use.*CONVOY_${listener}_PORT$`));
      t.false(await fs.stat(dataDir).then(() => true, () => false), 'no data dir, database, admin user or key was created');

      await busy.release();
      const second = await firstStart(serverEnv(dataDir));
      const answer = await fetch(`${second.url}/api/v1/users`, { headers: { authorization: `Bearer ${second.token}` } }).catch(() => undefined);
      t.is(answer, undefined, 'the server was stopped after printing its token');
      t.regex(second.token, /^cvy_/);
    } finally {
      await busy.release().catch(() => {});
      await fs.rm(work, { recursive: true, force: true });
    }
  });
}

test('convoy admin reset-token gives the admin a new token, printed once; the old one stops working', async (t) => {
  await withServer(t, async (server) => {
    const env = serverEnv(server.dataDir, server.databaseUrl ? { CONVOY_DATABASE_URL: server.databaseUrl } : {});
    const reset = await convoy(['admin', 'reset-token'], env);
    t.is(reset.code, 0, reset.stderr);
    const tokens = reset.stdout.match(/cvy_[A-Za-z0-9_-]+/g) ?? [];
    t.is(tokens.length, 1, 'printed once');
    const fresh = tokens[0]!;

    t.is((await server.api('GET', '/api/v1/users', { token: adminToken })).status, 401, 'the old admin token is revoked');
    const users = await server.api('GET', '/api/v1/users', { token: fresh });
    t.is(users.status, 200, 'the running server accepts the new token at once');
    const audit = await server.api('GET', '/api/v1/audit?action=token:write', { token: fresh });
    t.like(audit.body[0], { actor: null, method: 'CLI', target: 'convoy admin reset-token', outcome: 'success' });
    t.false(JSON.stringify(audit.body).includes(fresh), 'the token is not in the audit log');
  });
});

test('convoy admin reset-token refuses a data dir without a database instead of creating one', async (t) => {
  const work = await makeTempDir();
  try {
    const refused = await convoy(['admin', 'reset-token'], serverEnv(path.join(work, 'typo')));
    t.is(refused.code, 1);
    t.regex(refused.stderr, /^convoy: no Convoy database at .*typo.*CONVOY_DATA_DIR/);
    t.is(refused.stdout, '');
    t.false(await fs.stat(path.join(work, 'typo')).then(() => true, () => false));
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
});
