import fs from 'node:fs/promises';
import test from 'ava';
import { readCurrent, readJournalFile, runDaemon } from '../helpers/device.ts';
import { provisionDevice } from '../helpers/device.ts';
import { withServer } from '../helpers/server.ts';
import { deploy, publish, waitForDevice } from './setup.ts';

/*
 * Issue #14 item 1, downgrade by detour: a device on alpha@1.1.0 refuses alpha@1.0.0; pointing
 * its group at another bundle and then back at alpha@1.0.0 must not get the old version in. The
 * journal keeps a high-water mark per bundle for the device's whole life; only a signed rollback
 * permission lowers it.
 */
test('a device never goes back to an older version of a bundle by way of another bundle, unless the rollback is signed', async (t) => {
  t.timeout(120_000);
  await withServer(t, async (server) => {
    for (const name of ['alpha', 'beta']) t.is((await server.api('POST', '/api/v1/bundles', { json: { name } })).status, 201);
    const files = (tag: string) => ({ 'app.txt': Buffer.from(`${tag}\n`) });
    await publish(server, 'alpha', '1.0.0', files('alpha 1.0.0'));
    await publish(server, 'alpha', '1.1.0', files('alpha 1.1.0'));
    await publish(server, 'beta', '1.0.0', files('beta 1.0.0'));
    const dir = await provisionDevice(server, 'till-1', 'shop', { update: { retryBaseMs: 200, retryMaxMs: 1_000 } });
    const device = runDaemon('till-1', dir);
    try {
      await deploy(server, 'alpha', '1.1.0', 'shop');
      await waitForDevice(server, 'till-1', 'alpha@1.1.0 installed', (r) => r.installed?.bundle === 'alpha' && r.installed?.version === '1.1.0' && r.state === 'installed');

      // The detour: another bundle in between.
      await deploy(server, 'beta', '1.0.0', 'shop');
      await waitForDevice(server, 'till-1', 'beta@1.0.0 installed', (r) => r.installed?.bundle === 'beta' && r.state === 'installed');

      // Back at the older alpha without a signed rollback: refused, beta keeps running.
      await deploy(server, 'alpha', '1.0.0', 'shop');
      const refused = await waitForDevice(server, 'till-1', 'alpha@1.0.0 refused', (r) => r.target?.bundle === 'alpha' && r.target?.version === '1.0.0' && r.error?.code === 'downgrade_refused', 30_000);
      t.is(refused.installed?.bundle, 'beta');
      t.is((await readCurrent(dir)).get('app.txt')?.toString(), 'beta 1.0.0\n', 'current/ still holds beta');
      t.is((await readJournalFile(dir)).highWater?.alpha, '1.1.0', 'the journal remembers the highest alpha it ran');

      // A signed rollback permission lets it in, and lowers the mark to it.
      t.is((await server.api('PUT', '/api/v1/bundles/alpha/versions/1.0.0/rollback', { json: { allowed: true } })).status, 200);
      await deploy(server, 'alpha', '1.0.0', 'shop');
      await waitForDevice(server, 'till-1', 'alpha@1.0.0 installed with the signed rollback', (r) => r.installed?.bundle === 'alpha' && r.installed?.version === '1.0.0' && r.state === 'installed', 30_000);
      t.is((await readCurrent(dir)).get('app.txt')?.toString(), 'alpha 1.0.0\n');
      t.is((await readJournalFile(dir)).highWater?.alpha, '1.0.0');
    } catch (error) {
      t.log(device.logs.join('').slice(-4000));
      throw error;
    } finally {
      await device.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
