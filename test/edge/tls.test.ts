import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import { isIP } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import { createDeviceCsr, createRootCa, createServerCsr, generateKeyPem, signDeviceCsr, signServerCsr, PkiError } from '../../certs/pki.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { addEdge, copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * Enrolled devices behind an edge (issues #11 and #12): the edge's HTTPS certificate is signed
 * by the origin's fleet CA (serverAuth only, for the names devices dial), the edge's listener
 * takes a device's fleet certificate as the device once the origin says it still holds, and the
 * real convoyd, enrolled with no token on disk, installs through the edge over mutual TLS.
 * Real origin, real edge, real sockets on loopback; revocation within a short cache setting.
 */

const exec = promisify(execFile);
const serverAuth = '1.3.6.1.5.5.7.3.1';
const clientAuth = '1.3.6.1.5.5.7.3.2';

interface Identity {
  dir: string;
  cert: string;
  key: string;
  ca: string;
}

async function enroll(origin: TestServer, id: string, group: string): Promise<Identity> {
  const made = await convoy(origin.url, ['device', 'token', '--group', group, '--ttl', '10m', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  const dir = path.join(await makeTempDir('convoy-edge-tls-'), id);
  await exec(process.execPath, [convoydBin, 'enroll', '--server', origin.url, '--token', JSON.parse(made.stdout).token, '--dir', dir, '--id', id, '--mqtt-url', `mqtts://127.0.0.1:${origin.mqttsPort}`]);
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
  return { dir, cert: await read('device.pem'), key: await read('device.key'), ca: await read('ca.pem') };
}

function httpsGet(url: string, urlPath: string, identity: { cert?: string; key?: string; ca: string }): Promise<{ status: number; body: string } | { error: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const req = https.request({ host: hostname, port, path: urlPath, method: 'GET', ...identity, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

/** The certificate a TLS server presents, verified against `ca` for the name dialled. */
function presented(url: string, ca: string): Promise<{ authorized: boolean; cert: X509Certificate }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca, ...(isIP(hostname) ? {} : { servername: hostname }) }, () => {
      const raw = socket.getPeerCertificate().raw;
      resolve({ authorized: socket.authorized, cert: new X509Certificate(raw) });
      socket.end();
    });
    socket.on('error', reject);
  });
}

const statusOf = (answer: { status: number } | { error: string }) => ('status' in answer ? answer.status : answer.error);

test('signServerCsr: a serverAuth-only certificate for the names asked; a CSR naming something else is refused', (t) => {
  const ca = createRootCa({ name: 'Fleet', now: new Date() });
  const key = generateKeyPem();
  const pem = signServerCsr({ issuer: ca, csrPem: createServerCsr({ name: 'edge.shop.example', keyPem: key }), dns: ['edge.shop.example'], ip: ['10.0.0.5'], now: new Date() });
  const cert = new X509Certificate(pem);
  t.deepEqual(cert.keyUsage, [serverAuth], 'it can never sign a device in');
  t.true(cert.checkHost('edge.shop.example') !== undefined);
  t.true(cert.checkIP('10.0.0.5') !== undefined);
  t.true(cert.verify(new X509Certificate(ca.certPem).publicKey));
  t.throws(() => signServerCsr({ issuer: ca, csrPem: createServerCsr({ name: 'origin.example', keyPem: key }), dns: ['edge.shop.example'], ip: [], now: new Date() }), { instanceOf: PkiError, message: /not the first name/ });
  t.throws(() => signServerCsr({ issuer: ca, csrPem: createServerCsr({ name: 'bad name', keyPem: key }), dns: ['bad name'], ip: [], now: new Date() }), { instanceOf: PkiError });
});

