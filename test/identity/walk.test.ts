import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceRecord, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { adminToken, makeTempDir, waitFor, withServer } from '../helpers/server.ts';
import { startTlsFront } from '../helpers/tls-front.ts';
import { runShell, walkBin, walkBlock } from '../helpers/walk.ts';

/*
 * docs/device-install.md, "Enrolling a device with its own key", run as written: the shell blocks
 * marked `<!-- walk: … -->` are run by bash with `convoy` and `convoyd` on the PATH. Only what
 * cannot be real here is replaced: the server's address (convoy.example.com, 10.0.0.5) by
 * loopback and /etc/convoy by a temp dir.
 */

const doc = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/device-install.md');
const block = (name: string) => walkBlock(doc, name);
const shell = runShell;

test('the enrollment walk of docs/device-install.md, as written: CA, token, enroll, run under mTLS, install, revoke', async (t) => {
  const work = await makeTempDir('convoy-walk-');
  const bin = await walkBin(work);
  const etc = path.join(work, 'etc-convoy');
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const ca = await shell((await block('ca')).replaceAll('10.0.0.5', '127.0.0.1'), { cwd: work, env });
  t.is(ca.code, 0, ca.stderr);

  await withServer(t, async (server) => {
    // The server's API behind TLS, as the guide asks (a reverse proxy with the server certificate).
    const serverPki = path.join(work, 'fleet-ca', 'server');
    const front = await startTlsFront(await fs.readFile(path.join(serverPki, 'tls.pem'), 'utf8'), await fs.readFile(path.join(serverPki, 'tls.key'), 'utf8'), server.url);
    t.teardown(() => front.close());
    const local = (script: string) =>
      script
        .replaceAll('http://convoy.example.com:8080', server.url)
        .replaceAll('https://convoy.example.com', front.url)
        .replaceAll('mqtts://convoy.example.com:8883', `mqtts://127.0.0.1:${server.mqttsPort}`)
        .replaceAll('/etc/convoy', etc);
    const operatorEnv = { ...env, CONVOY_URL: server.url, CONVOY_TOKEN: adminToken };
    const enrolled = await shell(local(await block('enroll')), { cwd: work, env: operatorEnv });
    t.is(enrolled.code, 0, enrolled.stderr);
    for (const file of ['device.key', 'device.pem', 'ca.pem', 'root.json', 'device.json']) t.true(enrolled.stdout.includes(file), `${file} in /etc/convoy`);
    t.false(enrolled.stdout.includes('device.token'), 'on HTTPS and MQTT over TLS no token is kept');
    t.deepEqual(front.requests, ['POST /api/v1/enroll'], 'enrolled through the pinned TLS front');
    t.is((await fs.stat(path.join(etc, 'device.key'))).mode & 0o777, 0o600);

    await publishRelease(server, 'pos', '1.0.0', [{ name: 'app.txt', type: 'file', bytes: Buffer.from('walk\n') }]);
    const daemon = runDaemon('till-042', etc);
    try {
      await deploy(server, 'pos', '1.0.0', 'shop-berlin');
      await waitFor('till-042 to install 1.0.0', async () => ((await deviceRecord(server, 'till-042'))?.installed?.version === '1.0.0' ? true : undefined), 90_000);

      const revoked = await shell(local(await block('revoke')), { cwd: work, env: operatorEnv });
      t.is(revoked.code, 0, revoked.stderr);
      // Cut off at once: the session is closed and the certificate no longer signs in.
      await waitFor('the revoked device to be refused on MQTT', () => (server.logs.some((l) => l.includes('MQTT certificate refused') && l.includes('till-042')) ? true : undefined), 30_000);
      const read = (name: string) => fs.readFile(path.join(etc, name), 'utf8');
      const again = await mqtt
        .connectAsync(`mqtts://127.0.0.1:${server.mqttsPort}`, { clientId: 'convoyd-till-042', cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem'), reconnectPeriod: 0, connectTimeout: 10_000 })
        .then((client) => client.endAsync().then(() => 'connected'), (error: Error) => error.message);
      t.not(again, 'connected');
    } finally {
      await daemon.stop();
    }
  }, { pkiDir: path.join(work, 'fleet-ca', 'server'), mqttsPort: 0, httpsPort: 0 });
});
