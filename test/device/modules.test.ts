import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { deviceRecord, hashTree, provisionDevice, readJournalFile, runDaemon } from '../helpers/device.ts';
import { archiveArtifact, deploy, publishRelease, sha256Hex } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer } from '../helpers/server.ts';

test('update modules per artifact type: file placed, archive extracted, script run, image handed to its command', async (t) => {
  await withServer(t, async (server) => {
    const imported = await makeTempDir('convoy-images-');
    const image = randomBytes(32 * 1024);
    const config = randomBytes(1000);
    await publishRelease(server, 'pos-app', '1.0.0', [
      { name: 'config.bin', type: 'file', bytes: config },
      await archiveArtifact('ui', { 'index.html': Buffer.from('<h1>till</h1>\n'), 'js/app.js': Buffer.from('console.log(1)\n') }),
      { name: 'migrate.sh', type: 'script', bytes: Buffer.from('#!/bin/sh\necho "migrated for $CONVOY_SLOT" > migrated.txt\n') },
      { name: 'pos.oci', type: 'image', bytes: image },
    ]);
    // The image module's command, as `skopeo copy oci-archive:{file} …` would be on a device.
    const dir = await provisionDevice(server, 'till-1', 'shop', { update: { modules: { image: ['cp', '{file}', `${imported}/{name}`] } } });
    const daemon = runDaemon('till-1', dir);
    try {
      await deploy(server, 'pos-app', '1.0.0', 'shop');
      const journal = await waitFor('commit', async () => {
        const j = await readJournalFile(dir);
        return j?.update?.state === 'committed' ? j : undefined;
      });
      const tree = await hashTree(path.join(dir, 'current'));
      t.is(tree['config.bin'], sha256Hex(config));
      t.is(tree['ui/index.html'], sha256Hex(Buffer.from('<h1>till</h1>\n')));
      t.is(tree['ui/js/app.js'], sha256Hex(Buffer.from('console.log(1)\n')));
      t.is(await fs.readFile(path.join(dir, 'current', 'migrated.txt'), 'utf8'), `migrated for ${journal.update.slot}\n`);
      t.deepEqual(await fs.readFile(path.join(imported, 'pos.oci')), image);
    } catch (error) {
      t.log(daemon.logs.join('').slice(-4000));
      throw error;
    } finally {
      await daemon.stop();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(imported, { recursive: true, force: true });
    }
  });
});

test('outside the install window the device downloads, then waits to stage and switch', async (t) => {
  await withServer(t, async (server) => {
    await publishRelease(server, 'pos-app', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: randomBytes(50_000) }]);
    // A one-minute window twelve hours from now: certainly closed during the test.
    const now = new Date();
    const h = (now.getHours() + 12) % 24;
    const clock = (m: number) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
    const dir = await provisionDevice(server, 'till-1', 'shop', { update: { installWindow: { start: clock(0), end: clock(1) } } });
    const daemon = runDaemon('till-1', dir);
    try {
      await deploy(server, 'pos-app', '1.0.0', 'shop');
      const record = await waitFor('waiting', async () => {
        const r = await deviceRecord(server, 'till-1');
        return r?.state === 'waiting' ? r : undefined;
      });
      t.deepEqual(record.target, { bundle: 'pos-app', version: '1.0.0' });
      t.is((await readJournalFile(dir)).update.state, 'staging', 'downloaded and verified, not staged');
      t.regex(daemon.logs.join(''), new RegExp(`outside the install window ${clock(0)}-${clock(1)}`));
      await t.throwsAsync(fs.readlink(path.join(dir, 'current')));
    } finally {
      await daemon.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
