import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { readCurrent, startDevice, type TestDevice } from '../helpers/device.ts';
import { pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';

async function deviceRecord(server: TestServer, id: string) {
  const list = await server.api('GET', '/api/v1/devices');
  return (list.body as any[]).find((d) => d.id === id);
}

async function publish(server: TestServer, version: string, files: Record<string, Buffer>) {
  for (const [name, bytes] of Object.entries(files)) await pushArtifact(server, 'pos-app', version, name, bytes, name.endsWith('.img') ? 'image' : 'file');
  const approved = await server.api('POST', `/api/v1/bundles/pos-app/versions/${version}/approve`);
  if (approved.status !== 200) throw new Error(`approve answered ${approved.status}: ${approved.raw}`);
  return approved.body;
}

async function deploy(server: TestServer, version: string) {
  const deployed = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version, group: 'shop', force: true } });
  if (deployed.status !== 201) throw new Error(`deploy answered ${deployed.status}: ${deployed.raw}`);
}

function sameFiles(actual: Map<string, Buffer>, expected: Record<string, Buffer>): boolean {
  return actual.size === Object.keys(expected).length && Object.entries(expected).every(([name, bytes]) => actual.get(name)?.equals(bytes));
}

test('a release travels from push to two devices, is replaced, and a tampered one is refused', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } })).status, 201);
    const devices: TestDevice[] = [];
    try {
      devices.push(await startDevice(server, 'till-1', 'shop'), await startDevice(server, 'till-2', 'shop'));

      // 1.0.0: two artifacts, approved, deployed to the group.
      const v1 = { 'app.tar': randomBytes(256 * 1024), 'config.json': Buffer.from('{"currency":"EUR"}\n') };
      await publish(server, '1.0.0', v1);
      await deploy(server, '1.0.0');
      for (const device of devices) {
        // Switched is not finished: the device reports the new release as installed while its
        // health check runs ('testing'), and says 'installed' once it commits. Wait for that.
        await waitFor(`${device.id} on 1.0.0`, async () => {
          const record = await deviceRecord(server, device.id);
          return record?.installed?.version === '1.0.0' && record.state !== 'testing' ? true : undefined;
        });
        t.true(sameFiles(await readCurrent(device.dir), v1), `${device.id} holds exactly the 1.0.0 bytes`);
        t.like(await deviceRecord(server, device.id), { state: 'installed', installed: { bundle: 'pos-app', version: '1.0.0' }, error: null });
      }

      // 1.1.0 replaces it: one artifact changed, one removed, one added.
      const v11 = { 'app.tar': randomBytes(300 * 1024), 'pos.img': randomBytes(64 * 1024) };
      await publish(server, '1.1.0', v11);
      await deploy(server, '1.1.0');
      for (const device of devices) {
        await waitFor(`${device.id} on 1.1.0`, async () => ((await deviceRecord(server, device.id))?.installed?.version === '1.1.0' ? true : undefined));
        t.true(sameFiles(await readCurrent(device.dir), v11), `${device.id} holds exactly the 1.1.0 bytes`);
      }

      // 1.2.0 is approved, then its blob is altered on the server's disk: devices must refuse it.
      const v12 = { 'app.tar': randomBytes(128 * 1024) };
      await publish(server, '1.2.0', v12);
      const artifact = (await server.api('GET', '/api/v1/bundles/pos-app/versions/1.2.0/artifacts/app.tar')).body;
      const hex = artifact.digest.slice('sha256:'.length);
      const blobFile = path.join(server.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
      const tampered = Buffer.from(v12['app.tar']);
      tampered[1000] = tampered[1000]! ^ 0xff;
      await fs.writeFile(blobFile, tampered);
      await deploy(server, '1.2.0');
      for (const device of devices) {
        const record = await waitFor(`${device.id} to refuse 1.2.0`, async () => {
          const r = await deviceRecord(server, device.id);
          return r?.state === 'failed' ? r : undefined;
        });
        t.is(record.error.code, 'digest_mismatch');
        t.regex(record.error.message, /signed hash/);
        t.deepEqual(record.installed, { bundle: 'pos-app', version: '1.1.0' });
        t.deepEqual(record.target, { bundle: 'pos-app', version: '1.2.0' });
        t.true(sameFiles(await readCurrent(device.dir), v11), `${device.id} still holds exactly the 1.1.0 bytes`);
        t.is(device.process.exitCode, null, `${device.id} keeps running`);
      }
    } catch (error) {
      for (const device of devices) t.log(`--- ${device.id}\n${device.logs.join('').slice(-4000)}`);
      throw error;
    } finally {
      await Promise.all(devices.map((d) => d.stop()));
      await Promise.all(devices.map((d) => fs.rm(d.dir, { recursive: true, force: true })));
    }
  });
});

test('a device that connects after the deployment still gets the release (retained notice), also across a server restart', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    const files = { 'app.bin': randomBytes(10_000) };
    await publish(server, '2.0.0', files);
    await deploy(server, '2.0.0');
    await server.restart();
    const device = await startDevice(server, 'late-1', 'shop');
    try {
      await waitFor('late device on 2.0.0', async () => ((await deviceRecord(server, 'late-1'))?.installed?.version === '2.0.0' ? true : undefined));
      t.true(sameFiles(await readCurrent(device.dir), files));
    } finally {
      await device.stop();
      await fs.rm(device.dir, { recursive: true, force: true });
    }
  });
});
