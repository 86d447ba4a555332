import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord, provisionDevice, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { addEdge, copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * The edge's broker for enrolled devices and for revocations (issue 12 item 1):
 *  - MQTT over TLS at the edge (CONVOY_MQTTS_PORT): a device holding only its fleet certificate,
 *    with the edge as its only server (HTTPS and mqtts://), gets its release notice from the
 *    edge's broker and installs, never dialling the origin; a client without a certificate, or
 *    with one the origin no longer vouches for, is refused;
 *  - a device revoked at the origin loses the MQTT session it holds open at the edge (token or
 *    certificate) within the credential cache time plus the session check interval, and its
 *    reconnect is refused.
 * Real origin, real edge, real convoyd, real mqtt.js clients on loopback.
 */

const exec = promisify(execFile);

async function enroll(origin: TestServer, id: string, group: string, mqttUrl: string): Promise<{ dir: string; cert: string; key: string; ca: string }> {
  const made = await convoy(origin.url, ['device', 'token', '--group', group, '--ttl', '10m', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  const dir = path.join(await makeTempDir('convoy-edge-mqtts-'), id);
  await exec(process.execPath, [convoydBin, 'enroll', '--server', origin.url, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', id, '--mqtt-url', mqttUrl]);
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
  return { dir, cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem') };
}

/** Connects once (no reconnects): the client when the broker accepted it, else the refusal. */
function connectOnce(url: string, options: IClientOptions): Promise<{ client: MqttClient } | { refused: string }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
    client.once('connect', () => resolve({ client }));
    client.once('error', (error) => {
      client.end(true);
      resolve({ refused: error.message });
    });
    client.once('close', () => resolve({ refused: 'closed' }));
  });
}

const closed = (client: MqttClient) => new Promise<void>((resolve) => (!client.connected ? resolve() : client.once('close', () => resolve())));

test('an enrolled device with only the edge (HTTPS + mqtts) gets its notice from the edge broker and installs; revoked, its mqtts session at the edge is closed and its reconnect refused', async (t) => {
  const work = await makeTempDir('convoy-edge-mqtts-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const rootFile = await copyRoot(origin, work);
    const token = await addEdge(origin, 'shop-eu');
    const edge = await startTestEdge({ upstreamUrl: proxy.url, token, rootFile, overrides: { httpsPort: 0, mqttsPort: 0, tlsNames: { dns: ['localhost'], ip: ['127.0.0.1'] }, authFreshMs: 500, sessionCheckMs: 100 } });
    let daemon: ReturnType<typeof runDaemon> | undefined;
    const clients: MqttClient[] = [];
    try {
      t.truthy(edge.mqttsPort);
      const edgeMqtts = `mqtts://127.0.0.1:${edge.mqttsPort}`;
      const device = await enroll(origin, 'till-1', 'shop-tills', edgeMqtts);
      await t.throwsAsync(fs.stat(path.join(device.dir, 'device.token')), { code: 'ENOENT' }, 'the device is its certificate');

      t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } })).status, 201);
      const bytes = Buffer.from('till software 1.0.0\n');
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      const [run] = await runsOf(origin, 'pos');
      t.is((await finishedRun(origin, 'pos', run!.id)).run.status, 'succeeded');

      // The edge is the device's only server: its HTTPS and its MQTT over TLS. The origin is never dialled.
      const file = path.join(device.dir, 'device.json');
      const { serverUrl: _s, mqttUrl: _m, ...config } = JSON.parse(await fs.readFile(file, 'utf8'));
      await fs.writeFile(file, JSON.stringify({ ...config, servers: [{ url: edge.httpsUrl, mqttUrl: edgeMqtts }] }));
      daemon = runDaemon('till-1', device.dir);
      const logs = daemon.logs;
      await waitFor('the daemon subscribed at the edge broker', async () => (logs.join('').includes('subscribed to release notices') ? true : undefined), 30_000);
      t.regex(logs.join(''), new RegExp(`connected to the broker.*${edgeMqtts.replace(/[.:/]/g, '\\$&')}`));
      await deploy(origin, 'pos', '1.0.0', 'shop-tills');
      // The edge relays the origin's notice on its broker; the device's status goes back through the edge.
      await edge.refreshNotices();
      await waitFor('till-1 on 1.0.0', async () => ((await deviceRecord(origin, 'till-1'))?.installed?.version === '1.0.0' ? true : undefined), 60_000);
      t.deepEqual(await fs.readFile(path.join(device.dir, 'current', 'app.bin')), bytes);
      t.false(logs.join('').includes('polling the server'), 'the offer came over MQTT, not the poll');
      await daemon.stop();
      daemon = undefined;

      // No certificate, or one of the fleet presented with a token-style sign-in only: no session.
      const anonymous = await connectOnce(edgeMqtts, { ca: device.ca, username: 'till-1', password: 'x', clientId: 'convoyd-till-1' });
      t.true('refused' in anonymous, 'a client without a fleet certificate never reaches the broker');

      // The certificate's session, held open; the device revoked at the origin: closed, and refused again.
      const options = { ca: device.ca, cert: device.cert, key: device.key, rejectUnauthorized: true, clientId: 'convoyd-till-1', username: 'till-1' };
      const session = await connectOnce(edgeMqtts, options);
      if (!('client' in session)) return t.fail(`mqtts sign-in refused: ${session.refused}`);
      clients.push(session.client);
      t.is((await convoy(origin.url, ['device', 'revoke', 'till-1'])).code, 0);
      await waitFor('the edge to close the revoked session', async () => (!session.client.connected ? true : undefined), 10_000);
      t.true(edge.logs.join('').includes('its MQTT session is closed'));
      const again = await connectOnce(edgeMqtts, options);
      if ('client' in again) clients.push(again.client);
      t.true('refused' in again, 'the revoked certificate cannot sign in again at the edge');
    } finally {
      for (const client of clients) client.end(true);
      await daemon?.stop();
      await edge.close();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  }, { httpsPort: 0 });
});

