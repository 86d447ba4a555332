import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { provisionDevice } from '../helpers/device.ts';
import { adminToken, withServer } from '../helpers/server.ts';

/*
 * Issue #14 item 7: MQTT client ids are bound to who signed in. A device's client id is
 * `convoyd-<device id>` (what convoyd sends); a user's starts with `<user name>:`. Connecting
 * with someone else's client id is refused (CONNACK 2, identifier rejected) and does not
 * disconnect its owner (MQTT §3.1.4-2 would otherwise end the existing session).
 */
test('nobody can take over a device session by connecting with its client id', async (t) => {
  await withServer(t, async (server) => {
    const tokenOf = async (dir: string) => (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
    const one = await provisionDevice(server, 'till-1', 'shop');
    const two = await provisionDevice(server, 'till-2', 'shop');
    const url = `mqtt://127.0.0.1:${server.mqttPort}`;
    const connect = (username: string, password: string, clientId: string) => mqtt.connectAsync(url, { username, password, clientId, reconnectPeriod: 0, connectTimeout: 5_000 });
    try {
      const owner = await connect('till-1', await tokenOf(one), 'convoyd-till-1');
      let ownerClosed = false;
      owner.on('close', () => (ownerClosed = true));

      const byDevice = await t.throwsAsync(connect('till-2', await tokenOf(two), 'convoyd-till-1'));
      t.regex(String(byDevice?.message), /identifier rejected/i, 'another device is refused the id');
      const byUser = await t.throwsAsync(connect('admin', adminToken, 'convoyd-till-1'));
      t.regex(String(byUser?.message), /identifier rejected/i, 'an admin is refused it too');
      await t.throwsAsync(connect('admin', adminToken, 'till-1'), undefined, 'a user may not use a bare device id');
      await t.throwsAsync(connect('till-1', await tokenOf(one), 'till-1-other'), undefined, 'a device may use only its own client id');
      await new Promise((resolve) => setTimeout(resolve, 300));
      t.false(ownerClosed, 'the device keeps its connection');
      t.true(owner.connected);

      const user = await connect('admin', adminToken, 'admin:cli-1');
      t.true(user.connected, 'a user connects with an id under its own prefix');
      await user.endAsync();
      await owner.endAsync();
    } finally {
      await fs.rm(one, { recursive: true, force: true });
      await fs.rm(two, { recursive: true, force: true });
    }
  });
});
