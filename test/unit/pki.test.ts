import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import {
  createDeviceCsr,
  createIntermediateCa,
  createRootCa,
  createServerCertificate,
  generateKeyPem,
  PkiError,
  readCsr,
  renewalTime,
  signDeviceCsr,
  type KeyPair,
} from '../../certs/pki.ts';
import { convoy } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/server.ts';

/*
 * The fleet PKI checked as its users will: node's own X.509 parser verifies each chain, and real
 * TLS handshakes on loopback (node's tls, OpenSSL underneath) accept the fleet's certificates and
 * refuse everything else.
 */

const now = new Date();
const root = createRootCa({ name: 'Test fleet root CA', now });
const intermediate = createIntermediateCa({ issuer: root, name: 'Test fleet issuing CA', now });
const server = createServerCertificate({ issuer: intermediate, dns: ['localhost'], ip: ['127.0.0.1'], now });

function device(id: string, issuer: KeyPair = intermediate, at = now, days?: number): KeyPair {
  const keyPem = generateKeyPem();
  const csrPem = createDeviceCsr({ deviceId: id, keyPem });
  return { keyPem, certPem: signDeviceCsr({ issuer, csrPem, deviceId: id, now: at, ...(days ? { days } : {}) }) };
}

test('the chain verifies: root self-signed CA, intermediate CA with pathLen 0, server and device leaves', (t) => {
  const r = new X509Certificate(root.certPem);
  const i = new X509Certificate(intermediate.certPem);
  const s = new X509Certificate(server.certPem);
  const d = new X509Certificate(device('dev-1').certPem);
  t.true(r.ca && r.verify(r.publicKey));
  t.true(i.ca && i.verify(r.publicKey) && i.checkIssued(r));
  t.true(s.verify(i.publicKey) && s.checkIssued(i));
  t.true(d.verify(i.publicKey) && d.checkIssued(i));
  t.false(d.ca);
  t.false(d.verify(r.publicKey), 'the device is signed by the intermediate, not the root');
  t.is(s.checkHost('localhost'), 'localhost');
  t.is(s.checkIP('127.0.0.1'), '127.0.0.1');
  t.is(s.checkHost('example.com'), undefined);
  t.regex(d.subject, /CN=dev-1/);
  t.deepEqual(d.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'device certificates are for client authentication only');
  t.deepEqual(s.keyUsage, ['1.3.6.1.5.5.7.3.1']);
});

test('device certificates are short-lived and renew at two thirds of their lifetime', (t) => {
  const d = new X509Certificate(device('dev-2').certPem);
  const lifetime = Date.parse(d.validTo) - Date.parse(d.validFrom);
  t.true(lifetime <= 31 * 24 * 3600 * 1000 && lifetime >= 29 * 24 * 3600 * 1000);
  const renew = renewalTime(device('dev-2').certPem).getTime();
  t.true(renew > now.getTime() + 19 * 24 * 3600 * 1000 && renew < now.getTime() + 21 * 24 * 3600 * 1000);
});

test('a CSR is refused when its signature does not verify, its name is not the device id, or its key is not RSA 2048', (t) => {
  const keyPem = generateKeyPem();
  const csrPem = createDeviceCsr({ deviceId: 'dev-3', keyPem });
  t.is(readCsr(csrPem).commonName, 'dev-3');
  t.is(t.throws(() => signDeviceCsr({ issuer: intermediate, csrPem, deviceId: 'dev-4', now }), { instanceOf: PkiError })!.code, 'bad_csr');
  // One flipped byte in the body: the self-signature (proof of possession) no longer holds.
  const body = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
  body[40] = body[40]! ^ 0xff;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${body.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  t.is(t.throws(() => readCsr(tampered), { instanceOf: PkiError })!.code, 'bad_csr');
  t.is(t.throws(() => readCsr('not a csr'), { instanceOf: PkiError })!.code, 'bad_csr');
  t.is(t.throws(() => signDeviceCsr({ issuer: server, csrPem, deviceId: 'dev-3', now }), { instanceOf: PkiError })!.code, 'not_a_ca', 'a leaf certificate cannot issue');
  t.is(t.throws(() => createServerCertificate({ issuer: intermediate, dns: ['bad name'], ip: [], now }), { instanceOf: PkiError })!.code, 'bad_name');
  t.is(t.throws(() => createServerCertificate({ issuer: intermediate, dns: [], ip: ['300.1.1.1'], now }), { instanceOf: PkiError })!.code, 'bad_name');
});

/** A mutual-TLS server on loopback trusting the fleet root; resolves with what the handshake gave. */
async function handshake(client: { cert?: string; key?: string; ca?: string; servername?: string }): Promise<{ ok: true; peer: string } | { ok: false; error: string }> {
  const listener = tls.createServer({ cert: server.certPem + intermediate.certPem, key: server.keyPem, ca: root.certPem, requestCert: true, rejectUnauthorized: true });
  const seen = new Promise<string>((resolve) => listener.on('secureConnection', (socket) => {
    resolve((socket.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN ?? '');
    socket.end('hello');
  }));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      // The client sends its chain (leaf, then intermediate); the server holds only the root.
      const socket = tls.connect({ port, host: '127.0.0.1', ca: client.ca ?? root.certPem, servername: client.servername ?? 'localhost', ...(client.cert ? { cert: client.cert, key: client.key } : {}) });
      socket.on('error', (error) => resolve({ ok: false, error: (error as NodeJS.ErrnoException).code ?? error.message }));
      socket.on('data', () => {
        void seen.then((peer) => resolve({ ok: true, peer }));
        socket.end();
      });
      socket.on('end', () => resolve({ ok: false, error: 'closed by the server' }));
    });
  } finally {
    listener.close();
  }
}

