import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { deviceStatusTopic } from '../../protocol/messages.ts';
import { defaultMqttLimits } from '../../server/broker/limits.ts';
import { provisionDevice } from '../helpers/device.ts';
import { waitFor, withServer } from '../helpers/server.ts';
import { deviceRecord } from '../security/setup.ts';

/*
 * Issue #14 item 15: one device publishing thousands of status messages must not make thousands
 * of database writes. Beyond a rate per device they are coalesced: the latest waits for the next
 * slot (so the last word is never lost), the ones it replaces are dropped, counted and logged once.
 */
test('a device flooding status messages is coalesced to a bounded number of writes, and its last status is kept', async (t) => {
  t.timeout(90_000);
  await withServer(
    t,
    async (server) => {
      const dir = await provisionDevice(server, 'till-1', 'shop');
      const token = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'till-1', password: token, clientId: deviceClientId('till-1'), reconnectPeriod: 0 });
      const sent = 2_000;
      const started = Date.now();
      try {
        for (let i = 0; i < sent; i++) {
          const status = { type: 'status', deviceId: 'till-1', state: 'downloading', installed: null, target: { bundle: 'pos-app', version: '1.0.0' }, error: null, reportedAt: new Date().toISOString(), progress: { bytes: i + 1, total: sent } };
          client.publish(deviceStatusTopic('till-1'), JSON.stringify(status), { qos: 0 });
        }
        await client.publishAsync(deviceStatusTopic('till-1'), JSON.stringify({ type: 'status', deviceId: 'till-1', state: 'installed', installed: { bundle: 'pos-app', version: '1.0.0' }, target: null, error: null, reportedAt: new Date().toISOString() }), { qos: 1 });
        const record = await waitFor('the last status to be recorded', async () => {
          const r = await deviceRecord(server, 'till-1');
          return r?.state === 'installed' ? r : undefined;
        });
        t.is(record.installed?.version, '1.0.0', 'the last status reached the database');
        const elapsed = (Date.now() - started) / 1000;
        const writes = server.logs.filter((l) => l.includes('"msg":"device status"')).length;
        t.log(`${sent + 1} messages in ${elapsed.toFixed(1)} s → ${writes} database writes`);
        t.true(writes <= 10 + Math.ceil(elapsed * 5) + 1, `${writes} writes for ${sent + 1} messages`);
        await waitFor('the coalescing to be logged', () => (server.logs.some((l) => l.includes('status messages over the rate')) ? true : undefined), 5_000);
        t.is(server.logs.filter((l) => l.includes('status messages over the rate')).length, 1, 'logged once per flood, not per message');
      } finally {
        await client.endAsync();
        await fs.rm(dir, { recursive: true, force: true });
      }
    },
    { mqttLimits: { ...defaultMqttLimits, statusPerSecond: 5, statusBurst: 10 } },
  );
});
