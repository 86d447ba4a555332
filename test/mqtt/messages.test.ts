import fs from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { deviceReleaseTopic, deviceStatusTopic, groupReleaseTopic } from '../../protocol/messages.ts';
import { provisionDevice, readCurrent, runDaemon } from '../helpers/device.ts';
import { pushArtifact, waitFor, withServer } from '../helpers/server.ts';

async function connectAs(port: number, username: string, password: string) {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username, password, reconnectPeriod: 0, clientId: deviceClientId(username) });
}

test('the broker admits devices by token, scopes their topics, and the server drops invalid status messages', async (t) => {
  await withServer(t, async (server) => {
    const dir = await provisionDevice(server, 'till-1', 'shop');
    await provisionDevice(server, 'till-2', 'shop');
    const token = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
    try {
      await t.throwsAsync(connectAs(server.mqttPort, 'till-1', 'cvy_wrong-token-wrong-token'), undefined, 'a wrong token is refused');
      await t.throwsAsync(connectAs(server.mqttPort, 'till-2', token), undefined, "one device's token does not sign in as another");

      const client = await connectAs(server.mqttPort, 'till-1', token);
      const granted = await client.subscribeAsync(groupReleaseTopic('shop'), { qos: 1 });
      t.deepEqual(granted.map((g) => g.qos), [1], 'its own group is granted');
      const refused = await t.throwsAsync(client.subscribeAsync(groupReleaseTopic('warehouse'), { qos: 1 }));
      t.deepEqual((refused as unknown as { packet: { granted: number[] } }).packet.granted, [128], 'another group is refused with SUBACK 0x80');

      for (const payload of ['not json', '{}', JSON.stringify({ type: 'status', deviceId: 'till-1', state: 'exploded' }), JSON.stringify({ type: 'status', deviceId: 'till-2', state: 'idle', installed: null, target: null, error: null, reportedAt: new Date().toISOString() })]) {
        await client.publishAsync(deviceStatusTopic('till-1'), payload, { qos: 1 });
      }
      await waitFor('the server to drop four invalid messages', () => (server.logs.filter((l) => l.includes('dropped an invalid device status message')).length === 4 ? true : undefined));
      const before = (await server.api('GET', '/api/v1/devices')).body;
      t.true(before.every((d: { state: string | null }) => d.state === null), 'no invalid message changed a device record');

      const valid = { type: 'status', deviceId: 'till-1', state: 'idle', installed: null, target: null, error: null, reportedAt: new Date().toISOString() };
      await client.publishAsync(deviceStatusTopic('till-1'), JSON.stringify(valid), { qos: 1 });
      await waitFor('the valid status to be recorded', async () => ((await server.api('GET', '/api/v1/devices')).body.find((d: { id: string }) => d.id === 'till-1').state === 'idle' ? true : undefined));
      await client.endAsync();

      // Publishing as another device is refused by the broker (the connection is dropped).
      const impostor = await connectAs(server.mqttPort, 'till-1', token);
      const dropped = new Promise<void>((resolve) => impostor.once('close', () => resolve()));
      impostor.publish(deviceStatusTopic('till-2'), JSON.stringify({ ...valid, deviceId: 'till-2' }), { qos: 0 });
      await dropped;
      await impostor.endAsync(true);
      const till2 = (await server.api('GET', '/api/v1/devices')).body.find((d: { id: string }) => d.id === 'till-2');
      t.is(till2.state, null);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

test('convoyd drops malformed release notices and keeps working', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    const bytes = Buffer.from('release one\n');
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.txt', bytes);
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve')).status, 200);

    // A broker of the test's own, where anyone may publish anything: the daemon must cope.
    const aedes = await Aedes.createBroker();
    const broker = net.createServer(aedes.handle);
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    const port = (broker.address() as AddressInfo).port;
    const dir = await provisionDevice(server, 'till-1', 'shop', { mqttUrl: `mqtt://127.0.0.1:${port}` });
    // Deployed to the device's group, so the device may read the bundle (reads are per bundle);
    // the notices it hears below come from elsewhere, though.
    t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '1.0.0', group: 'shop' } })).status, 201);
    const device = runDaemon('till-1', dir);
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
    try {
      await waitFor('the daemon to subscribe', () => (device.logs.join('').includes('subscribed to release notices') ? true : undefined));
      const notice = { type: 'release', deploymentId: 1, group: 'shop', bundle: 'pos-app', version: '1.0.0', issuedAt: new Date().toISOString() };
      const garbage = ['', 'not json', '[]', JSON.stringify({ ...notice, version: '../../etc' }), JSON.stringify({ ...notice, deploymentId: -1 }), JSON.stringify({ ...notice, extra: 1 }), 'x'.repeat(20_000)];
      // The daemon follows its own release topic (phases, several groups and aborts are per device).
      for (const payload of garbage) await publisher.publishAsync(deviceReleaseTopic('till-1'), payload, { qos: 1 });
      await waitFor('six dropped notices', () => (device.logs.join('').split('dropped an invalid release notice').length - 1 === 6 ? true : undefined));
      t.is(device.process.exitCode, null, 'the daemon is still running');
      await publisher.publishAsync(deviceReleaseTopic('till-1'), JSON.stringify(notice), { qos: 1 });
      await waitFor('the valid notice to be applied', async () => ((await readCurrent(dir).catch(() => undefined))?.get('app.txt')?.equals(bytes) ? true : undefined));
      t.pass();
    } catch (error) {
      t.log(device.logs.join(''));
      throw error;
    } finally {
      await device.stop();
      await publisher.endAsync();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      broker.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