test('an enrolled device (no token) behind an edge: the edge holds a fleet certificate, the device installs over mTLS from it, another CA is refused, a revoked certificate is refused', async (t) => {
  const work = await makeTempDir('convoy-edge-tls-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const rootFile = await copyRoot(origin, work);
    const token = await addEdge(origin, 'shop-eu');
    // A one-second credential cache: a revocation is seen within it (the default is 60 s).
    const edge = await startTestEdge({ upstreamUrl: proxy.url, token, rootFile, overrides: { httpsPort: 0, tlsNames: { dns: ['localhost'], ip: ['127.0.0.1'] }, authFreshMs: 1000 } });
    let daemon: ReturnType<typeof runDaemon> | undefined;
    try {
      t.truthy(edge.httpsUrl);
      const device = await enroll(origin, 'till-1', 'shop-tills');
      await t.throwsAsync(fs.stat(path.join(device.dir, 'device.token')), { code: 'ENOENT' }, 'the device is its certificate');

      // The edge's certificate chains to the fleet root the device pins, for the names it dials, serverAuth only.
      const shown = await presented(edge.httpsUrl!, device.ca);
      t.true(shown.authorized);
      t.truthy(shown.cert.checkIP('127.0.0.1'));
      t.deepEqual(shown.cert.keyUsage, [serverAuth]);
      t.true(Date.parse(shown.cert.validTo) - Date.now() <= 31 * 86_400_000, 'short-lived, renewed by the edge');
      t.false(shown.cert.keyUsage?.includes(clientAuth));
      // The key stayed on the edge; the certificate is kept for the next start.
      t.is((await fs.stat(path.join(edge.dataDir, 'tls', 'edge.key'))).mode & 0o777, 0o600);

      // An edge token is the only way in: a device's certificate cannot ask for one.
      const csr = createServerCsr({ name: 'localhost', keyPem: generateKeyPem() });
      const asDevice = await new Promise<number>((resolve) => {
        const req = https.request({ host: '127.0.0.1', port: origin.httpsPort, path: '/api/v1/edge/certificate', method: 'POST', headers: { 'content-type': 'application/json' }, cert: device.cert, key: device.key, ca: device.ca, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.end(JSON.stringify({ csr, dns: ['localhost'] }));
      });
      t.is(asDevice, 403);
      const misnamed = await fetch(`${origin.url}/api/v1/edge/certificate`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr, dns: ['other.example'] }) });
      t.is(misnamed.status, 400);
      t.like(await misnamed.json(), { error: { code: 'invalid_request' } });

      // A release mirrored to the edge by policy.
      t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } })).status, 201);
      const bytes = Buffer.from('till software 1.0.0\n');
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      const [run] = await runsOf(origin, 'pos');
      t.is((await finishedRun(origin, 'pos', run!.id)).run.status, 'succeeded');
      const blob = `/api/v1/blobs/${sha256Digest(bytes)}`;
      t.is(proxy.reads.get(blob), 1, 'the edge read the artifact once');

      // device.json: the edge first (HTTPS only), the origin second (its HTTPS and its MQTT over TLS).
      const file = path.join(device.dir, 'device.json');
      const { serverUrl: _s, mqttUrl: _m, ...config } = JSON.parse(await fs.readFile(file, 'utf8'));
      const originHttps = `https://127.0.0.1:${origin.httpsPort}`;
      await fs.writeFile(file, JSON.stringify({ ...config, servers: [{ url: edge.httpsUrl }, { url: originHttps, mqttUrl: `mqtts://127.0.0.1:${origin.mqttsPort}` }] }));
      daemon = runDaemon('till-1', device.dir);
      await deploy(origin, 'pos', '1.0.0', 'shop-tills');
      await waitFor('till-1 on 1.0.0', async () => ((await deviceRecord(origin, 'till-1'))?.installed?.version === '1.0.0' ? true : undefined), 60_000);
      t.deepEqual(await fs.readFile(path.join(device.dir, 'current', 'app.bin')), bytes);
      const journal = JSON.parse(await fs.readFile(path.join(device.dir, 'journal.json'), 'utf8'));
      t.deepEqual(journal.update.servedBy, [edge.httpsUrl], 'metadata and bytes came from the edge');
      t.is(proxy.reads.get(blob), 1, 'the origin did not serve the blob again');
      await daemon.stop();
      daemon = undefined;

      // The release poll over the edge, by certificate: its own release, not another device's.
      const own = await httpsGet(edge.httpsUrl!, '/api/v1/devices/till-1/release', device);
      t.is(statusOf(own), 200, JSON.stringify(own));
      t.like(JSON.parse((own as { body: string }).body), { type: 'release', bundle: 'pos', version: '1.0.0' });
      t.is(statusOf(await httpsGet(edge.httpsUrl!, '/api/v1/devices/till-2/release', device)), 403);
      // Stock clients by certificate (issue 12): a signed target by path, and the registry's sign-in, at the edge as at the origin.
      t.is((await httpsGet(edge.httpsUrl!, '/tuf/targets/pos/1.0.0/artifacts/app.bin', device) as { body: string }).body, bytes.toString());
      t.is(statusOf(await httpsGet(edge.httpsUrl!, '/v2/', device)), 200);
      t.is(statusOf(await httpsGet(originHttps, '/v2/', device)), 200);
      t.is(statusOf(await httpsGet(edge.httpsUrl!, '/v2/', { ca: device.ca })), 401);
      // No certificate: a typed 401, no data.
      const anonymous = await httpsGet(edge.httpsUrl!, blob, { ca: device.ca });
      t.is(statusOf(anonymous), 401);
      t.is(JSON.parse((anonymous as { body: string }).body).error.code, 'unauthenticated');

      // A certificate of another CA, for the same device id: refused.
      const mallory = createRootCa({ name: 'Mallory', now: new Date() });
      const forgedKey = generateKeyPem();
      const forged = signDeviceCsr({ issuer: mallory, csrPem: createDeviceCsr({ deviceId: 'till-1', keyPem: forgedKey }), deviceId: 'till-1', now: new Date() });
      const stranger = await httpsGet(edge.httpsUrl!, blob, { ca: device.ca, cert: forged, key: forgedKey });
      t.true('error' in stranger || stranger.status === 401, JSON.stringify(stranger));

      // Renewal through the edge alone (its only server for this call): passed to the origin's CA.
      const servers = JSON.parse(await fs.readFile(file, 'utf8'));
      await fs.writeFile(file, JSON.stringify({ ...servers, servers: [{ url: edge.httpsUrl, mqttUrl: `mqtts://127.0.0.1:${origin.mqttsPort}` }] }));
      const renewed = await exec(process.execPath, [convoydBin, 'renew', '--config', file, '--force']).then(() => 0, (error: { code?: number; stderr?: string }) => (t.log(error.stderr), error.code ?? 1));
      t.is(renewed, 0, 'convoyd renew through the edge');
      await fs.writeFile(file, JSON.stringify(servers));
      const fresh = { ...device, cert: await fs.readFile(path.join(device.dir, 'device.pem'), 'utf8') };
      t.not(new X509Certificate(fresh.cert).serialNumber, new X509Certificate(device.cert).serialNumber, 'a new certificate');
      t.is(statusOf(await httpsGet(edge.httpsUrl!, blob, fresh)), 200, 'the renewed certificate is good at the edge');

      // Revoked at the origin: the edge refuses the certificate once its cached answer is older than 1 s.
      t.is(statusOf(await httpsGet(edge.httpsUrl!, blob, device)), 200);
      t.is((await convoy(origin.url, ['device', 'revoke', 'till-1'])).code, 0);
      const refused = await waitFor('the edge to refuse the revoked certificate', async () => {
        const answer = await httpsGet(edge.httpsUrl!, blob, fresh);
        return statusOf(answer) === 401 ? answer : undefined;
      }, 10_000);
      t.is(JSON.parse((refused as { body: string }).body).error.code, 'unauthenticated');
    } finally {
      await daemon?.stop();
      await edge.close();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
    }
  }, { mqttsPort: 0, httpsPort: 0 });
});