test('a token device revoked at the origin loses the MQTT session it holds open at the edge, and cannot sign in again', async (t) => {
  const work = await makeTempDir('convoy-edge-sessions-');
  await withServer(t, async (origin) => {
    const rootFile = await copyRoot(origin, work);
    const token = await addEdge(origin, 'shop-eu');
    // A half-second cache, checked every 100 ms: the bound is their sum (defaults: 60 s + 5 s).
    const edge = await startTestEdge({ upstreamUrl: origin.url, token, rootFile, overrides: { authFreshMs: 500, sessionCheckMs: 100 } });
    const clients: MqttClient[] = [];
    try {
      const dir = await provisionDevice(origin, 'till-2', 'shop-tills');
      const deviceToken = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
      const url = `mqtt://127.0.0.1:${edge.mqttPort}`;
      const options = { username: 'till-2', password: deviceToken, clientId: 'convoyd-till-2' };
      const session = await connectOnce(url, options);
      if (!('client' in session)) return t.fail(`sign-in refused: ${session.refused}`);
      clients.push(session.client);
      // Still held after a few checks while the origin vouches for it.
      await new Promise((resolve) => setTimeout(resolve, 800));
      t.true(session.client.connected, 'a device in good standing keeps its session');

      t.is((await convoy(origin.url, ['device', 'revoke', 'till-2'])).code, 0);
      const revokedAt = Date.now();
      await Promise.race([closed(session.client), new Promise((_, reject) => setTimeout(() => reject(new Error('the revoked device kept its MQTT session at the edge')), 10_000))]);
      t.false(session.client.connected);
      t.log(`session closed ${Date.now() - revokedAt} ms after the revocation (bound: 500 ms cache + 100 ms check)`);
      const again = await connectOnce(url, options);
      if ('client' in again) clients.push(again.client);
      t.true('refused' in again, 'its reconnect is refused');
    } finally {
      for (const client of clients) client.end(true);
      await edge.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
