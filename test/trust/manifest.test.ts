import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { bundleManifest, type BundleManifest } from '../../protocol/manifest.ts';
import { parseWith } from '../../protocol/parse.ts';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, pushArtifact, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';
import { addUsers } from './users.ts';

/*
 * Defect 2.2 of issue #9: the offline-signed manifest dropped the package metadata the
 * server-signed one keeps, and approvals were tied to a fingerprint that ignored it. One
 * builder now makes the manifest for both paths, and the fingerprint covers what it signs.
 */

const exec = promisify(execFile);

async function convoy(url: string, token: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoyBin, ...args], { env: { ...process.env, CONVOY_URL: url, CONVOY_TOKEN: token } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const firmware = Buffer.from('firmware image 7\n');
const firmwarePackage = { format: 'generic', name: 'till-firmware', version: '7', architecture: 'armhf' };

/** The same draft on any server: a plain file and a package with its metadata. */
async function pushContent(server: TestServer, bundle: string, version: string): Promise<void> {
  await server.api('POST', '/api/v1/bundles', { json: { name: bundle } });
  await pushArtifact(server, bundle, version, 'app.txt', Buffer.from('app\n'));
  const digest = sha256Digest(firmware);
  await server.api('PUT', `/api/v1/blobs/${digest}`, { body: firmware });
  const put = await server.api('PUT', `/api/v1/bundles/${bundle}/versions/${version}/artifacts/firmware.bin`, {
    json: { type: 'package', digest, size: firmware.length, package: firmwarePackage },
  });
  if (put.status !== 201) throw new Error(`artifact put answered ${put.status}: ${put.raw}`);
}

async function signedManifest(server: TestServer, bundle: string, version: string): Promise<BundleManifest> {
  const shown = await server.api('GET', `/api/v1/bundles/${bundle}/versions/${version}`);
  if (shown.body.status !== 'approved') throw new Error(`${bundle}@${version} is ${shown.body.status}`);
  const raw = (await server.api('GET', `/api/v1/blobs/${shown.body.manifestDigest}`)).raw;
  return parseWith(bundleManifest, JSON.parse(raw.toString('utf8')), 'manifest');
}

test('offline-signed and server-signed manifests of the same content are equal, package metadata included', async (t) => {
  const work = await makeTempDir('convoy-manifest-');
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));

  let serverSigned: BundleManifest | undefined;
  await withServer(t, async (server) => {
    await pushContent(server, 'pos-app', '1.0.0');
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve')).status, 200);
    serverSigned = await signedManifest(server, 'pos-app', '1.0.0');
  });

  // Offline targets: one approver key signs what the server proposes (`convoy bundle sign`).
  const key = path.join(work, 'alice');
  t.is((await convoy('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'generate', '--out', key])).code, 0);
  const keysDir = path.join(work, 'keys');
  const init = await convoy('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'init', '--out', keysDir, '--targets-key', `${key}.pub.json`, '--targets-threshold', '1']);
  t.is(init.code, 0, init.stderr);
  const dataDir = path.join(work, 'data');
  await fs.cp(path.join(keysDir, 'server'), dataDir, { recursive: true });
  let offlineSigned: BundleManifest | undefined;
  await withServer(
    t,
    async (server) => {
      await pushContent(server, 'pos-app', '1.0.0');
      const signed = await convoy(server.url, adminToken, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key}.pem`]);
      t.is(signed.code, 0, signed.stderr);
      offlineSigned = await signedManifest(server, 'pos-app', '1.0.0');
    },
    { dataDir },
  );

  const { approvedAt: _a, ...fromServer } = serverSigned!;
  const { approvedAt: _b, ...fromOffline } = offlineSigned!;
  t.deepEqual(fromOffline, fromServer);
  t.deepEqual(fromOffline.artifacts.find((a) => a.name === 'firmware.bin')?.package, firmwarePackage);
});

test('a change of package metadata voids the approvals given before it', async (t) => {
  await withServer(t, async (server) => {
    const users = await addUsers(server, ['alice', 'bob']);
    await pushContent(server, 'pos-app', '1.0.0');
    const base = '/api/v1/bundles/pos-app/versions/1.0.0';
    t.is((await server.api('PUT', '/api/v1/bundles/pos-app/trust-policy', { json: { requiredApprovals: 2 } })).status, 200);
    const first = await server.api('POST', `${base}/approve`, { token: users.alice! });
    t.is(first.status, 200);
    t.deepEqual(first.body.approvals.by.map((a: { principal: string }) => a.principal), ['alice']);

    // Same bytes, a different claim about them: what alice approved is not this.
    const patched = await server.api('PATCH', `${base}/artifacts/firmware.bin`, { json: { package: { ...firmwarePackage, version: '8' } } });
    t.is(patched.status, 200);
    t.deepEqual((await server.api('GET', `${base}/approvals`)).body.approvals.by, []);

    const second = await server.api('POST', `${base}/approve`, { token: users.bob! });
    t.is(second.status, 200);
    t.is(second.body.status, 'draft', "bob's approval alone does not meet the threshold of 2");
    t.deepEqual(second.body.approvals.by.map((a: { principal: string }) => a.principal), ['bob']);
    const third = await server.api('POST', `${base}/approve`, { token: users.alice! });
    t.is(third.body.status, 'approved');
    t.deepEqual((await signedManifest(server, 'pos-app', '1.0.0')).artifacts.find((a) => a.name === 'firmware.bin')?.package, { ...firmwarePackage, version: '8' });
  });
});

test('an offline proposal keeps its manifest blob through garbage collection until it is signed', async (t) => {
  const work = await makeTempDir('convoy-manifest-gc-');
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));
  const key = path.join(work, 'alice');
  t.is((await convoy('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'generate', '--out', key])).code, 0);
  const keysDir = path.join(work, 'keys');
  t.is((await convoy('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'init', '--out', keysDir, '--targets-key', `${key}.pub.json`, '--targets-threshold', '1'])).code, 0);
  const dataDir = path.join(work, 'data');
  await fs.cp(path.join(keysDir, 'server'), dataDir, { recursive: true });
  await withServer(
    t,
    async (server) => {
      await pushContent(server, 'pos-app', '1.0.0');
      t.is((await server.api('GET', '/api/v1/bundles/pos-app/versions/1.0.0/signing')).status, 200);
      // Approvers sign on their own time, often later than the collector's grace period.
      await server.collectGarbage({ graceMs: 0 });
      const signed = await convoy(server.url, adminToken, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key}.pem`]);
      t.is(signed.code, 0, signed.stderr);
      t.like(await signedManifest(server, 'pos-app', '1.0.0'), { bundle: 'pos-app', version: '1.0.0' });
    },
    { dataDir },
  );
});
