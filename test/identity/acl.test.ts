import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import mqtt from 'mqtt';
import { createDeviceCsr, generateKeyPem, signDeviceCsr } from '../../certs/pki.ts';
import { deviceReleaseTopic, deviceStatusTopic, groupReleaseTopic, topicPrefix } from '../../protocol/messages.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { adminToken, makeTempDir, withServer, type TestServer } from '../helpers/server.ts';
import { freePort } from '../helpers/ports.ts';

/*
 * The device ACL seen from a third-party client: Debian's mosquitto_sub and mosquitto_pub holding
 * a device's certificate try to read another device's topic, another group's notices, and to
 * publish a fake release notice, against the embedded broker (aedes behind mTLS) and against a
 * real Mosquitto started from `convoy broker config mosquitto`. A privileged observer on each
 * broker sees what really went through.
 */

const exec = promisify(execFile);

interface Identity {
  id: string;
  dir: string;
}

async function enroll(server: TestServer, id: string, group: string): Promise<Identity> {
  const made = await convoy(server.url, ['device', 'token', '--group', group, '--ttl', '10m', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  const dir = path.join(await makeTempDir('convoy-acl-'), id);
  await exec(process.execPath, [convoydBin, 'enroll', '--server', server.url, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', id]);
  return { id, dir };
}

const tlsArgs = (who: Identity, port: number) => ['-h', '127.0.0.1', '-p', String(port), '--cafile', path.join(who.dir, 'ca.pem'), '--cert', path.join(who.dir, 'device.pem'), '--key', path.join(who.dir, 'device.key'), '-i', `convoyd-${who.id}`, '-q', '1'];

/** mosquitto_sub for one message or 4 s: what the device could read on `topic`. */
async function read(who: Identity, port: number, topic: string, count = 1): Promise<string> {
  try {
    const { stdout } = await exec('mosquitto_sub', [...tlsArgs(who, port), '-t', topic, '-C', String(count), '-W', '4']);
    return stdout.trim();
  } catch (error) {
    return (error as { stdout?: string }).stdout?.trim() ?? '';
  }
}

async function publish(who: Identity, port: number, topic: string, message: string): Promise<void> {
  await exec('mosquitto_pub', [...tlsArgs(who, port), '-t', topic, '-m', message]).catch(() => undefined);
}

/** Everything a privileged client sees on convoy/v1/#. */
async function observe(client: mqtt.MqttClient): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>();
  client.on('message', (topic, payload) => seen.set(topic, [...(seen.get(topic) ?? []), payload.toString('utf8')]));
  await client.subscribeAsync(`${topicPrefix}/#`, { qos: 1 });
  return seen;
}

/**
 * `groupNotices`: whether a device reads its group's notice topic (aedes) or only its own notice
 * (Mosquitto: the ACL names no group, so it never goes stale; protocol/acl.ts).
 */
async function checkAcl(t: ExecutionContext, port: number, observer: mqtt.MqttClient, a: Identity, b: Identity, label: string, groupNotices: boolean): Promise<void> {
  const seen = await observe(observer);
  // Positive controls: a reads its own notice (and its group's where groups are known), publishes its own status.
  t.regex(await read(a, port, deviceReleaseTopic(a.id)), /"group":"north"/, `${label}: a reads its own notice`);
  if (groupNotices) t.regex(await read(a, port, groupReleaseTopic('north')), /"group":"north"/, `${label}: a reads its own group's notice`);
  else t.is(await read(a, port, groupReleaseTopic('north')), '', `${label}: the group topic is the server's`);
  await publish(a, port, deviceStatusTopic(a.id), 'a-status');
  await publish(b, port, deviceStatusTopic(b.id), 'b-status');
  // Refusals.
  t.is(await read(a, port, groupReleaseTopic('south')), '', `${label}: another group's notices`);
  t.is(await read(a, port, deviceStatusTopic(b.id)), '', `${label}: another device's topic`);
  t.is(await read(a, port, `${topicPrefix}/devices/${b.id}/release`), '', `${label}: another device's release topic`);
  // aedes refuses device wildcards outright; Mosquitto grants them but delivers only what the
  // ACL lets the device read. Either way nothing of another group or device comes through.
  const wildcard = await read(a, port, `${topicPrefix}/#`, 10);
  t.false(/south|b-status/.test(wildcard), `${label}: a wildcard reads nothing of others: ${wildcard}`);
  await publish(a, port, groupReleaseTopic('south'), 'FAKE release notice');
  await publish(a, port, deviceStatusTopic(b.id), 'FAKE status of b');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.deepEqual(seen.get(deviceStatusTopic(a.id)), ['a-status'], `${label}: a's own status went through`);
  t.false(JSON.stringify([...seen]).includes('FAKE'), `${label}: no fake message reached anyone: ${JSON.stringify([...seen])}`);
  t.regex(await read(b, port, groupNotices ? groupReleaseTopic('south') : deviceReleaseTopic(b.id)), /"group":"south"/, `${label}: the real notice is still the retained one`);
}

test('a device certificate in mosquitto_sub/pub is refused everything outside its ACL, on aedes and on Mosquitto from convoy broker config', async (t) => {
  const caDir = path.join(await makeTempDir('convoy-acl-ca-'), 'fleet');
  const init = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', caDir, '--name', 'ACL test', '--dns', 'localhost', '--ip', '127.0.0.1'], { token: null });
  t.is(init.code, 0, init.stderr);
  const pki = path.join(caDir, 'server');
  await withServer(t, async (server) => {
    const a = await enroll(server, 'dev-a', 'north');
    const b = await enroll(server, 'dev-b', 'south');
    await publishRelease(server, 'app', '1.0.0', [{ name: 'x.txt', type: 'file', bytes: Buffer.from('x') }]);
    await deploy(server, 'app', '1.0.0', 'north');
    await deploy(server, 'app', '1.0.0', 'south');

    // The embedded broker: the observer is the admin on the plain port.
    const admin = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'admin', password: adminToken, clientId: 'admin:acl-observer', reconnectPeriod: 0 });
    try {
      // The notices name the group in their payload: match on it.
      await checkAcl(t, server.mqttsPort!, admin, a, b, 'aedes', true);
    } finally {
      await admin.endAsync();
    }
    t.true(server.logs.some((line) => line.includes('MQTT refused') && line.includes('dev-a')), 'refusals are logged');

    // Mosquitto from the generated configuration.
    const work = await makeTempDir('convoy-mosquitto-');
    const port = await freePort();
    const config = await convoy(server.url, ['broker', 'config', 'mosquitto', '--pki', pki, '--acl-file', path.join(work, 'convoy.acl'), '--port', String(port), '--host', '127.0.0.1']);
    t.is(config.code, 0, config.stderr);
    // As root, Mosquitto drops to the `mosquitto` user, who cannot read 0700 temp dirs nor 0600
    // keys owned by root: on a real broker the keys belong to that user; here it stays root.
    await fs.writeFile(path.join(work, 'mosquitto.conf'), `${config.stdout}\nuser root\n`);
    const broker = spawn('mosquitto', ['-c', path.join(work, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const brokerLog: string[] = [];
    broker.stderr!.on('data', (c: Buffer) => brokerLog.push(c.toString()));
    try {
      // The Convoy server's own client on Mosquitto: a certificate with the server user's CN.
      const issuer = { certPem: await fs.readFile(path.join(pki, 'issuer.pem'), 'utf8'), keyPem: await fs.readFile(path.join(pki, 'issuer.key'), 'utf8') };
      const key = generateKeyPem();
      const cert = signDeviceCsr({ issuer, csrPem: createDeviceCsr({ deviceId: 'convoy-server', keyPem: key }), deviceId: 'convoy-server', now: new Date() }) + issuer.certPem;
      const ca = await fs.readFile(path.join(pki, 'ca.pem'), 'utf8');
      let observer: mqtt.MqttClient | undefined;
      for (let i = 0; i < 50 && !observer; i++) {
        observer = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { cert, key, ca, reconnectPeriod: 0, protocolVersion: 4 }).catch(() => undefined);
        if (!observer) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      if (!observer) return t.fail(`Mosquitto did not accept the server's client: ${brokerLog.join('')}`);
      try {
        await observer.publishAsync(groupReleaseTopic('north'), JSON.stringify({ group: 'north', note: 'north-release' }), { qos: 1, retain: true });
        await observer.publishAsync(groupReleaseTopic('south'), JSON.stringify({ group: 'south', note: 'south-release' }), { qos: 1, retain: true });
        // As the server does on Mosquitto: each device's own notice too.
        await observer.publishAsync(deviceReleaseTopic(a.id), JSON.stringify({ group: 'north', note: 'north-release' }), { qos: 1, retain: true });
        await observer.publishAsync(deviceReleaseTopic(b.id), JSON.stringify({ group: 'south', note: 'south-release' }), { qos: 1, retain: true });
        await checkAcl(t, port, observer, a, b, 'mosquitto', false);
      } finally {
        await observer.endAsync();
      }
    } finally {
      broker.kill('SIGTERM');
    }
  }, { pkiDir: pki, mqttsPort: 0 });
});
