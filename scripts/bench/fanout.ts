/*
 * Fan-out benchmark (issue #10 item 7): N simulated devices (scripts/fleet-sim.ts) connected to a
 * real Convoy server (its own process, so its CPU and memory are its own), then
 *   A. one phased deployment (1,10,50,100): deploy → each device's notice (p50, p99, max), phase
 *      start → notice, deploy → all installed; server CPU and peak RSS;
 *   B. one deployment to every device at once (phase start → notice), the figure to set against
 *   C. the peer in the same run: Debian's Mosquitto, and bare aedes, each delivering one retained
 *      message per device topic to N subscribers (Convoy cannot use an external broker yet, so
 *      the peer is measured on its own: same N, same per-device retained topics, same machine).
 *
 *   npm run bench:fanout -- [--devices 2000] [--skip-peers]
 *
 * Not part of `npm test`. Figures are ratios against the peer measured in the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { startFleet } from '../fleet-sim.ts';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '2000' }, 'skip-peers': { type: 'boolean', default: false }, 'peers-only': { type: 'boolean', default: false }, batch: { type: 'string', default: '100' } } });
const count = Number(values.devices);
const batch = Number(values.batch);
const root = path.join(import.meta.dirname, '..', '..');
const adminToken = 'bench-admin-token-0123456789abcdef';

function stats(samples: number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN, n: sorted.length };
}
const fmt = (s: { p50: number; p99: number; max: number; n: number }) => `p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, max ${s.max.toFixed(0)} ms (n=${s.n})`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user + system) and peak RSS (VmHWM) of a process, from /proc. */
async function usage(pid: number): Promise<{ cpuS: number; peakRssMiB: number; rssMiB: number }> {
  const stat = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuS: ticks / 100, peakRssMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

async function startConvoy(dataDir: string): Promise<{ child: ChildProcess; url: string; mqttPort: number }> {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--max-semi-space-size=1', 'bin/convoy.js', 'serve'], {
    cwd: root,
    env: { ...process.env, CONVOY_DATA_DIR: dataDir, CONVOY_HTTP_PORT: String(httpPort), CONVOY_MQTT_PORT: String(mqttPort), CONVOY_HOST: '127.0.0.1', CONVOY_ADMIN_TOKEN: adminToken, CONVOY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${httpPort}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited: ${errors}`);
    const up = await fetch(`${url}/api/v1/openapi.json`).then((r) => r.ok, () => false);
    if (up) break;
    if (i > 300) throw new Error(`the server did not start: ${errors}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, mqttPort };
}

async function api(url: string, method: string, p: string, body?: unknown, raw?: Buffer): Promise<any> {
  const response = await fetch(`${url}${p}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(raw ? { 'content-type': 'application/octet-stream' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : (raw ?? null),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${p} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function release(url: string, version: string): Promise<void> {
  const bytes = Buffer.from(`fan-out ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await api(url, 'PUT', `/api/v1/blobs/${digest}`, undefined, bytes);
  await api(url, 'POST', '/api/v1/bundles/fleet/versions', { version });
  await api(url, 'PUT', `/api/v1/bundles/fleet/versions/${version}/artifacts/app.txt`, { type: 'file', digest, size: bytes.length });
  await api(url, 'POST', `/api/v1/bundles/fleet/versions/${version}/approve`);
}

async function convoyRun(): Promise<Record<string, unknown>> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-fanout-'));
  const { child, url } = await startConvoy(dataDir);
  const notices = new Map<number, Map<string, number>>();
  const installed = new Map<string, number>();
  try {
    await api(url, 'POST', '/api/v1/bundles', { name: 'fleet' });
    await release(url, '1.0.0');
    await release(url, '2.0.0');
    const t0 = Date.now();
    const fleet = await startFleet({
      url,
      adminToken,
      devices: Array.from({ length: count }, (_, i) => ({ id: `sim-${String(i).padStart(5, '0')}`, group: 'fleet', attributes: { model: i % 2 ? 'pos-x2' : 'pos-x1' } })),
      batch,
      installMs: 200,
      onNotice: (id, notice, at) => {
        const byDevice = notices.get(notice.deploymentId) ?? new Map<string, number>();
        if (!byDevice.has(id)) byDevice.set(id, at);
        notices.set(notice.deploymentId, byDevice);
      },
      onInstalled: (id, r, at) => installed.set(`${r.version}/${id}`, at),
    });
    const connectS = (Date.now() - t0) / 1000;
    process.stderr.write(`registered and connected ${count} devices in ${connectS.toFixed(1)} s\n`);
    await new Promise((r) => setTimeout(r, 3000)); // inventory reports settle
    const before = await usage(child.pid!);

    // A: phased.
    const deployedAt = Date.now();
    const phased = await api(url, 'POST', '/api/v1/deployments', { bundle: 'fleet', version: '1.0.0', group: 'fleet', phases: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }] });
    let detail: any;
    for (;;) {
      detail = await api(url, 'GET', `/api/v1/deployments/${phased.id}`);
      if (detail.state === 'completed' || Date.now() - deployedAt > 600_000) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const doneAt = Date.now();
    const afterA = await usage(child.pid!);
    const phaseOf = new Map<string, number>(detail.devices.map((d: { id: string; phase: number }) => [d.id, d.phase]));
    const phaseStart = detail.perPhase.map((p: { startedAt: string | null }) => (p.startedAt ? Date.parse(p.startedAt) : NaN));
    const seen = notices.get(phased.id) ?? new Map();
    const fromDeploy = [...seen.values()].map((at) => at - deployedAt);
    const fromPhase = [...seen.entries()].map(([id, at]) => at - phaseStart[phaseOf.get(id)!]);
    const lastInstalled = Math.max(...[...installed.entries()].filter(([k]) => k.startsWith('1.0.0/')).map(([, at]) => at));

    // B: everything at once.
    const allAt = Date.now();
    const all = await api(url, 'POST', '/api/v1/deployments', { bundle: 'fleet', version: '2.0.0', group: 'fleet' });
    for (;;) {
      const d = await api(url, 'GET', `/api/v1/deployments/${all.id}`);
      if (d.state === 'completed' || Date.now() - allAt > 600_000) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const afterB = await usage(child.pid!);
    const seenAll = [...(notices.get(all.id) ?? new Map()).values()].map((at) => at - allAt);
    const lastAll = Math.max(...[...installed.entries()].filter(([k]) => k.startsWith('2.0.0/')).map(([, at]) => at));
    await fleet.close();
    return {
      devices: count,
      connectS,
      phased: {
        noticeFromDeploy: stats(fromDeploy),
        noticeFromPhaseStart: stats(fromPhase),
        allInstalledS: (lastInstalled - deployedAt) / 1000,
        completedS: (doneAt - deployedAt) / 1000,
        phaseSizes: detail.perPhase.map((p: { size: number }) => p.size),
        serverCpuS: afterA.cpuS - before.cpuS,
      },
      allAtOnce: { noticeFromDeploy: stats(seenAll), allInstalledS: (lastAll - allAt) / 1000, serverCpuS: afterB.cpuS - afterA.cpuS },
      serverPeakRssMiB: afterB.peakRssMiB,
      /** Peak RSS once every device was registered, connected and had reported its inventory. */
      serverPeakRssConnectedMiB: before.peakRssMiB,
      serverRssAtEndMiB: afterB.rssMiB,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

/** N subscribers on per-device topics, one retained message each, published at once. */
async function peerRun(name: string, port: number, pid: number): Promise<Record<string, unknown>> {
  const clients: MqttClient[] = [];
  const arrived: number[] = [];
  let sentAt = 0;
  for (let i = 0; i < count; i += batch) {
    const slice = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, async (_, j) => {
        const id = `sim-${i + j}`;
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, clean: true, reconnectPeriod: 0 });
        client.on('message', () => arrived.push(Date.now() - sentAt));
        await client.subscribeAsync(`convoy/v1/devices/${id}/release`, { qos: 1 });
        return client;
      }),
    );
    clients.push(...slice);
  }
  const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'publisher', reconnectPeriod: 0 });
  const before = await usage(pid);
  sentAt = Date.now();
  const payload = JSON.stringify({ type: 'release', deploymentId: 1, group: 'fleet', bundle: 'fleet', version: '1.0.0', issuedAt: new Date().toISOString(), attempt: 0 });
  await Promise.all(Array.from({ length: count }, (_, i) => publisher.publishAsync(`convoy/v1/devices/sim-${i}/release`, payload, { qos: 1, retain: true })));
  const deadline = Date.now() + 60_000;
  while (arrived.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const after = await usage(pid);
  await Promise.all([...clients, publisher].map((c) => c.endAsync(true)));
  return { broker: name, notice: stats(arrived), cpuS: after.cpuS - before.cpuS, peakRssMiB: after.peakRssMiB };
}

