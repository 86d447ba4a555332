import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createDeviceCsr, createRootCa, generateKeyPem, signDeviceCsr } from '../../certs/pki.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord, hashTree, runDaemon } from '../helpers/device.ts';
import { deploy, expectedTree, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Enrollment as an operator and a device meet it: `convoy device token` on the workstation,
 * `convoyd enroll` on the device (real processes, real HTTP, real SQLite or PostgreSQL), then the
 * daemon runs from what enrollment wrote and installs a release.
 */

const exec = promisify(execFile);

async function convoyd(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoydBin, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function makeToken(server: TestServer, args: string[]): Promise<string> {
  const made = await convoy(server.url, ['device', 'token', ...args, '--json']);
  if (made.code !== 0) throw new Error(`convoy device token failed: ${made.stderr}`);
  return JSON.parse(made.stdout).token;
}

test('a device enrolls with a one-time token: its key stays on it (0600), it gets a certificate naming it, and the token is spent', async (t) => {
  await withServer(t, async (server) => {
    const token = await makeToken(server, ['--group', 'field', '--ttl', '1h']);
    t.regex(token, /^cve_/);
    const dir = path.join(await makeTempDir('convoy-enroll-'), 'device');
    const enrolled = await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', dir, '--id', 'pump-7']);
    t.is(enrolled.code, 0, enrolled.stderr);
    t.regex(enrolled.stdout, /enrolled device pump-7 in group field/);

    for (const file of ['device.key', 'device.token']) t.is((await fs.stat(path.join(dir, file))).mode & 0o777, 0o600, file);
    const config = JSON.parse(await fs.readFile(path.join(dir, 'device.json'), 'utf8'));
    t.like(config, { id: 'pump-7', group: 'field', serverUrl: server.url, certFile: 'device.pem', keyFile: 'device.key', caFile: 'ca.pem', rootFile: 'root.json' });
    const cert = new X509Certificate(await fs.readFile(path.join(dir, 'device.pem')));
    const ca = new X509Certificate(await fs.readFile(path.join(dir, 'ca.pem')));
    t.regex(cert.subject, /CN=pump-7/);
    t.true(cert.verify(ca.publicKey), 'the certificate chains to the fleet CA the device received');
    const root = JSON.parse(await fs.readFile(path.join(dir, 'root.json'), 'utf8'));
    t.is(root.signed._type, 'root');
    t.is((await deviceRecord(server, 'pump-7')).group, 'field');

    // One use: a second device with the same token is refused, and nothing is registered.
    const again = await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', path.join(dir, '..', 'other'), '--id', 'pump-8']);
    t.is(again.code, 1);
    t.regex(again.stderr, /invalid, expired or used up .*\(unauthenticated\)/);
    t.is(await deviceRecord(server, 'pump-8'), undefined);
  });
});

test('a token for a batch serves --uses devices; a taken id is refused without spending a use', async (t) => {
  await withServer(t, async (server) => {
    const token = await makeToken(server, ['--group', 'batch', '--ttl', '30m', '--uses', '2']);
    const base = await makeTempDir('convoy-enroll-');
    t.is((await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', path.join(base, 'a'), '--id', 'a-1'])).code, 0);
    const taken = await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', path.join(base, 'a2'), '--id', 'a-1']);
    t.is(taken.code, 1);
    t.regex(taken.stderr, /already registered/);
    t.is((await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', path.join(base, 'b'), '--id', 'a-2'])).code, 0, 'the refusal did not spend a use');
    const third = await convoyd(['enroll', '--server', server.url, '--token', token, '--dir', path.join(base, 'c'), '--id', 'a-3']);
    t.is(third.code, 1);
    t.regex(third.stderr, /used up/);

    const usage = await convoy(server.url, ['device', 'token', '--group', 'x']);
    t.is(usage.code, 2);
    const badTtl = await convoy(server.url, ['device', 'token', '--group', 'x', '--ttl', '9w']);
    t.is(badTtl.code, 1);
    t.regex(badTtl.stderr, /--ttl must be a duration/);
    const noAdmin = await convoy(server.url, ['device', 'token', '--group', 'x', '--ttl', '1h'], { token: null });
    t.is(noAdmin.code, 1);
  });
});

test('renewal keeps the key and needs the current certificate; a device offline past expiry enrolls again with a token for it', async (t) => {
  await withServer(t, async (server) => {
    const dir = path.join(await makeTempDir('convoy-enroll-'), 'device');
    t.is((await convoyd(['enroll', '--server', server.url, '--token', await makeToken(server, ['--group', 'g', '--ttl', '1h']), '--dir', dir, '--id', 'r-1'])).code, 0);
    const before = new X509Certificate(await fs.readFile(path.join(dir, 'device.pem')));
    const notDue = await convoyd(['renew', '--config', path.join(dir, 'device.json')]);
    t.is(notDue.code, 0, notDue.stderr);
    t.regex(notDue.stdout, /not due/);
    const renewed = await convoyd(['renew', '--config', path.join(dir, 'device.json'), '--force']);
    t.is(renewed.code, 0, renewed.stderr);
    const after = new X509Certificate(await fs.readFile(path.join(dir, 'device.pem')));
    t.not(after.serialNumber, before.serialNumber);
    t.true(after.publicKey.export({ type: 'spki', format: 'der' }).equals(before.publicKey.export({ type: 'spki', format: 'der' })), 'the same key');

    // Someone holding only the (public) certificate cannot renew it with a key of their own.
    const thief = generateKeyPem();
    const stolen = await server.api('POST', '/api/v1/enroll/renew', { token: null, json: { certificate: before.toString(), csr: createDeviceCsr({ deviceId: 'r-1', keyPem: thief }) } });
    t.is(stolen.status, 401);
    t.regex(stolen.body.error.message, /not the certificate's key/);
    // A certificate from another CA, even naming a real device, is refused.
    const otherCa = createRootCa({ name: 'Mallory', now: new Date() });
    const forged = signDeviceCsr({ issuer: otherCa, csrPem: createDeviceCsr({ deviceId: 'r-1', keyPem: thief }), deviceId: 'r-1', now: new Date() });
    const refused = await server.api('POST', '/api/v1/enroll/renew', { token: null, json: { certificate: forged, csr: createDeviceCsr({ deviceId: 'r-1', keyPem: thief }) } });
    t.is(refused.status, 401);
    t.regex(refused.body.error.message, /not issued by this fleet CA/);

    // The way back: a token for this one device; its key is kept, its certificate replaced.
    const groupToken = await makeToken(server, ['--group', 'g', '--ttl', '1h']);
    const notThisWay = await convoyd(['enroll', '--server', server.url, '--token', groupToken, '--dir', dir, '--id', 'r-1']);
    t.is(notThisWay.code, 1);
    t.regex(notThisWay.stderr, /convoy device token --device r-1/);
    const back = await convoyd(['enroll', '--server', server.url, '--token', await makeToken(server, ['--device', 'r-1', '--ttl', '1h']), '--dir', dir, '--id', 'r-1']);
    t.is(back.code, 0, back.stderr);
    const third = new X509Certificate(await fs.readFile(path.join(dir, 'device.pem')));
    t.true(third.publicKey.export({ type: 'spki', format: 'der' }).equals(before.publicKey.export({ type: 'spki', format: 'der' })));
    const wrongDevice = await convoyd(['enroll', '--server', server.url, '--token', await makeToken(server, ['--device', 'r-1', '--ttl', '1h']), '--dir', path.join(dir, '..', 'x'), '--id', 'r-2']);
    t.is(wrongDevice.code, 1);
    t.regex(wrongDevice.stderr, /is for device "r-1"/);
  });
});

test('an enrolled device runs from what enrollment wrote and installs a release', async (t) => {
  await withServer(t, async (server) => {
    const dir = path.join(await makeTempDir('convoy-enroll-'), 'device');
    const enrolled = await convoyd(['enroll', '--server', server.url, '--token', await makeToken(server, ['--group', 'line-1', '--ttl', '1h']), '--dir', dir, '--id', 'e2e-1', '--mqtt-url', `mqtt://127.0.0.1:${server.mqttPort}`]);
    t.is(enrolled.code, 0, enrolled.stderr);
    const artifacts: TestArtifact[] = [{ name: 'app.txt', type: 'file', bytes: Buffer.from('enrolled\n') }];
    await publishRelease(server, 'app', '1.0.0', artifacts);
    const device = runDaemon('e2e-1', dir);
    try {
      await deploy(server, 'app', '1.0.0', 'line-1');
      await waitFor('the enrolled device to install 1.0.0', async () => ((await deviceRecord(server, 'e2e-1'))?.installed?.version === '1.0.0' ? true : undefined), 60_000);
      t.deepEqual(await hashTree(path.join(dir, 'current')), expectedTree(artifacts));
    } finally {
      await device.stop();
    }
  });
});
