import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { deviceConfigSchemaId, type DeviceConfigInput } from '../../protocol/device-config.ts';
import { makeTempDir, type TestServer } from './server.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The sources through tsx (test/helpers/bin/), not the built bin/: a stale dist/ must not decide a test.
export const convoydBin = path.join(repoRoot, 'test/helpers/bin/convoyd.js');
export const convoyBin = path.join(repoRoot, 'test/helpers/bin/convoy.js');

export interface TestDevice {
  id: string;
  dir: string;
  process: ChildProcess;
  logs: string[];
  /** kill -9: no chance to clean up, as after a power loss of the process. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Writes a device directory as `convoy device add` does, pointing at the given URLs (`serverUrl`:
 * e.g. a mirror or a fault-injecting proxy in front of the server); `tuning` sets the daemon's
 * timing fields (timeouts, check intervals) so a test need not wait for production defaults.
 */
export async function provisionDevice(
  server: TestServer,
  id: string,
  group: string,
  options: { mqttUrl?: string; serverUrl?: string; update?: DeviceConfigInput['update']; tuning?: { timeoutSeconds?: number; trustCheckSeconds?: number } } = {},
): Promise<string> {
  const registered = await server.api('POST', '/api/v1/devices', { json: { id, group } });
  if (registered.status !== 201) throw new Error(`device registration answered ${registered.status}: ${registered.raw}`);
  const dir = await makeTempDir(`convoy-device-${id}-`);
  await fs.writeFile(path.join(dir, 'device.token'), registered.body.token + '\n', { mode: 0o600 });
  await fs.writeFile(path.join(dir, 'root.json'), JSON.stringify(registered.body.root));
  await fs.writeFile(
    path.join(dir, 'device.json'),
    JSON.stringify({
      schema: deviceConfigSchemaId,
      id,
      group,
      serverUrl: options.serverUrl ?? server.url,
      mqttUrl: options.mqttUrl ?? `mqtt://127.0.0.1:${server.mqttPort}`,
      ...(options.update ? { update: options.update } : {}),
      ...options.tuning,
    }),
  );
  return dir;
}

/** Runs a real `convoyd` process on a provisioned directory. */
export function runDaemon(id: string, dir: string, env: Record<string, string> = {}): TestDevice {
  const child = spawn(process.execPath, [convoydBin, '--config', path.join(dir, 'device.json')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CONVOY_LOG_LEVEL: 'debug', ...env },
  });
  const logs: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
  return {
    id,
    dir,
    process: child,
    logs,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function startDevice(server: TestServer, id: string, group: string): Promise<TestDevice> {
  return runDaemon(id, await provisionDevice(server, id, group));
}

/**
 * A provisioned, running `convoyd` for the length of `run`, stopped afterwards whatever happened
 * (its directory is the test's to inspect inside `run`; removed after).
 */
export async function withDevice<T>(
  server: TestServer,
  id: string,
  group: string,
  run: (device: TestDevice) => Promise<T>,
  options: Parameters<typeof provisionDevice>[3] & { env?: Record<string, string> } = {},
): Promise<T> {
  const { env, ...provision } = options;
  const dir = await provisionDevice(server, id, group, provision);
  const device = runDaemon(id, dir, env);
  try {
    return await run(device);
  } finally {
    await device.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Every file in the device's `current/` slot, by name, with its bytes. */
export async function readCurrent(dir: string): Promise<Map<string, Buffer>> {
  const current = path.join(dir, 'current');
  const files = new Map<string, Buffer>();
  for (const name of (await fs.readdir(current)).sort()) files.set(name, await fs.readFile(path.join(current, name)));
  return files;
}

/** Every regular file under `current/` (archives extracted), relative path → sha256; symlinks followed. */
export async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (sub: string) => {
    for (const entry of (await fs.readdir(path.join(dir, sub), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(rel);
      else out[rel] = createHash('sha256').update(await fs.readFile(path.join(dir, rel))).digest('hex');
    }
  };
  await walk('');
  return out;
}

/** The device's journal as it is on disk (the daemon's own truth). */
export async function readJournalFile(dir: string): Promise<any> {
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'journal.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** The server's record of a device (what it last reported). */
export async function deviceRecord(server: TestServer, id: string): Promise<any> {
  const list = await server.api('GET', '/api/v1/devices');
  return (list.body as any[]).find((d) => d.id === id);
}
