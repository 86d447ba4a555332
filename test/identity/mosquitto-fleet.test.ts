import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { deviceReleaseTopic, groupReleaseTopic } from '../../protocol/messages.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { freePort } from '../helpers/ports.ts';

/*
 * A fleet on a real Mosquitto configured by `convoy broker config mosquitto`, the server its client
 * (CONVOY_MQTT_URL): a device moved to another group while connected follows the new group's
 * releases and never sees the old one's, with the ACL file untouched; a revoked device's live
 * sessions are closed at once (whatever their client id), and once Mosquitto has reread the server's CRL (SIGHUP) its
 * certificate is refused while the others still connect.
 */

const exec = promisify(execFile);

interface Device {
  id: string;
  cert: string;
  key: string;
  ca: string;
}

async function enroll(server: TestServer, work: string, id: string, group: string, port: number): Promise<Device> {
  const made = await convoy(server.url, ['device', 'token', '--group', group, '--ttl', '10m', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  const dir = path.join(work, id);
  await exec(process.execPath, [convoydBin, 'enroll', '--server', server.url, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', id, '--mqtt-url', `mqtts://127.0.0.1:${port}`]);
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
  return { id, cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem') };
}

/** The device on Mosquitto as convoyd signs in (its client id, its certificate), subscribed to its notice; no reconnects. */
async function connect(device: Device, port: number, clientId = deviceClientId(device.id)): Promise<{ client: mqtt.MqttClient; notices: { deploymentId?: number; group?: string }[] }> {
  const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { clientId, cert: device.cert, key: device.key, ca: device.ca, rejectUnauthorized: true, reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4 });
  const notices: { deploymentId?: number; group?: string }[] = [];
  client.on('message', (topic, payload) => topic === deviceReleaseTopic(device.id) && notices.push(JSON.parse(payload.toString('utf8'))));
  await client.subscribeAsync(deviceReleaseTopic(device.id), { qos: 1 });
  return { client, notices };
}

async function startMosquitto(t: import('ava').ExecutionContext, work: string, pki: string, port: number): Promise<{ broker: ChildProcess; log: string[] }> {
  const config = await convoy('http://127.0.0.1:9', ['broker', 'config', 'mosquitto', '--pki', pki, '--acl-file', path.join(work, 'convoy.acl'), '--port', String(port), '--host', '127.0.0.1'], { token: null });
  t.is(config.code, 0, config.stderr);
  t.regex(config.stdout, new RegExp(`^crlfile ${path.join(pki, 'crl.pem')}$`, 'm'));
  t.regex(config.stdout, /^plugin \/usr\/lib\/.*mosquitto_dynamic_security\.so$/m);
  // As root, Mosquitto would drop to the `mosquitto` user, who cannot read these 0600 keys.
  await fs.writeFile(path.join(work, 'mosquitto.conf'), `${config.stdout}\nuser root\n`);
  const broker = spawn('mosquitto', ['-c', path.join(work, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  broker.stderr!.on('data', (c: Buffer) => log.push(c.toString()));
  return { broker, log };
}

test('on Mosquitto a moved device follows its new group with the ACL untouched; a revoked one is cut off (live session closed, refused after the CRL reload)', async (t) => {
  const work = await makeTempDir('convoy-mosquitto-fleet-');
  const init = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', path.join(work, 'ca'), '--name', 'Fleet', '--dns', 'localhost', '--ip', '127.0.0.1'], { token: null });
  t.is(init.code, 0, init.stderr);
  const pki = path.join(work, 'ca', 'server');
  const port = await freePort();
  const { broker, log } = await startMosquitto(t, work, pki, port);
  try {
    await withServer(t, async (server) => {
      const mover = await enroll(server, work, 'dev-move', 'north', port);
      const stay = await enroll(server, work, 'dev-stay', 'north', port);
      const acl = await fs.readFile(path.join(work, 'convoy.acl'), 'utf8');
      const m = await connect(mover, port);
      const s = await connect(stay, port);
      await publishRelease(server, 'app', '1.0.0', [{ name: 'a.txt', type: 'file', bytes: Buffer.from('a\n') }]);

      // Moved while connected to a group made after the broker was configured: no new configuration, no reconnect.
      t.is((await server.api('POST', '/api/v1/groups', { json: { name: 'south' } })).status, 201);
      const moved = await server.api('POST', '/api/v1/devices/dev-move/move', { json: { group: 'south' } });
      t.is(moved.status, 200, String(moved.raw));
      const north = await deploy(server, 'app', '1.0.0', 'north');
      await waitFor('dev-stay to get the north notice', () => (s.notices.some((n) => n.deploymentId === north) ? true : undefined), 30_000);
      const south = await deploy(server, 'app', '1.0.0', 'south');
      await waitFor('dev-move to get the south notice', () => (m.notices.some((n) => n.deploymentId === south) ? true : undefined), 30_000);
      t.false(m.notices.some((n) => n.deploymentId === north), `the moved device never saw its old group's release: ${JSON.stringify(m.notices)}`);
      t.true(m.client.connected, 'the same session throughout');
      t.is(await fs.readFile(path.join(work, 'convoy.acl'), 'utf8'), acl, 'the ACL file did not change');
      // The group topic is the server's on Mosquitto: a device reads its own notice only.
      // (Mosquitto grants a v3.1.1 subscription and then delivers nothing the ACL refuses, so the
      // server's retained south notice must not arrive.)
      const onGroup: string[] = [];
      m.client.on('message', (topic) => topic === groupReleaseTopic('south') && onGroup.push(topic));
      await m.client.subscribeAsync(groupReleaseTopic('south'), { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      t.deepEqual(onGroup, [], 'the group topic is not a device\'s to read');

      // Revoked: the live sessions are closed by the server at once, convoyd's (its client id is
      // taken over) and one under another client id (the dynamic-security plugin disables the user).
      const rogue = await connect(mover, port, 'not-convoyd');
      const closed = Promise.all([m.client, rogue.client].map((c) => new Promise<void>((resolve) => c.once('close', () => resolve()))));
      const revoked = await convoy(server.url, ['device', 'revoke', 'dev-move']);
      t.is(revoked.code, 0, revoked.stderr);
      await closed;
      await waitFor('the server to log the closed session', () => (server.logs.some((line) => line.includes('closed the device’s session on the external broker')) ? true : undefined), 10_000);
      // The server rewrote the CRL; Mosquitto rereads it on SIGHUP and then refuses the certificate.
      broker.kill('SIGHUP');
      const refused = await waitFor('Mosquitto to refuse the revoked certificate', async () => {
        const again = await connect(mover, port).catch((error: unknown) => error as Error);
        if (again instanceof Error) return again;
        again.client.end(true);
        return undefined;
      }, 20_000, 500);
      t.truthy(refused);
      const other = await connect(stay, port);
      t.true(other.client.connected, 'a device not revoked still connects with the reloaded CRL');
      await other.client.endAsync();
      await s.client.endAsync();
    }, { pkiDir: pki, mqttUrl: `mqtts://127.0.0.1:${port}` });
  } finally {
    broker.kill('SIGTERM');
  }
  t.log(log.join('').split('\n').filter((l) => /denied|error|revoked/i.test(l)).slice(0, 5).join('\n'));
});
