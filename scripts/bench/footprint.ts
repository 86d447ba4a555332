/**
 * The footprint of the built programs (dist/, plain node, as a device runs them), each figure
 * beside the floor Node itself sets, measured in the same run on the same machine:
 *   - convoyd RSS when idle after one update, beside `node -e` holding a timer;
 *   - convoyd peak RSS (VmHWM) over installing a large file artifact (1 GiB by default);
 *   - convoyd start to READY=1 (sd_notify on a unix datagram socket, as systemd listens), beside
 *     `node -e 0` start to exit;
 *   - a `convoy bundle list` round trip against the running server, beside `node -e 0`;
 *   - the server's RSS after a few requests, idle, beside the same timer floor.
 * Wall-clock figures are the best of --rounds on a shared machine; compare within one run.
 * Memory is printed in MiB and in decimal MB, the unit of the targets (issue #9), and each row
 * with a target says whether it is met.
 *
 *   scripts/bench/footprint                   # 1 GiB artifact, best of 5
 *   scripts/bench/footprint --size 64MiB      # quick
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { deviceConfigSchemaId } from '../../protocol/device-config.ts';
import { freePort } from '../../test/helpers/ports.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const convoyBin = path.join(root, 'bin/convoy.js');
const convoydBin = path.join(root, 'bin/convoyd.js');
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) throw new Error(`--size: "${text}" is not a size such as 64MiB or 1GiB`);
  const unit = { b: 1, kib: 1024, mib: MiB, gib: 1024 * MiB }[(match[2] ?? 'B').toLowerCase() as 'b']!;
  return Math.round(Number(match[1]) * unit);
}

/** VmRSS and VmHWM (peak) of a process, in MiB, from /proc. */
async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function best(rounds: number, fn: () => Promise<number>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < rounds; i++) min = Math.min(min, await fn());
  return min;
}