test('the edge renews its certificate at two thirds of its life, keeps it across a restart, and starts on it while the origin is out of reach', async (t) => {
  const work = await makeTempDir('convoy-edge-tls-renew-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const rootFile = await copyRoot(origin, work);
    const token = await addEdge(origin, 'shop-eu');
    const dataDir = await makeTempDir('convoy-edge-');
    const ca = await fs.readFile(path.join(origin.dataDir, 'pki', 'ca.pem'), 'utf8');
    const clock = { offsetMs: 0 };
    const options = { upstreamUrl: proxy.url, token, rootFile, dataDir, overrides: { httpsPort: 0, mqttsPort: 0, tlsNames: { dns: ['localhost'], ip: ['127.0.0.1'] } }, deps: { clock: () => Date.now() + clock.offsetMs, tlsRenewCheckMs: 100 } };
    let edge = await startTestEdge(options);
    try {
      const first = (await presented(edge.httpsUrl!, ca)).cert.serialNumber;
      clock.offsetMs = 19 * 86_400_000;
      await new Promise((resolve) => setTimeout(resolve, 500));
      t.is((await presented(edge.httpsUrl!, ca)).cert.serialNumber, first, 'not due before two thirds of 30 days');
      clock.offsetMs = 21 * 86_400_000;
      const renewed = await waitFor('a renewed edge certificate', async () => {
        const shown = await presented(edge.httpsUrl!, ca);
        return shown.cert.serialNumber !== first && shown.authorized ? shown.cert.serialNumber : undefined;
      }, 20_000);
      clock.offsetMs = 0;
      await new Promise((resolve) => setTimeout(resolve, 300));
      const kept = (await presented(edge.httpsUrl!, ca)).cert.serialNumber;
      t.not(kept, first);
      // MQTT over TLS serves the renewed certificate too (one certificate for both listeners;
      // under load the second listener may take a moment longer than the first).
      await waitFor('the MQTT listener to serve the renewed certificate', async () => ((await presented(`mqtts://127.0.0.1:${edge.mqttsPort}`, ca)).cert.serialNumber === kept ? true : undefined), 10_000);
      t.truthy(renewed);
      await edge.close();

      // Restarted with the link down: the certificate on disk, still valid, is served.
      proxy.down = true;
      edge = await startTestEdge(options);
      t.is((await presented(edge.httpsUrl!, ca)).cert.serialNumber, kept);
      await edge.close();
      // With no usable certificate and no origin, the edge does not start, and says why.
      await fs.rm(path.join(dataDir, 'tls'), { recursive: true });
      await t.throwsAsync(startTestEdge(options), { message: /edge TLS: no usable certificate/ });
      edge = undefined as never;
    } finally {
      await edge?.close();
      await proxy.close();
      await fs.rm(work, { recursive: true, force: true });
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }, { httpsPort: 0 });
});
