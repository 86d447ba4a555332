/**
 * `npm run bench:storm -- [--devices 2000] [--group-size 100] [--rounds 1] [--profile DIR]`: a reconnect storm over mutual
 * TLS, Convoy's embedded broker (aedes behind its TLS listener) against Mosquitto, in one run.
 *
 * Enrolls --devices simulated devices through the real API (one CSR each; the bench shares one
 * RSA key among them, because making 2,000 keys would take minutes and measures nothing here),
 * then for each broker: connects them all (waves of 100, no pause) with their certificates (as after a server
 * restart) and times until every one is connected and subscribed to its own release notice (as
 * convoyd does); then sends one notice per group and times each device's receipt (p50, p99); then
 * reads the broker process's peak RSS (VmHWM). The notices go out through the API on both sides
 * (a deployment per group, database included): for Mosquitto the same server, on the same
 * database, is restarted as its client (CONVOY_MQTT_URL) and publishes each device's notice there.
 * Targets (issue 11): reconnect ≤ 1.3× Mosquitto, notice p99 ≤ 1.5× Mosquitto, RSS ≤ 300 MB.
 *
 * Needs mosquitto (`apt-get install -y mosquitto`). Not run by CI.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { createDeviceCsr, generateKeyPem } from '../../certs/pki.ts';
import { deviceReleaseTopic } from '../../protocol/messages.ts';
import { freePort } from '../../test/helpers/ports.ts';

const exec = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const convoyJs = path.join(root, 'test/helpers/bin/convoy.js');
const adminToken = `bench-${randomBytes(16).toString('hex')}`;
const say = (line: string) => process.stdout.write(`${line}\n`);

function parseArgs(argv: string[]): { devices: number; groupSize: number; rounds: number; profile?: string } {
  const options: { devices: number; groupSize: number; rounds: number; profile?: string } = { devices: 2000, groupSize: 100, rounds: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--devices' && Number.isInteger(value) && value > 0) options.devices = value;
    else if (argv[i] === '--group-size' && Number.isInteger(value) && value > 0) options.groupSize = value;
    // Storm pairs before the measured one, in alternating order: on a shared machine the load
    // drifts, and the median of paired ratios says more than one pair.
    else if (argv[i] === '--rounds' && Number.isInteger(value) && value > 0) options.rounds = value;
    // The server's CPU profile (node --cpu-prof), written into DIR when it stops.
    else if (argv[i] === '--profile' && argv[i + 1]) options.profile = path.resolve(argv[i + 1]!);
    else throw new Error(`usage: storm [--devices N] [--group-size N] [--rounds N] [--profile DIR] (got ${argv[i]} ${argv[i + 1] ?? ''})`);
  }
  return options;
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(socket.end() && true));
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function api(base: string, method: string, urlPath: string, body?: unknown): Promise<any> {
  const response = await fetch(`${base}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : typeof body === 'string' || Buffer.isBuffer(body) ? (body as string) : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${urlPath}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

interface Device {
  id: string;
  group: string;
  cert: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Connects every device in waves of 100 (each wave's handshakes all at once; more in one instant
 * overflow the listen backlog of either broker and measure the kernel, not the broker) and
 * resolves when all are connected and subscribed.
 */
async function storm(port: number, devices: Device[], key: string, ca: string): Promise<{ ms: number; clients: MqttClient[] }> {
  const started = performance.now();
  const clients: MqttClient[] = [];
  for (let i = 0; i < devices.length; i += 100) {
    clients.push(
      ...(await Promise.all(
        devices.slice(i, i + 100).map(async (device) => {
          const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
            clientId: `convoyd-${device.id}`,
            username: device.id,
            cert: device.cert,
            key,
            ca,
            rejectUnauthorized: true,
            reconnectPeriod: 1000,
            connectTimeout: 120_000,
            protocolVersion: 4,
          });
          client.on('error', () => {}); // a reset mid-run reconnects; never crash the bench
          // What convoyd subscribes to: its own notice (the only one Mosquitto's ACL lets it read).
          await client.subscribeAsync(deviceReleaseTopic(device.id), { qos: 1 });
          return client;
        }),
      )),
    );
  }
  return { ms: performance.now() - started, clients };
}

