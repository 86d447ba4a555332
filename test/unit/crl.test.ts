import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createCrl } from '../../certs/crl.ts';
import { createDeviceCsr, createIntermediateCa, createRootCa, describeCertificate, generateKeyPem, PkiError, signDeviceCsr } from '../../certs/pki.ts';
import { makeTempDir } from '../helpers/server.ts';

/*
 * The fleet CA's revocation list (certs/crl.ts), checked by OpenSSL itself (`openssl verify
 * -crl_check`, the check Mosquitto's crlfile makes): the revoked certificate is refused, the
 * others pass, an empty list passes everyone, and the list lives as long as its issuer.
 */

const exec = promisify(execFile);

async function verify(dir: string, crl: string, cert: string): Promise<string> {
  await fs.writeFile(path.join(dir, 'crl.pem'), crl);
  await fs.writeFile(path.join(dir, 'cert.pem'), cert);
  const run = await exec('openssl', ['verify', '-crl_check', '-CAfile', path.join(dir, 'root.pem'), '-untrusted', path.join(dir, 'issuer.pem'), '-CRLfile', path.join(dir, 'crl.pem'), path.join(dir, 'cert.pem')]).catch((error: { stdout: string; stderr: string }) => error);
  return `${run.stdout}${run.stderr}`;
}

test('OpenSSL refuses a revoked device certificate and accepts the others, with an intermediate issuer', async (t) => {
  const dir = await makeTempDir('convoy-crl-');
  const now = new Date();
  const root = createRootCa({ name: 'Root', now });
  const issuer = createIntermediateCa({ issuer: root, name: 'Issuer', now });
  await fs.writeFile(path.join(dir, 'root.pem'), root.certPem);
  await fs.writeFile(path.join(dir, 'issuer.pem'), issuer.certPem);
  const key = generateKeyPem();
  const device = (id: string) => signDeviceCsr({ issuer, csrPem: createDeviceCsr({ deviceId: id, keyPem: key }), deviceId: id, now });
  const stolen = device('stolen');
  const fine = device('fine');
  const crl = createCrl({ issuer, revoked: [{ serial: describeCertificate(stolen).serial.toUpperCase(), revokedAt: now }], now });
  t.regex(await verify(dir, crl, stolen), /certificate revoked/);
  t.regex(await verify(dir, crl, fine), /: OK/);
  t.regex(await verify(dir, createCrl({ issuer, revoked: [], now }), stolen), /: OK/, 'an empty list refuses no one');
  const text = await exec('openssl', ['crl', '-in', path.join(dir, 'crl.pem'), '-noout', '-nextupdate', '-issuer']);
  t.regex(text.stdout, /issuer=CN ?= ?Issuer/);
  // nextUpdate is the issuer's expiry: a broker nobody reloads never holds an expired list.
  t.is(new Date(text.stdout.split('\n').find((l) => l.startsWith('nextUpdate='))!.slice('nextUpdate='.length)).getTime(), Math.floor(describeCertificate(issuer.certPem).notAfter.getTime() / 1000) * 1000);
});

test('a serial that is not hexadecimal is refused with a code', (t) => {
  const now = new Date();
  const root = createRootCa({ name: 'Root', now });
  const error = t.throws(() => createCrl({ issuer: root, revoked: [{ serial: 'zz', revokedAt: now }], now }), { instanceOf: PkiError });
  t.is(error?.code, 'bad_serial');
});
