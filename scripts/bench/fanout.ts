/*
 * Fan-out benchmark (issue #10 item 7): N simulated devices (scripts/fleet-sim.ts) connected to a
 * real Convoy server (its own process, so its CPU and memory are its own), run twice in the same
 * bench run with the same devices and the same deployments:
 *   - Convoy with its embedded broker (aedes), as `npm start` runs it;
 *   - Convoy as a client of Debian's Mosquitto (CONVOY_MQTT_URL), the devices connected to Mosquitto.
 * Each run: A. one phased deployment (1,10,50,100): deploy → each device's notice (p50, p99, max),
 * phase start → notice, deploy → all installed; B. one deployment to every device at once; server
 * CPU and peak RSS (and the broker's, for Mosquitto). Then the ratios embedded / Mosquitto.
 * `--bare-peers` adds C: Mosquitto and bare aedes alone, one retained message per device topic.
 *
 *   npm run build && npm run bench:fanout -- [--devices 2000] [--only aedes|mosquitto] [--bare-peers]
 *   (FANOUT_NODE_ARGS="…" adds node options to the server process)
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
import { freePort } from '../../test/helpers/ports.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    only: { type: 'string' },
    'bare-peers': { type: 'boolean', default: false },
    'peers-only': { type: 'boolean', default: false },
    batch: { type: 'string', default: '100' },
  },
});
if (values.only !== undefined && values.only !== 'aedes' && values.only !== 'mosquitto') throw new Error('--only takes aedes or mosquitto');
const count = Number(values.devices);
const batch = Number(values.batch);
const root = path.join(import.meta.dirname, '..', '..');
const adminToken = 'bench-admin-token-0123456789abcdef';
/**
 * Node options of the server process, as `npm start` and bin/convoy.js run it. FANOUT_NODE_ARGS
 * adds some for diagnosis, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, or `--import probe.mjs`
 * sampling process.memoryUsage() (how the RSS causes in README were found).
 */
const nodeArgs = ['--max-semi-space-size=1', ...(process.env.FANOUT_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];

function stats(samples: number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN, n: sorted.length };
}
const fmt = (s: { p50: number; p99: number; max: number; n: number }) => `p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, max ${s.max.toFixed(0)} ms (n=${s.n})`;