/** Sends one notice per group (`send`), resolves with each device's delay from its group's send. */
async function notices(clients: MqttClient[], devices: Device[], groups: string[], send: (group: string) => Promise<void>): Promise<number[]> {
  const sentAt = new Map<string, number>();
  const delays: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let pending = devices.length;
    const timer = setTimeout(() => reject(new Error(`${pending} devices never got their notice`)), 300_000);
    clients.forEach((client, i) => {
      let got = false;
      client.on('message', (topic) => {
        const { id, group } = devices[i]!;
        // Fresh brokers hold no notice before the send: the first one on the device's topic is it.
        if (got || topic !== deviceReleaseTopic(id) || !sentAt.has(group)) return;
        got = true;
        delays.push(performance.now() - sentAt.get(group)!);
        if (--pending === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    void (async () => {
      for (const group of groups) {
        sentAt.set(group, performance.now());
        await send(group);
      }
    })().catch(reject);
  });
  return delays.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-storm-'));
  const children: ChildProcess[] = [];
  try {
    say(`storm: ${options.devices} devices in groups of ${options.groupSize}, mutual TLS; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`);
    await exec(process.execPath, [convoyJs, 'ca', 'init', '--dir', path.join(work, 'ca'), '--name', 'Storm', '--dns', 'localhost', '--ip', '127.0.0.1']);
    const pki = path.join(work, 'ca', 'server');
    const ca = await fs.readFile(path.join(pki, 'ca.pem'), 'utf8');
    const [httpPort, mqttPort, mqttsPort, mosquittoPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const profile = options.profile ? ['--cpu-prof', '--cpu-prof-dir', options.profile] : [];
    const serverEnv = { ...process.env, CONVOY_DATA_DIR: path.join(work, 'data'), CONVOY_HOST: '127.0.0.1', CONVOY_HTTP_PORT: String(httpPort), CONVOY_MQTT_PORT: String(mqttPort), CONVOY_MQTTS_PORT: String(mqttsPort), CONVOY_PKI_DIR: pki, CONVOY_ADMIN_TOKEN: adminToken, CONVOY_LOG_LEVEL: 'error' };
    const server = spawn(process.execPath, [...profile, convoyJs, 'serve'], { env: serverEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(server);
    await waitForPort(httpPort);
    const base = `http://127.0.0.1:${httpPort}`;

    // Enrollment through the API, 20 at a time; one shared key (see the header).
    const key = generateKeyPem();
    const devices: Device[] = [];
    const groups = Array.from({ length: Math.ceil(options.devices / options.groupSize) }, (_, i) => `g-${i}`);
    const enrollStart = performance.now();
    const tokens = await Promise.all(groups.map((group) => api(base, 'POST', '/api/v1/enrollment-tokens', { group, ttlSeconds: 3600, uses: options.groupSize })));
    const ids = Array.from({ length: options.devices }, (_, i) => ({ id: `storm-${String(i).padStart(5, '0')}`, group: groups[Math.floor(i / options.groupSize)]!, token: tokens[Math.floor(i / options.groupSize)].token as string }));
    for (let i = 0; i < ids.length; i += 20) {
      devices.push(
        ...(await Promise.all(
          ids.slice(i, i + 20).map(async ({ id, group, token: t }) => {
            const answer = await api(base, 'POST', '/api/v1/enroll', { token: t, csr: createDeviceCsr({ deviceId: id, keyPem: key }) });
            return { id, group, cert: answer.certificate + answer.chain };
          }),
        )),
      );
    }
    say(`enrolled ${devices.length} devices through the API in ${((performance.now() - enrollStart) / 1000).toFixed(1)} s`);

    // Convoy: a release to deploy, then the storm against its mTLS listener.
    const bytes = Buffer.from('storm\n');
    await api(base, 'POST', '/api/v1/bundles', { name: 'storm' });
    const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(bytes).digest('hex')}`;
    await fetch(`${base}/api/v1/blobs/${digest}`, { method: 'PUT', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/octet-stream' }, body: bytes });
    await api(base, 'POST', '/api/v1/bundles/storm/versions', { version: '1.0.0' });
    await api(base, 'PUT', '/api/v1/bundles/storm/versions/1.0.0/artifacts/a.txt', { type: 'file', digest, size: bytes.length });
    await api(base, 'POST', '/api/v1/bundles/storm/versions/1.0.0/approve');
    // The version the Mosquitto phase deploys (a newer one supersedes the first deployments).
    await api(base, 'POST', '/api/v1/bundles/storm/versions', { version: '1.0.1' });
    await api(base, 'PUT', '/api/v1/bundles/storm/versions/1.0.1/artifacts/a.txt', { type: 'file', digest, size: bytes.length });
    await api(base, 'POST', '/api/v1/bundles/storm/versions/1.0.1/approve');

    // Mosquitto from `convoy broker config mosquitto` (its configuration needs no server).
    const config = await exec(process.execPath, [convoyJs, 'broker', 'config', 'mosquitto', '--pki', pki, '--acl-file', path.join(work, 'convoy.acl'), '--port', String(mosquittoPort), '--host', '127.0.0.1']);
    await fs.writeFile(path.join(work, 'mosquitto.conf'), `${config.stdout}\nuser root\nmax_connections -1\n`);
    const mosquitto = spawn('mosquitto', ['-c', path.join(work, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'ignore'] });
    children.push(mosquitto);
    await waitForPort(mosquittoPort);
    const ratios: number[] = [];
    for (let round = 1; round < options.rounds; round++) {
      const order = round % 2 === 1 ? ['convoy', 'mosquitto'] : ['mosquitto', 'convoy'];
      const ms: Record<string, number> = {};
      for (const which of order) {
        const run = await storm(which === 'convoy' ? mqttsPort : mosquittoPort, devices, key, ca);
        ms[which] = run.ms;
        await Promise.all(run.clients.map((c) => c.endAsync(true)));
      }
      ratios.push(ms.convoy! / ms.mosquitto!);
      say(`round ${round}: convoy ${(ms.convoy! / 1000).toFixed(2)} s, mosquitto ${(ms.mosquitto! / 1000).toFixed(2)} s, ratio ${ratios.at(-1)!.toFixed(2)} (load ${os.loadavg()[0]!.toFixed(1)})`);
    }

    const convoy = await storm(mqttsPort, devices, key, ca);
    say(`convoy (aedes, mTLS): all ${devices.length} connected and subscribed in ${(convoy.ms / 1000).toFixed(2)} s`);
    const convoyDelays = await notices(convoy.clients, devices, groups, async (group) => {
      await api(base, 'POST', '/api/v1/deployments', { bundle: 'storm', version: '1.0.0', group });
    });
    const convoyRss = await peakRssMb(server.pid!);
    await Promise.all(convoy.clients.map((c) => c.endAsync(true)));

    // Mosquitto from `convoy broker config mosquitto`, and the same server (same database) now
    // its client (CONVOY_MQTT_URL): notices go out through the API on both sides, as in production.
    await new Promise((resolve) => server.once('exit', resolve).kill('SIGTERM'));
    const client = spawn(process.execPath, [convoyJs, 'serve'], { env: { ...serverEnv, CONVOY_MQTT_URL: `mqtts://127.0.0.1:${mosquittoPort}` }, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(client);
    await waitForPort(httpPort);
    // Its port is bound before it has announced every device's notice again: the storm waits for
    // the start to finish, so Mosquitto is not measured while the server floods it.
    for (let i = 0; i < 600 && !(await fetch(`${base}/api/v1/bundles`, { headers: { authorization: `Bearer ${adminToken}` } }).then((r) => r.ok, () => false)); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const peer = await storm(mosquittoPort, devices, key, ca);
    say(`mosquitto (mTLS): all ${devices.length} connected and subscribed in ${(peer.ms / 1000).toFixed(2)} s`);
    const peerDelays = await notices(peer.clients, devices, groups, async (group) => {
      await api(base, 'POST', '/api/v1/deployments', { bundle: 'storm', version: '1.0.1', group });
    });
    const peerRss = await peakRssMb(mosquitto.pid!);
    await Promise.all(peer.clients.map((c) => c.endAsync(true)));

    const p = (list: number[], q: number) => percentile(list, q).toFixed(0);
    say('');
    say(`| | convoy | mosquitto | ratio | target |`);
    say(`| --- | --- | --- | --- | --- |`);
    say(`| reconnect storm (s) | ${(convoy.ms / 1000).toFixed(2)} | ${(peer.ms / 1000).toFixed(2)} | ${(convoy.ms / peer.ms).toFixed(2)} | ≤ 1.3 |`);
    if (ratios.length > 0) {
      const all = [...ratios, convoy.ms / peer.ms].sort((a, b) => a - b);
      say(`| reconnect ratio, median of ${all.length} pairs | | | ${all[Math.floor(all.length / 2)]!.toFixed(2)} | ≤ 1.3 |`);
    }
    say(`| notice p50 (ms) | ${p(convoyDelays, 50)} | ${p(peerDelays, 50)} | ${(percentile(convoyDelays, 50) / percentile(peerDelays, 50)).toFixed(2)} | |`);
    say(`| notice p99 (ms) | ${p(convoyDelays, 99)} | ${p(peerDelays, 99)} | ${(percentile(convoyDelays, 99) / percentile(peerDelays, 99)).toFixed(2)} | ≤ 1.5 |`);
    say(`| broker peak RSS (MB) | ${convoyRss.toFixed(0)} | ${peerRss.toFixed(1)} | | convoy ≤ 300 |`);
  } finally {
    // Each child is waited for: the server writes its CPU profile as it exits.
    await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM')) : undefined)));
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