async function withMosquitto<T>(run: (port: number, pid: number) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fanout-mosquitto-'));
  const port = await freePort();
  await fs.writeFile(path.join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10000\npersistence false\n`);
  const child = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 500));
    return await run(port, child.pid!);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function withAedes<T>(run: (port: number, pid: number) => Promise<T>): Promise<T> {
  const port = await freePort();
  const code = `import net from 'node:net'; import { Aedes } from 'aedes'; const a = await Aedes.createBroker(); net.createServer(a.handle).listen(${port}, '127.0.0.1', () => process.stdout.write('up\\n'));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    return await run(port, child.pid!);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const convoy = values['peers-only'] ? undefined : await convoyRun();
if (convoy) {
process.stdout.write(`Convoy, ${count} simulated devices (registered and connected in ${(convoy.connectS as number).toFixed(1)} s):\n`);
const a = convoy.phased as any;
const b = convoy.allAtOnce as any;
process.stdout.write(`  A. phased 1,10,50,100 % (${a.phaseSizes.join('/')} devices), install 200 ms each:\n`);
process.stdout.write(`     deploy → notice           ${fmt(a.noticeFromDeploy)}\n`);
process.stdout.write(`     phase start → notice      ${fmt(a.noticeFromPhaseStart)}\n`);
process.stdout.write(`     deploy → all installed    ${a.allInstalledS.toFixed(1)} s (completed ${a.completedS.toFixed(1)} s); server CPU ${a.serverCpuS.toFixed(1)} s\n`);
process.stdout.write(`  B. all ${count} at once:\n`);
process.stdout.write(`     deploy → notice           ${fmt(b.noticeFromDeploy)}\n`);
process.stdout.write(`     deploy → all installed    ${b.allInstalledS.toFixed(1)} s; server CPU ${b.serverCpuS.toFixed(1)} s\n`);
process.stdout.write(`  server peak RSS ${(convoy.serverPeakRssMiB as number).toFixed(0)} MiB (${(convoy.serverPeakRssConnectedMiB as number).toFixed(0)} MiB with every device connected, before the deployments; at the end ${(convoy.serverRssAtEndMiB as number).toFixed(0)} MiB)\n`);
}
if (!values['skip-peers']) {
  const mosquitto = await withMosquitto((port, pid) => peerRun('mosquitto', port, pid));
  const aedes = await withAedes((port, pid) => peerRun('aedes (bare)', port, pid));
  process.stdout.write(`C. peers: one retained message per device topic, ${count} subscribers (Convoy cannot use an external broker yet):\n`);
  for (const peer of [mosquitto, aedes] as any[]) process.stdout.write(`     ${peer.broker.padEnd(14)} publish → notice ${fmt(peer.notice)}; broker CPU ${peer.cpuS.toFixed(2)} s, peak RSS ${peer.peakRssMiB.toFixed(0)} MiB\n`);
  if (convoy) {
    const ratio = (convoy.allAtOnce as any).noticeFromDeploy.p99 / (mosquitto as any).notice.p99;
    process.stdout.write(`  Convoy all-at-once notice p99 / Mosquitto p99 = ${ratio.toFixed(2)} (target ≤ 1.2; Convoy's includes the HTTP request, the planning and the database writes)\n`);
  }
}
if (convoy) process.stdout.write(`${JSON.stringify(convoy)}\n`);