/** CPU seconds (user + system) and peak RSS (VmHWM) of a process, from /proc. */
async function usage(pid: number): Promise<{ cpuS: number; peakRssMiB: number; rssMiB: number }> {
  const stat = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuS: ticks / 100, peakRssMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

async function startConvoy(dataDir: string, mqttUrl?: string): Promise<{ child: ChildProcess; url: string; mqttPort: number }> {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [...nodeArgs, 'bin/convoy.js', 'serve'], {
    cwd: root,
    env: { ...process.env, CONVOY_DATA_DIR: dataDir, CONVOY_HTTP_PORT: String(httpPort), CONVOY_MQTT_PORT: String(mqttPort), CONVOY_HOST: '127.0.0.1', CONVOY_ADMIN_TOKEN: adminToken, CONVOY_LOG_LEVEL: 'warn', ...(mqttUrl ? { CONVOY_MQTT_URL: mqttUrl } : {}) },
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

/**
 * Waits for a deployment to complete, reading its summary (state and counts, as `convoy
 * deployment list` does) rather than its full detail: the detail of 2,000 devices with every
 * transition is a dashboard's view, and polling it four times a second would load the server
 * with the bench's own reads.
 */
async function completed(url: string, id: number, since: number): Promise<void> {
  while (Date.now() - since < 600_000) {
    const list = (await api(url, 'GET', '/api/v1/deployments?group=fleet&per_page=5')) as { id: number; state: string }[];
    if (list.find((d) => d.id === id)?.state === 'completed') return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`deployment ${id} did not complete in 10 minutes`);
}

async function release(url: string, version: string): Promise<void> {
  const bytes = Buffer.from(`fan-out ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await api(url, 'PUT', `/api/v1/blobs/${digest}`, undefined, bytes);
  await api(url, 'POST', '/api/v1/bundles/fleet/versions', { version });
  await api(url, 'PUT', `/api/v1/bundles/fleet/versions/${version}/artifacts/app.txt`, { type: 'file', digest, size: bytes.length });
  await api(url, 'POST', `/api/v1/bundles/fleet/versions/${version}/approve`);
}

type Stats = ReturnType<typeof stats>;
interface ConvoyFigures {
  broker: string;
  devices: number;
  connectS: number;
  phased: { noticeFromDeploy: Stats; noticeFromPhaseStart: Stats; noticeFromPhaseStartEach: Stats[]; allInstalledS: number; completedS: number; phaseSizes: number[]; serverCpuS: number };
  allAtOnce: { noticeFromDeploy: Stats; allInstalledS: number; serverCpuS: number };
  serverPeakRssMiB: number;
  serverPeakRssConnectedMiB: number;
  serverRssAtEndMiB: number;
  /** The external broker's own CPU over both deployments and its peak RSS (Mosquitto run). */
  externalBroker?: { cpuS: number; peakRssMiB: number };
}

/**
 * One Convoy server and N devices. `external`: Mosquitto's port and pid; the server is started
 * with CONVOY_MQTT_URL pointing at it, and the devices are told (registration answer) to use it.
 */
async function convoyRun(external?: { port: number; pid: number }): Promise<ConvoyFigures> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-fanout-'));
  const { child, url } = await startConvoy(dataDir, external ? `mqtt://127.0.0.1:${external.port}` : undefined);
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
    // The connect storm's inventory reports and presence writes settle: the deployments start
    // on an idle server (3 s, then until a second passes with under 50 ms of server CPU). A fixed
    // 3 s was not enough for the embedded broker's run: its first phase's notices waited behind
    // the backlog (phase 1 → notice 177 ms there, 20 ms with Mosquitto, in the same run).
    await new Promise((r) => setTimeout(r, 3000));
    for (let i = 0; i < 30; i++) {
      const from = await usage(child.pid!);
      await new Promise((r) => setTimeout(r, 1000));
      if ((await usage(child.pid!)).cpuS - from.cpuS < 0.05) break;
    }
    const before = await usage(child.pid!);
    const brokerBefore = external ? await usage(external.pid) : undefined;

    // A: phased.
    const deployedAt = Date.now();
    const phased = await api(url, 'POST', '/api/v1/deployments', { bundle: 'fleet', version: '1.0.0', group: 'fleet', phases: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }] });
    await completed(url, phased.id, deployedAt);
    const doneAt = Date.now();
    const detail = await api(url, 'GET', `/api/v1/deployments/${phased.id}`);
    const afterA = await usage(child.pid!);
    const phaseOf = new Map<string, number>(detail.devices.map((d: { id: string; phase: number }) => [d.id, d.phase]));
    const phaseStart = detail.perPhase.map((p: { startedAt: string | null }) => (p.startedAt ? Date.parse(p.startedAt) : NaN));
    const seen = notices.get(phased.id) ?? new Map();
    const fromDeploy = [...seen.values()].map((at) => at - deployedAt);
    const fromPhase = [...seen.entries()].map(([id, at]) => at - phaseStart[phaseOf.get(id)!]);
    // Per phase too: a p99 over 2,000 devices is the last 20, which one phase may hold alone.
    const fromPhaseEach = detail.perPhase.map((_: unknown, phase: number) => stats([...seen.entries()].filter(([id]) => phaseOf.get(id) === phase).map(([, at]) => at - phaseStart[phase])));
    const lastInstalled = Math.max(...[...installed.entries()].filter(([k]) => k.startsWith('1.0.0/')).map(([, at]) => at));

    // B: everything at once.
    const allAt = Date.now();
    const all = await api(url, 'POST', '/api/v1/deployments', { bundle: 'fleet', version: '2.0.0', group: 'fleet' });
    await completed(url, all.id, allAt);
    const afterB = await usage(child.pid!);
    const brokerAfter = external ? await usage(external.pid) : undefined;
    const seenAll = [...(notices.get(all.id) ?? new Map()).values()].map((at) => at - allAt);
    const lastAll = Math.max(...[...installed.entries()].filter(([k]) => k.startsWith('2.0.0/')).map(([, at]) => at));
    await fleet.close();
    return {
      broker: external ? 'mosquitto (CONVOY_MQTT_URL)' : 'embedded aedes',
      devices: count,
      connectS,
      phased: {
        noticeFromDeploy: stats(fromDeploy),
        noticeFromPhaseStart: stats(fromPhase),
        noticeFromPhaseStartEach: fromPhaseEach,
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
      ...(brokerBefore && brokerAfter ? { externalBroker: { cpuS: brokerAfter.cpuS - brokerBefore.cpuS, peakRssMiB: brokerAfter.peakRssMiB } } : {}),
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

function printConvoy(c: ConvoyFigures): void {
  const a = c.phased;
  const b = c.allAtOnce;
  process.stdout.write(`Convoy with ${c.broker}, ${c.devices} simulated devices (registered and connected in ${c.connectS.toFixed(1)} s):\n`);
  process.stdout.write(`  A. phased 1,10,50,100 % (${a.phaseSizes.join('/')} devices), install 200 ms each:\n`);
  process.stdout.write(`     deploy → notice           ${fmt(a.noticeFromDeploy)}\n`);
  process.stdout.write(`     phase start → notice      ${fmt(a.noticeFromPhaseStart)}\n`);
  process.stdout.write(`       per phase, p50/p99 ms   ${a.noticeFromPhaseStartEach.map((s) => `${s.p50.toFixed(0)}/${s.p99.toFixed(0)}`).join(', ')}\n`);
  process.stdout.write(`     deploy → all installed    ${a.allInstalledS.toFixed(1)} s (completed ${a.completedS.toFixed(1)} s); server CPU ${a.serverCpuS.toFixed(1)} s\n`);
  process.stdout.write(`  B. all ${c.devices} at once:\n`);
  process.stdout.write(`     deploy → notice           ${fmt(b.noticeFromDeploy)}\n`);
  process.stdout.write(`     deploy → all installed    ${b.allInstalledS.toFixed(1)} s; server CPU ${b.serverCpuS.toFixed(1)} s\n`);
  process.stdout.write(`  server peak RSS ${c.serverPeakRssMiB.toFixed(0)} MiB = ${((c.serverPeakRssMiB * 1048576) / 1e6).toFixed(0)} MB (${c.serverPeakRssConnectedMiB.toFixed(0)} MiB with every device connected, before the deployments; at the end ${c.serverRssAtEndMiB.toFixed(0)} MiB)\n`);
  if (c.externalBroker) process.stdout.write(`  Mosquitto itself: CPU ${c.externalBroker.cpuS.toFixed(1)} s over A and B, peak RSS ${c.externalBroker.peakRssMiB.toFixed(0)} MiB\n`);
}

const runs: ConvoyFigures[] = [];
if (!values['peers-only']) {
  if (values.only !== 'mosquitto') {
    runs.push(await convoyRun());
    printConvoy(runs.at(-1)!);
  }
  if (values.only !== 'aedes') {
    runs.push(await withMosquitto((port, pid) => convoyRun({ port, pid })));
    printConvoy(runs.at(-1)!);
  }
}
if (runs.length === 2) {
  const [embedded, mosquitto] = runs as [ConvoyFigures, ConvoyFigures];
  const ratio = (x: number, y: number) => (x / y).toFixed(2);
  const rows: [string, number, number, string][] = [
    ['A. deploy → notice p50 (ms)', embedded.phased.noticeFromDeploy.p50, mosquitto.phased.noticeFromDeploy.p50, ''],
    ['A. deploy → notice p99 (ms)', embedded.phased.noticeFromDeploy.p99, mosquitto.phased.noticeFromDeploy.p99, ''],
    ['A. deploy → notice max (ms)', embedded.phased.noticeFromDeploy.max, mosquitto.phased.noticeFromDeploy.max, ''],
    ['A. phase start → notice p99 (ms)', embedded.phased.noticeFromPhaseStart.p99, mosquitto.phased.noticeFromPhaseStart.p99, ''],
    ['A. deploy → all installed (s)', embedded.phased.allInstalledS, mosquitto.phased.allInstalledS, ''],
    ['B. deploy → notice p50 (ms)', embedded.allAtOnce.noticeFromDeploy.p50, mosquitto.allAtOnce.noticeFromDeploy.p50, ''],
    ['B. deploy → notice p99 (ms)', embedded.allAtOnce.noticeFromDeploy.p99, mosquitto.allAtOnce.noticeFromDeploy.p99, ' (target ≤ 1.2)'],
    ['B. deploy → notice max (ms)', embedded.allAtOnce.noticeFromDeploy.max, mosquitto.allAtOnce.noticeFromDeploy.max, ''],
    ['B. deploy → all installed (s)', embedded.allAtOnce.allInstalledS, mosquitto.allAtOnce.allInstalledS, ''],
    ['server CPU, A + B (s)', embedded.phased.serverCpuS + embedded.allAtOnce.serverCpuS, mosquitto.phased.serverCpuS + mosquitto.allAtOnce.serverCpuS, ' (Mosquitto run: the server only)'],
    ['server peak RSS (MiB)', embedded.serverPeakRssMiB, mosquitto.serverPeakRssMiB, ' (target ≤ 286 MiB = 300 MB)'],
  ];
  process.stdout.write(`Embedded aedes against Mosquitto, both through Convoy (ratio = embedded / Mosquitto):\n`);
  for (const [name, x, y, note] of rows) process.stdout.write(`  ${name.padEnd(34)} ${x.toFixed(x < 100 ? 1 : 0).padStart(8)} ${y.toFixed(y < 100 ? 1 : 0).padStart(8)}   × ${ratio(x, y)}${note}\n`);
}
if (values['bare-peers'] || values['peers-only']) {
  const mosquitto = await withMosquitto((port, pid) => peerRun('mosquitto', port, pid));
  const aedes = await withAedes((port, pid) => peerRun('aedes (bare)', port, pid));
  process.stdout.write(`C. bare brokers: one retained message per device topic, ${count} subscribers:\n`);
  for (const peer of [mosquitto, aedes] as any[]) process.stdout.write(`     ${peer.broker.padEnd(14)} publish → notice ${fmt(peer.notice)}; broker CPU ${peer.cpuS.toFixed(2)} s, peak RSS ${peer.peakRssMiB.toFixed(0)} MiB\n`);
}
for (const run of runs) process.stdout.write(`${JSON.stringify(run)}\n`);