test('real TLS: a device certificate from the fleet CA authenticates; the server proves its name', async (t) => {
  const d = device('dev-5');
  const result = await handshake({ cert: d.certPem + intermediate.certPem, key: d.keyPem });
  t.deepEqual(result, { ok: true, peer: 'dev-5' });
  const wrongName = await handshake({ cert: d.certPem + intermediate.certPem, key: d.keyPem, servername: 'other.example' });
  t.false(wrongName.ok, 'the server certificate does not name other.example');
});

test('real TLS: no certificate, another CA, an expired or not yet valid certificate, or a server certificate used as a client are refused', async (t) => {
  t.false((await handshake({})).ok, 'no client certificate');
  const otherRoot = createRootCa({ name: 'Someone else', now });
  const stranger = device('dev-6', otherRoot);
  t.false((await handshake({ cert: stranger.certPem, key: stranger.keyPem })).ok, 'signed by another CA');
  const expired = device('dev-7', intermediate, new Date(now.getTime() - 40 * 24 * 3600 * 1000));
  t.false((await handshake({ cert: expired.certPem + intermediate.certPem, key: expired.keyPem })).ok, 'expired');
  const future = device('dev-8', intermediate, new Date(now.getTime() + 2 * 24 * 3600 * 1000));
  t.false((await handshake({ cert: future.certPem + intermediate.certPem, key: future.keyPem })).ok, 'not yet valid');
  t.false((await handshake({ cert: server.certPem + intermediate.certPem, key: server.keyPem })).ok, 'a serverAuth-only certificate is not a client certificate');
});

test('convoy ca init writes the layout with private keys 0600 in 0700 folders, and its certificates verify', async (t) => {
  const dir = path.join(await makeTempDir('convoy-ca-'), 'fleet');
  const result = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', dir, '--name', 'Acme fleet', '--dns', 'updates.acme.test', '--ip', '127.0.0.1'], { token: null });
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /root stays offline/);
  for (const key of ['root/ca.key', 'server/issuer.key', 'server/tls.key', 'server/mqtt-client.key']) t.is((await fs.stat(path.join(dir, key))).mode & 0o777, 0o600, key);
  for (const folder of ['root', 'server']) t.is((await fs.stat(path.join(dir, folder))).mode & 0o777, 0o700, folder);
  const rootCert = new X509Certificate(await fs.readFile(path.join(dir, 'ca.pem')));
  const issuerCert = new X509Certificate(await fs.readFile(path.join(dir, 'server/issuer.pem')));
  const tlsCert = new X509Certificate(await fs.readFile(path.join(dir, 'server/tls.pem')));
  t.regex(rootCert.subject, /Acme fleet root CA/);
  t.true(issuerCert.checkIssued(rootCert) && issuerCert.verify(rootCert.publicKey));
  t.true(tlsCert.verify(issuerCert.publicKey));
  t.is(tlsCert.checkHost('updates.acme.test'), 'updates.acme.test');
  t.is(tlsCert.checkIP('127.0.0.1'), '127.0.0.1');

  const again = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', dir, '--name', 'Acme fleet', '--dns', 'x.test'], { token: null });
  t.is(again.code, 1);
  t.regex(again.stderr, /not empty: refusing to overwrite key material/);
  const noNames = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', dir + '2', '--name', 'Acme'], { token: null });
  t.is(noNames.code, 1);
  t.regex(noNames.stderr, /--dns HOST or --ip ADDR/);
  const badIp = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', dir + '3', '--name', 'Acme', '--ip', 'nope'], { token: null });
  t.is(badIp.code, 1);
  t.regex(badIp.stderr, /"nope" is not an IP address/);
});

test('convoy ca init --no-intermediate: the root signs, and the server folder holds its key', async (t) => {
  const dir = path.join(await makeTempDir('convoy-ca-'), 'fleet');
  const result = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', dir, '--name', 'Small fleet', '--dns', 'localhost', '--no-intermediate'], { token: null });
  t.is(result.code, 0, result.stderr);
  t.is(await fs.readFile(path.join(dir, 'server/issuer.pem'), 'utf8'), await fs.readFile(path.join(dir, 'ca.pem'), 'utf8'));
});
