import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createRootCa, createServerCertificate } from '../../certs/pki.ts';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord } from '../helpers/device.ts';
import { makeTempDir, withServer, type TestServer } from '../helpers/server.ts';
import { startTlsFront } from '../helpers/tls-front.ts';

/*
 * `convoyd enroll --ca FILE` / `--ca-fingerprint SHA256`: the enrollment request itself is pinned
 * to the fleet's certificate chain, so the token never reaches an impostor. The server's HTTP
 * port sits behind TLS here as in production (a TLS front with the server's certificate, its
 * chain up to the fleet root); the impostor is an HTTPS server with a certificate of another CA
 * that counts what reaches it. Real processes, real TLS on loopback.
 */

const exec = promisify(execFile);

async function convoyd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoydBin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function makeToken(server: TestServer): Promise<string> {
  const made = await convoy(server.url, ['device', 'token', '--group', 'field', '--ttl', '1h', '--uses', '5', '--json']);
  if (made.code !== 0) throw new Error(made.stderr);
  return JSON.parse(made.stdout).token;
}

test('enroll --ca / --ca-fingerprint: a matching chain enrolls; an impostor gets no request and the token stays unspent; unpinned https and plain http say how the token travels', async (t) => {
  await withServer(
    t,
    async (server) => {
      const pki = path.join(server.dataDir, 'pki');
      const read = (name: string) => fs.readFile(path.join(pki, name), 'utf8');
      const caPem = await read('ca.pem');
      // The front presents the server certificate and the chain up to the fleet root.
      const front = await startTlsFront((await read('tls.pem')) + caPem, await read('tls.key'), server.url);
      const mallory = createRootCa({ name: 'Mallory', now: new Date() });
      const fake = createServerCertificate({ issuer: mallory, dns: ['localhost'], ip: ['127.0.0.1'], now: new Date() });
      const impostor = await startTlsFront(fake.certPem + mallory.certPem, fake.keyPem);
      const base = await makeTempDir('convoy-pin-');
      const caFile = path.join(base, 'ca.pem');
      await fs.writeFile(caFile, caPem);
      const fingerprint = new X509Certificate(caPem).fingerprint256;
      const token = await makeToken(server);
      const enroll = (url: string, id: string, pin: string[]) => convoyd(['enroll', '--server', url, '--token', token, '--dir', path.join(base, id), '--id', id, ...pin]);
      try {
        // The impostor: refused before a byte of HTTP, with either pin.
        const byCa = await enroll(impostor.url, 'p-1', ['--ca', caFile]);
        t.is(byCa.code, 1);
        t.regex(byCa.stderr, /refusing to send the token to https:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted/);
        const byFingerprint = await enroll(impostor.url, 'p-1', ['--ca-fingerprint', fingerprint]);
        t.is(byFingerprint.code, 1);
        t.regex(byFingerprint.stderr, /refusing to send the token .*no certificate with the pinned SHA-256 fingerprint.*nothing was sent/);
        t.deepEqual(impostor.requests, [], 'the impostor received no request: the token never left the device');
        t.is(await deviceRecord(server, 'p-1'), undefined);

        // The real server behind its TLS: both pins enroll (the token had not been spent).
        const pinned = await enroll(front.url, 'p-1', ['--ca', caFile]);
        t.is(pinned.code, 0, pinned.stderr);
        t.notRegex(pinned.stderr, /warning|note/);
        const printed = await enroll(front.url, 'p-2', ['--ca-fingerprint', fingerprint.replaceAll(':', '').toLowerCase()]);
        t.is(printed.code, 0, printed.stderr);
        t.deepEqual(front.requests, ['POST /api/v1/enroll', 'POST /api/v1/enroll']);
        t.is((await deviceRecord(server, 'p-2')).group, 'field');
        // Enrolled against a server with a mutual-TLS listener: the device's API is there.
        const config = JSON.parse(await fs.readFile(path.join(base, 'p-1', 'device.json'), 'utf8'));
        t.is(config.serverUrl, `https://127.0.0.1:${server.httpsPort}`);
        // Renewal goes there too, with the certificate alone (no token file exists).
        const renewed = await convoyd(['renew', '--config', path.join(base, 'p-1', 'device.json'), '--force']);
        t.is(renewed.code, 0, renewed.stderr);
        t.regex(renewed.stdout, /renewed: the certificate is valid until/);

        // Unpinned https: the system trust store decides (it does not know the fleet CA) and says so.
        const unpinned = await enroll(front.url, 'p-3', []);
        t.regex(unpinned.stderr, /no --ca or --ca-fingerprint: the server's certificate is checked against the system's trust store/);
        t.is(unpinned.code, 1);
        t.regex(unpinned.stderr, /not trusted/);
        t.is(front.requests.length, 2, 'nothing sent to a server the trust store does not vouch for');

        // Plain http works, with a warning that the token travels in clear.
        const clear = await enroll(server.url, 'p-4', []);
        t.is(clear.code, 0, clear.stderr);
        t.regex(clear.stderr, /plain http: the enrollment token travels in clear/);

        // Flag mistakes are usage errors.
        t.is((await enroll(front.url, 'p-5', ['--ca', caFile, '--ca-fingerprint', fingerprint])).code, 2);
        t.is((await enroll(front.url, 'p-5', ['--ca-fingerprint', 'abc'])).code, 2);
        t.is((await enroll(server.url, 'p-5', ['--ca', caFile])).code, 2);
      } finally {
        await front.close();
        await impostor.close();
        await fs.rm(base, { recursive: true, force: true });
      }
    },
    { httpsPort: 0, mqttsPort: 0 },
  );
});
