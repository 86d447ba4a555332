import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import mqtt from 'mqtt';
import { createDeviceCsr, createRootCa, generateKeyPem, signDeviceCsr } from '../../certs/pki.ts';
import { groupReleaseTopic } from '../../protocol/messages.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Mutual TLS where a device talks: MQTT over TLS (aedes behind a TLS listener) and HTTPS, both
 * authenticated by the device's certificate; `convoy device revoke` cuts it off on both at once.
 * Real sockets on loopback; the device side is mqtt.js, node's https and the real convoyd.
 */

const exec = promisify(execFile);

interface Identity {
  dir: string;
  cert: string;
  key: string;
  ca: string;
}

async function enroll(server: TestServer, id: string, group: string): Promise<Identity> {
  const made = await convoy(server.url, ['device', 'token', '--group', group, '--ttl', '10m', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  const dir = path.join(await makeTempDir('convoy-mtls-'), id);
  await exec(process.execPath, [convoydBin, 'enroll', '--server', server.url, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', id, '--mqtt-url', `mqtts://127.0.0.1:${server.mqttsPort}`]);
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
  return { dir, cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem') };
}

function httpsGet(server: TestServer, urlPath: string, tls: { cert?: string; key?: string; ca: string }): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port: server.httpsPort, path: urlPath, method: 'GET', ...tls, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

/** Connects once (no reconnect); resolves connected or the refusal. */
function connectMqtt(server: TestServer, id: string, tls: { cert?: string; key?: string; ca: string }): Promise<{ client: mqtt.MqttClient } | { error: string }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(`mqtts://127.0.0.1:${server.mqttsPort}`, { clientId: `convoyd-${id}`, username: id, ...tls, rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: 10_000 });
    client.once('connect', () => resolve({ client }));
    client.once('error', (error) => {
      client.end(true);
      resolve({ error: error.message });
    });
    client.once('close', () => resolve({ error: 'closed' }));
  });
}

/** The QoS the broker granted for one subscription (128: refused, MQTT 3.1.1 §3.9.3). */
function grantedQos(client: mqtt.MqttClient, topic: string): Promise<number> {
  return new Promise((resolve) => client.subscribe(topic, { qos: 1 }, (error, granted) => resolve(error ? 128 : (granted?.[0]?.qos ?? -1))));
}

const mtlsConfig = { mqttsPort: 0, httpsPort: 0 };

test('HTTPS for devices: the fleet certificate authenticates the device; no certificate or another CA never gets through', async (t) => {
  await withServer(t, async (server) => {
    t.truthy(server.httpsPort);
    const device = await enroll(server, 'h-1', 'plant');
    const ok = await httpsGet(server, '/api/v1/groups/plant/release', device);
    t.true('status' in ok && (ok.status === 200 || ok.status === 204), JSON.stringify(ok));
    const noCert = await httpsGet(server, '/api/v1/groups/plant/release', { ca: device.ca });
    t.true('error' in noCert || noCert.status === 401, JSON.stringify(noCert));
    const otherCa = createRootCa({ name: 'Mallory', now: new Date() });
    const key = generateKeyPem();
    const forged = signDeviceCsr({ issuer: otherCa, csrPem: createDeviceCsr({ deviceId: 'h-1', keyPem: key }), deviceId: 'h-1', now: new Date() });
    const stranger = await httpsGet(server, '/api/v1/groups/plant/release', { ca: device.ca, cert: forged, key });
    t.true('error' in stranger || stranger.status === 401, JSON.stringify(stranger));
    // An operator's route is not a device's, certificate or not.
    const forbidden = await httpsGet(server, '/api/v1/devices', device);
    t.true('status' in forbidden && forbidden.status === 403, JSON.stringify(forbidden));
  }, mtlsConfig);
});

test('MQTT over TLS: the certificate signs the device in (no token); its own group subscribes, other certificates are refused', async (t) => {
  await withServer(t, async (server) => {
    const device = await enroll(server, 'm-1', 'plant');
    const connected = await connectMqtt(server, 'm-1', device);
    t.true('client' in connected, 'error' in connected ? connected.error : '');
    if (!('client' in connected)) return;
    t.is(await grantedQos(connected.client, groupReleaseTopic('plant')), 1);
    t.is(await grantedQos(connected.client, groupReleaseTopic('office')), 128, "another group's notices are refused");
    await connected.client.endAsync();

    const claimsOther = await connectMqtt(server, 'm-2', device);
    t.true('error' in claimsOther, 'the user name must be the certificate CN');
    const noCert = await connectMqtt(server, 'm-1', { ca: device.ca });
    t.true('error' in noCert, 'no certificate, no connection');
  }, mtlsConfig);
});

test('convoy device revoke: HTTPS refuses the device at once, its live MQTT session is closed and it cannot sign in again', async (t) => {
  await withServer(t, async (server) => {
    const device = await enroll(server, 'r-1', 'plant');
    const connected = await connectMqtt(server, 'r-1', device);
    if (!('client' in connected)) return t.fail(connected.error);
    const closed = new Promise<void>((resolve) => connected.client.once('close', () => resolve()));
    const revoked = await convoy(server.url, ['device', 'revoke', 'r-1']);
    t.is(revoked.code, 0, revoked.stderr);
    t.regex(revoked.stdout, /revoked device r-1: 1 certificate\(s\) and 1 token\(s\)/);
    await closed;
    connected.client.end(true);
    const again = await connectMqtt(server, 'r-1', device);
    t.true('error' in again, 'a revoked device cannot sign in again');
    const https = await httpsGet(server, '/api/v1/groups/plant/release', device);
    t.deepEqual('status' in https ? https.status : https, 401);
    // On HTTPS and MQTT over TLS the device keeps no token at rest (the one enrollment minted was revoked too).
    await t.throwsAsync(fs.stat(path.join(device.dir, 'device.token')), { code: 'ENOENT' });
    const unknown = await convoy(server.url, ['device', 'revoke', 'nobody']);
    t.is(unknown.code, 1);
  }, mtlsConfig);
});

test('convoyd on mTLS: an enrolled device with no token on disk gets its notice over MQTT over TLS, fetches over HTTPS with its certificate, installs, and reports', async (t) => {
  await withServer(t, async (server) => {
    const device = await enroll(server, 'd-1', 'plant');
    // Enrollment pointed the device at the mutual-TLS listeners and kept no token: it is its certificate.
    const config = JSON.parse(await fs.readFile(path.join(device.dir, 'device.json'), 'utf8'));
    t.is(config.serverUrl, `https://127.0.0.1:${server.httpsPort}`);
    await t.throwsAsync(fs.stat(path.join(device.dir, 'device.token')), { code: 'ENOENT' });
    const bytes = Buffer.from('mtls\n');
    await publishRelease(server, 'app', '1.0.0', [{ name: 'a.txt', type: 'file', bytes }]);
    const daemon = runDaemon('d-1', device.dir);
    try {
      await deploy(server, 'app', '1.0.0', 'plant');
      await waitFor('the device to report 1.0.0 installed', async () => ((await deviceRecord(server, 'd-1'))?.installed?.version === '1.0.0' ? true : undefined), 60_000);
      t.true(daemon.logs.join('').includes(`mqtts://127.0.0.1:${server.mqttsPort}`));
      t.deepEqual(await fs.readFile(path.join(device.dir, 'current', 'a.txt')), bytes);
      // Metadata and the bytes came over HTTPS: the journal names the server that served them.
      const journal = JSON.parse(await fs.readFile(path.join(device.dir, 'journal.json'), 'utf8'));
      t.deepEqual(journal.update.servedBy, [`https://127.0.0.1:${server.httpsPort}`]);

      // Revoked: its next HTTPS request is refused at once, with a typed error.
      t.is((await convoy(server.url, ['device', 'revoke', 'd-1'])).code, 0);
      const refused = await httpsGet(server, '/api/v1/devices/d-1/release', device);
      t.true('status' in refused && refused.status === 401 && JSON.parse(refused.body).error.code === 'unauthenticated', JSON.stringify(refused));
    } finally {
      await daemon.stop();
    }
  }, mtlsConfig);
});

test('convoyd on mTLS with two servers: the first https server and mqtts broker are dead; the device goes on with the second, with its certificate, and installs', async (t) => {
  await withServer(t, async (server) => {
    const device = await enroll(server, 'f-1', 'plant');
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const dead = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const file = path.join(device.dir, 'device.json');
    const { serverUrl: _s, mqttUrl: _m, ...config } = JSON.parse(await fs.readFile(file, 'utf8'));
    const live = `https://127.0.0.1:${server.httpsPort}`;
    await fs.writeFile(file, JSON.stringify({ ...config, timeoutSeconds: 5, update: { retryBaseMs: 200, retryMaxMs: 1000 }, servers: [
      { url: `https://127.0.0.1:${dead}`, mqttUrl: `mqtts://127.0.0.1:${dead}` },
      { url: live, mqttUrl: `mqtts://127.0.0.1:${server.mqttsPort}` },
    ] }));
    await publishRelease(server, 'app', '1.0.0', [{ name: 'a.txt', type: 'file', bytes: Buffer.from('two\n') }]);
    const daemon = runDaemon('f-1', device.dir);
    try {
      await deploy(server, 'app', '1.0.0', 'plant');
      await waitFor('the device to report 1.0.0 installed', async () => ((await deviceRecord(server, 'f-1'))?.installed?.version === '1.0.0' ? true : undefined), 90_000);
      const journal = JSON.parse(await fs.readFile(path.join(device.dir, 'journal.json'), 'utf8'));
      t.deepEqual(journal.update.servedBy, [live]);
      t.true(daemon.logs.join('').includes(`"connected to the broker","url":"mqtts://127.0.0.1:${server.mqttsPort}"`));
    } finally {
      await daemon.stop();
    }
  }, mtlsConfig);
});

test('enrollment needs no proxy: convoyd enroll pinned with --ca to the HTTPS port, which asks for a certificate but takes a device that has none yet', async (t) => {
  await withServer(t, async (server) => {
    const made = await convoy(server.url, ['device', 'token', '--group', 'plant', '--ttl', '10m', '--json']);
    t.is(made.code, 0, made.stderr);
    const dir = path.join(await makeTempDir('convoy-mtls-'), 'e-1');
    const caFile = path.join(server.dataDir, 'pki', 'ca.pem');
    const https = `https://127.0.0.1:${server.httpsPort}`;
    await exec(process.execPath, [convoydBin, 'enroll', '--server', https, '--ca', caFile, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', 'e-1']);
    const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
    const identity = { cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem') };
    const ok = await httpsGet(server, '/api/v1/groups/plant/release', identity);
    t.true('status' in ok && (ok.status === 200 || ok.status === 204), JSON.stringify(ok));
    // Without a certificate the same port answers a device route with a typed 401, not data.
    const anonymous = await httpsGet(server, '/api/v1/groups/plant/release', { ca: identity.ca });
    t.true('status' in anonymous && anonymous.status === 401 && JSON.parse(anonymous.body).error.code === 'unauthenticated', JSON.stringify(anonymous));
  }, mtlsConfig);
});
