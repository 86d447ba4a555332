import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { provisionDevice, readCurrent, readJournalFile, runDaemon } from '../helpers/device.ts';
import { pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/* Rollouts with real convoyd processes: abort while the update waits on its lock; inventory. */

async function approved(server: TestServer, version: string, bytes: Buffer): Promise<void> {
  if ((await server.api('GET', '/api/v1/bundles/pos-app')).status === 404) await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
  await pushArtifact(server, 'pos-app', version, 'app.txt', bytes);
  const answer = await server.api('POST', `/api/v1/bundles/pos-app/versions/${version}/approve`);
  if (answer.status !== 200) throw new Error(`approve answered ${answer.status}`);
}

test('abort while the device waits on its update lock: it stops, stays on what it runs, and reports its inventory', async (t) => {
  await withServer(t, async (server) => {
    const one = Buffer.from('release one\n');
    await approved(server, '1.0.0', one);
    await approved(server, '1.1.0', Buffer.from('release two\n'));
    const dir = await provisionDevice(server, 'till-1', 'shop', { update: { retryBaseMs: 200 } });
    const config = JSON.parse(await fs.readFile(path.join(dir, 'device.json'), 'utf8'));
    await fs.writeFile(path.join(dir, 'device.json'), JSON.stringify({ ...config, inventory: { attributes: { region: 'eu-west' }, command: ['sh', '-c', 'echo shop=berlin-04; echo lanes=6'] } }));
    const device = runDaemon('till-1', dir);
    try {
      const first = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '1.0.0', group: 'shop' } });
      t.is(first.status, 201);
      await waitFor('1.0.0 installed', async () => ((await readCurrent(dir).catch(() => undefined))?.get('app.txt')?.equals(one) ? true : undefined));
      const shown = await waitFor('the inventory', async () => {
        const d = (await server.api('GET', '/api/v1/devices/till-1')).body;
        return d.inventory.shop === 'berlin-04' ? d : undefined;
      });
      t.like(shown.inventory, { region: 'eu-west', lanes: 6, daemon_version: '0.1.0' });
      t.is(typeof shown.inventory.disk_free_mb, 'number');
      t.true(shown.online);
      const preview = await server.api('POST', '/api/v1/groups/preview', { json: { filter: 'shop = "berlin-04" and lanes >= 6' } });
      t.deepEqual(preview.body.devices, ['till-1']);

      // A sale is in progress: the POS holds the update lock (its own pid, alive).
      await fs.writeFile(path.join(dir, 'update.lock'), String(process.pid));
      const second = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '1.1.0', group: 'shop' } });
      await waitFor('the device to wait on the lock', async () => ((await server.api('GET', '/api/v1/devices/till-1')).body.state === 'waiting' ? true : undefined));
      const aborted = await server.api('POST', `/api/v1/deployments/${second.body.id}/abort`);
      t.is(aborted.body.deployment.state, 'aborted');
      await waitFor('the update to stop', async () => ((await readJournalFile(dir)).update?.state === 'aborted' ? true : undefined));
      const record = await waitFor('the device to report it stays on 1.0.0', async () => {
        const d = (await server.api('GET', '/api/v1/devices/till-1')).body;
        return d.state === 'installed' && d.installed?.version === '1.0.0' ? d : undefined;
      });
      t.is(record.target, null);
      // The sale ends: nothing is switched afterwards.
      await fs.rm(path.join(dir, 'update.lock'));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      t.true((await readCurrent(dir)).get('app.txt')!.equals(one), 'current still holds 1.0.0');
      const detail = (await server.api('GET', `/api/v1/deployments/${second.body.id}`)).body;
      t.is(detail.devices[0].state, 'aborted');
      t.is(device.process.exitCode, null);
    } catch (error) {
      t.log(device.logs.join('').slice(-5000));
      throw error;
    } finally {
      await device.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