async function timedRun(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const start = performance.now();
  await run(file, args, { env });
  return performance.now() - start;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '1GiB' }, rounds: { type: 'string', default: '5' }, 'convoyd-flags': { type: 'string' } }, strict: true });
  // convoyd runs with the Node flags of the unit's ExecStart (what a device runs), or others to try.
  const unit = await fs.readFile(path.join(root, 'device/systemd/convoyd.service'), 'utf8');
  const unitFlags = /^ExecStart=\S*node((?: --\S+)*) \S*bin\/convoyd\.js/m.exec(unit)?.[1]?.trim() ?? '';
  const convoydFlags = (values['convoyd-flags'] ?? unitFlags).split(/\s+/).filter(Boolean);
  // ... and the unit's Environment= settings for Node and glibc's allocator.
  const unitEnv = Object.fromEntries([...unit.matchAll(/^Environment=((?:MALLOC_|NODE_|UV_)\w*)=(\S*)$/gm)].map((m) => [m[1]!, m[2]!]));
  const size = parseSize(values.size!);
  const rounds = Math.max(1, Number(values.rounds));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-footprint-'));
  // NODE_OPTIONS would load tsx into the children: they must run as on a device.
  const env = { ...process.env, NODE_OPTIONS: '' };
  const children: ChildProcess[] = [];
  const unix = createRequire(import.meta.url)('unix-dgram') as {
    createSocket(type: 'unix_dgram', listener: (message: Buffer) => void): { bind(path: string): void; close(): void; on(e: 'error', l: (e: Error) => void): void };
  };
  const notifications: { at: number; text: string }[] = [];
  const socketPath = path.join(work, 'notify.sock');
  const socket = unix.createSocket('unix_dgram', (message) => notifications.push({ at: performance.now(), text: message.toString('utf8') }));
  socket.bind(socketPath);
  try {
    // The floors.
    const timerHolder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { env, stdio: 'ignore' });
    children.push(timerHolder);
    await sleep(1000);
    const floorRss = (await memory(timerHolder.pid!)).rss;
    await stop(timerHolder);
    const floorStart = await best(rounds, () => timedRun(process.execPath, ['-e', '0'], env));

    // The server, as `npm start` runs it.
    const token = `bench-${randomBytes(16).toString('hex')}`;
    const httpPort = await freePort();
    const mqttPort = await freePort();
    const serverUrl = `http://127.0.0.1:${httpPort}`;
    const serverLog = await fs.open(path.join(work, 'server.log'), 'w');
    const server = spawn(process.execPath, ['--max-semi-space-size=1', convoyBin, 'serve'], {
      env: { ...env, CONVOY_DATA_DIR: path.join(work, 'server'), CONVOY_HTTP_PORT: String(httpPort), CONVOY_MQTT_PORT: String(mqttPort), CONVOY_HOST: '127.0.0.1', CONVOY_ADMIN_TOKEN: token, CONVOY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', serverLog.fd, serverLog.fd],
    });
    children.push(server);
    await serverLog.close();
    const api = async (method: string, url: string, body?: unknown, raw?: RequestInit['body'], length?: number) => {
      const response = await fetch(`${serverUrl}${url}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(length !== undefined ? { 'content-length': String(length) } : {}) },
        body: raw ?? (body !== undefined ? JSON.stringify(body) : null),
        ...(raw ? { duplex: 'half' } : {}),
      } as RequestInit);
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}: ${text}`);
      return text ? JSON.parse(text) : undefined;
    };
    await waitFor('the server', async () => (await fetch(`${serverUrl}/api/v1/bundles`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.ok, () => false)) || undefined, 60_000);

    const publish = async (version: string, name: string, file: string, bytes: number, digest: string) => {
      await api('PUT', `/api/v1/blobs/sha256:${digest}`, undefined, Readable.toWeb(createReadStream(file)) as ReadableStream, bytes);
      await api('POST', '/api/v1/bundles/app/versions', { version });
      await api('PUT', `/api/v1/bundles/app/versions/${version}/artifacts/${name}`, { type: 'file', digest: `sha256:${digest}`, size: bytes });
      await api('POST', `/api/v1/bundles/app/versions/${version}/approve`);
      await api('POST', '/api/v1/deployments', { bundle: 'app', version, group: 'shop' });
    };
    await api('POST', '/api/v1/bundles', { name: 'app' });
    const small = Buffer.from('{"coffee": 2.5}\n');
    await fs.writeFile(path.join(work, 'prices.json'), small);
    const registration = await api('POST', '/api/v1/devices', { id: 'till-1', group: 'shop' });
    await api('GET', '/api/v1/devices');
    const serverIdle = (await memory(server.pid!)).rss;

    const cliEnv = { ...env, CONVOY_URL: serverUrl, CONVOY_TOKEN: token };
    const cli = await best(rounds, () => timedRun(process.execPath, [convoyBin, 'bundle', 'list'], cliEnv));

    // convoyd, as the unit starts it.
    const deviceDir = path.join(work, 'till-1');
    await fs.mkdir(deviceDir, { recursive: true });
    await fs.writeFile(path.join(deviceDir, 'device.token'), registration.token + '\n', { mode: 0o600 });
    await fs.writeFile(path.join(deviceDir, 'root.json'), JSON.stringify(registration.root));
    await fs.writeFile(path.join(deviceDir, 'device.json'), JSON.stringify({ schema: deviceConfigSchemaId, id: 'till-1', group: 'shop', serverUrl, mqttUrl: `mqtt://127.0.0.1:${mqttPort}` }));
    const startDaemon = async (): Promise<{ child: ChildProcess; readyMs: number }> => {
      notifications.length = 0;
      const log = await fs.open(path.join(deviceDir, 'convoyd.log'), 'a');
      const started = performance.now();
      const child = spawn(process.execPath, [...convoydFlags, convoydBin, '--config', path.join(deviceDir, 'device.json')], { env: { ...env, ...unitEnv, NOTIFY_SOCKET: socketPath }, stdio: ['ignore', log.fd, log.fd] });
      children.push(child);
      await log.close();
      const ready = await waitFor('READY=1', () => notifications.find((n) => n.text.split('\n').includes('READY=1')), 60_000);
      return { child, readyMs: ready.at - started };
    };
    const installed = (version: string) => waitFor(`${version} installed`, async () => {
      const devices: { id: string; installed: { version: string } | null }[] = await api('GET', '/api/v1/devices');
      return devices.find((d) => d.id === 'till-1')?.installed?.version === version ? true : undefined;
    }, 600_000);

    let daemon = await startDaemon();
    let readyMs = daemon.readyMs;
    const atReady = await memory(daemon.child.pid!);
    await publish('1.0.0', 'prices.json', path.join(work, 'prices.json'), small.length, createHash('sha256').update(small).digest('hex'));
    await installed('1.0.0');
    await sleep(3000);
    const daemonIdle = (await memory(daemon.child.pid!)).rss;
    for (let i = 1; i < rounds; i++) {
      await stop(daemon.child);
      daemon = await startDaemon();
      readyMs = Math.min(readyMs, daemon.readyMs);
    }
    await sleep(1000);
    const daemonIdleRestarted = (await memory(daemon.child.pid!)).rss;

    // A large artifact: random bytes (incompressible).
    const big = path.join(work, 'big.bin');
    const hash = createHash('sha256');
    const out = await fs.open(big, 'w');
    for (let done = 0; done < size; ) {
      const chunk = randomBytes(Math.min(8 * MiB, size - done));
      hash.update(chunk);
      await out.write(chunk);
      done += chunk.length;
    }
    await out.close();
    const before = await memory(daemon.child.pid!);
    await publish('2.0.0', 'big.bin', big, size, hash.digest('hex'));
    await fs.rm(big);
    await installed('2.0.0');
    const after = await memory(daemon.child.pid!);
    await sleep(3000);
    const daemonIdleAfterBig = (await memory(daemon.child.pid!)).rss;
    const serverAfter = (await memory(server.pid!)).rss;

    // Memory is measured in MiB (/proc) and shown in decimal MB beside it, the unit of issue #9's
    // targets (its floor, `node -e` holding a timer at 41 MB, is our 39.5 MiB): 64 MB is 61.0 MiB.
    const MB = 1e6 / MiB;
    const mem = (x: number) => `${x.toFixed(1).padStart(6)} MiB = ${(x / MB).toFixed(1).padStart(5)} MB`;
    const ms = (x: number) => `${x.toFixed(0).padStart(6)} ms`.padEnd(20);
    /** A target in decimal MB (or ms) and whether the figure meets it. */
    const within = (value: number, limit: number, unit: 'MB' | 'ms') => `≤ ${limit} ${unit} ${(unit === 'MB' ? value / MB : value) <= limit ? 'met' : 'OVER'}`;
    const row = (what: string, value: string, target: string, floor: string) => console.log(`  ${what.padEnd(46)} ${value}   target ${target.padEnd(13)} floor ${floor}`);
    console.log(`footprint of the built programs (node ${process.version}, ${os.cpus().length} CPUs), best of ${rounds}; convoyd runs with node ${convoydFlags.join(' ') || '(no flags)'} ${Object.entries(unitEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    row('convoyd idle RSS after one update', mem(daemonIdle), within(daemonIdle, 64, 'MB'), `${mem(floorRss)} (node -e holding a timer)`);
    row('convoyd RSS at READY=1 (peak so far)', `${mem(atReady.rss)} (${atReady.peak.toFixed(1)} MiB)`, '—', mem(floorRss));
    row('convoyd idle RSS after a restart', mem(daemonIdleRestarted), within(daemonIdleRestarted, 64, 'MB'), mem(floorRss));
    row(`convoyd peak RSS installing ${(size / MiB).toFixed(0)} MiB`, mem(after.peak), within(after.peak, 96, 'MB'), `${mem(floorRss)} (peak before it: ${before.peak.toFixed(1)} MiB)`);
    row(`convoyd idle RSS after the ${(size / MiB).toFixed(0)} MiB update`, mem(daemonIdleAfterBig), '—', mem(floorRss));
    row('convoyd start to READY=1', ms(readyMs), within(readyMs, 300, 'ms'), `${ms(floorStart).trim()} (node -e 0)`);
    row('convoy bundle list round trip', ms(cli), within(cli, 250, 'ms'), `${ms(floorStart).trim()} (node -e 0)`);
    row('server idle RSS after a few requests', mem(serverIdle), within(serverIdle, 100, 'MB'), mem(floorRss));
    row('server RSS after serving the large update', mem(serverAfter), '—', mem(floorRss));
  } finally {
    socket.close();
    for (const child of children) await stop(child);
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
