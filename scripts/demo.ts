/**
 * `npm run demo`: one release from push to three devices, on this machine, narrated.
 * Starts an origin server and three `convoyd` processes under ./demo-data (wiped first), publishes
 * and deploys a release, prints each device's state as it changes, then stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceConfigSchemaId } from '../protocol/device-config.ts';
import { createLogger } from '../protocol/log.ts';
import { startServer } from '../server/app.ts';
import { defaultServerConfig } from '../server/config.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demoDir = path.join(root, 'demo-data');
const token = `demo-${randomBytes(16).toString('hex')}`;
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  await fs.rm(demoDir, { recursive: true, force: true });
  await fs.mkdir(demoDir, { recursive: true });
  const serverLog = await fs.open(path.join(demoDir, 'server.log'), 'w');
  const server = await startServer(
    { ...defaultServerConfig, dataDir: path.join(demoDir, 'server'), host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: token },
    { log: createLogger({ namespace: 'server', write: (line) => void serverLog.write(line) }) },
  );
  say(`1. server up: API ${server.url}, MQTT port ${server.mqttPort} (log: demo-data/server.log)`);
  const daemons: ChildProcess[] = [];
  try {
    const api = async (method: string, url: string, body?: unknown, raw?: Buffer) => {
      const response = await fetch(`${server.url}${url}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: raw ?? (body !== undefined ? JSON.stringify(body) : null),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}: ${text}`);
      return text ? JSON.parse(text) : undefined;
    };

    await api('POST', '/api/v1/bundles', { name: 'pos-app', description: 'Point-of-sale application' });
    const artifacts = { 'pos-app.tar': randomBytes(512 * 1024), 'prices.json': Buffer.from('{"coffee": 2.5}\n') };
    for (const [name, bytes] of Object.entries(artifacts)) {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      await api('PUT', `/api/v1/blobs/${digest}`, undefined, bytes);
      if (name === 'pos-app.tar') await api('POST', '/api/v1/bundles/pos-app/versions', { version: '1.0.0' });
      await api('PUT', `/api/v1/bundles/pos-app/versions/1.0.0/artifacts/${name}`, { type: 'file', digest, size: bytes.length });
      say(`2. pushed ${name} (${bytes.length} bytes, ${digest.slice(0, 19)}…) into the draft pos-app@1.0.0`);
    }
    const approved = await api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve');
    say(`3. approved pos-app@1.0.0: frozen and signed (manifest ${approved.manifestDigest.slice(0, 19)}…)`);

    for (const id of ['till-1', 'till-2', 'till-3']) {
      const registration = await api('POST', '/api/v1/devices', { id, group: 'shop' });
      const dir = path.join(demoDir, id);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'device.token'), registration.token + '\n', { mode: 0o600 });
      await fs.writeFile(path.join(dir, 'root.json'), JSON.stringify(registration.root));
      await fs.writeFile(path.join(dir, 'device.json'), JSON.stringify({ schema: deviceConfigSchemaId, id, group: 'shop', serverUrl: server.url, mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}` }, null, 2));
      const log = await fs.open(path.join(dir, 'convoyd.log'), 'w');
      daemons.push(spawn(process.execPath, [path.join(root, 'bin/convoyd.js'), '--config', path.join(dir, 'device.json')], { stdio: ['ignore', log.fd, log.fd] }));
      await log.close(); // the daemon holds its own copy of the descriptor
      say(`4. registered ${id} in group "shop" and started convoyd (demo-data/${id}/)`);
    }

    await new Promise((resolve) => setTimeout(resolve, 1500));
    const deployment = await api('POST', '/api/v1/deployments', { bundle: 'pos-app', version: '1.0.0', group: 'shop' });
    say(`5. deployed pos-app@1.0.0 to group "shop" (deployment ${deployment.id}); watching the devices:`);

    const seen = new Map<string, string>();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const devices: { id: string; state: string | null; installed: { version: string } | null; error: { message: string } | null }[] = await api('GET', '/api/v1/devices');
      for (const d of devices) {
        const line = `${d.state ?? 'not seen yet'}${d.installed ? ` (runs ${d.installed.version})` : ''}${d.error ? ` error: ${d.error.message}` : ''}`;
        if (seen.get(d.id) !== line) {
          seen.set(d.id, line);
          say(`   ${d.id}: ${line}`);
        }
      }
      if (devices.length === 3 && devices.every((d) => d.installed?.version === '1.0.0')) break;
      if (Date.now() > deadline) throw new Error('the devices did not all install 1.0.0 within 60 s; see demo-data/*/convoyd.log');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    for (const id of ['till-1', 'till-2', 'till-3']) {
      const same = (await fs.readFile(path.join(demoDir, id, 'current', 'pos-app.tar'))).equals(artifacts['pos-app.tar']);
      if (!same) throw new Error(`${id}/current/pos-app.tar differs from what was pushed`);
    }
    say('6. all three devices run pos-app@1.0.0; each demo-data/till-N/current/ holds exactly the pushed bytes. Done.');
  } finally {
    for (const daemon of daemons) daemon.kill('SIGTERM');
    await Promise.all(daemons.map((d) => new Promise((resolve) => (d.exitCode !== null ? resolve(null) : d.once('exit', resolve)))));
    await server.close();
    await serverLog.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
