import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { adminToken, makeTempDir, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';
import { makeDeb, makeNpmTarball, makeRpm } from './fixtures.ts';

const exec = promisify(execFile);

/** What a CI script does: one curl per file, tagged with the release version. */
async function curlUpload(server: TestServer, file: string, urlPath: string): Promise<{ status: number; body: any }> {
  const { stdout } = await exec('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${adminToken}`, '--upload-file', file, `${server.url}${urlPath}`]);
  const lines = stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n')) };
}

test('packages: a .deb (xz and gzip control), an npm tarball and an RPM describe themselves; listings filter on it', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      const base = '/api/v1/bundles/pos/versions/1.4.0';
      const debXz = await makeDeb(work, { name: 'pos-agent', version: '1:2.3.1-1', architecture: 'amd64' }, 'xz');
      const debGz = await makeDeb(work, { name: 'pos-tools', version: '0.9', architecture: 'arm64' }, 'gzip');
      const tgz = await makeNpmTarball(work, { name: '@shop/prices', version: '3.1.0' });
      const rpmFile = path.join(work, 'pos-db.rpm');
      await fs.writeFile(rpmFile, makeRpm({ name: 'pos-db', version: '5.2', release: '3.el9', arch: 'x86_64', epoch: 2 }));

      const deb = await curlUpload(server, debXz, `${base}/files/pos-agent.deb?format=deb`);
      t.is(deb.status, 201, JSON.stringify(deb.body));
      t.deepEqual(deb.body.package, { format: 'deb', name: 'pos-agent', version: '1:2.3.1-1', architecture: 'amd64' });
      t.is(deb.body.type, 'package');
      t.is(deb.body.digest, sha256Digest(await fs.readFile(debXz)));
      t.is((await curlUpload(server, debGz, `${base}/files/pos-tools.deb?format=deb`)).body.package.architecture, 'arm64');
      t.deepEqual((await curlUpload(server, tgz, `${base}/files/prices.tgz?format=npm`)).body.package, { format: 'npm', name: '@shop/prices', version: '3.1.0', architecture: 'all' });
      t.deepEqual((await curlUpload(server, rpmFile, `${base}/files/pos-db.rpm?format=rpm`)).body.package, { format: 'rpm', name: 'pos-db', version: '2:5.2-3.el9', architecture: 'x86_64' });

      // Generic packages say nothing about themselves: the user gives every field.
      const blob = path.join(work, 'firmware.bin');
      await fs.writeFile(blob, 'firmware');
      const incomplete = await curlUpload(server, blob, `${base}/files/firmware.bin?format=generic&package_name=fw`);
      t.is(incomplete.status, 400);
      t.regex(incomplete.body.error.message, /version, architecture missing/);
      const generic = await curlUpload(server, blob, `${base}/files/firmware.bin?format=generic&package_name=fw&package_version=7&architecture=armhf`);
      t.is(generic.status, 201);
      await curlUpload(server, blob, `${base}/files/notes.txt`);

      // A user value that contradicts the file is refused: the signed manifest must not lie.
      const lie = await curlUpload(server, debGz, `${base}/files/other.deb?format=deb&architecture=amd64`);
      t.is(lie.status, 400);
      t.regex(lie.body.error.message, /architecture "amd64" contradicts the deb metadata in the file \("arm64"\)/);
      const notDeb = await curlUpload(server, blob, `${base}/files/bad.deb?format=deb`);
      t.is(notDeb.status, 400);
      t.regex(notDeb.body.error.message, /not an ar archive/);
      const notNpm = await curlUpload(server, blob, `${base}/files/bad.tgz?format=npm`);
      t.is(notNpm.status, 400);

      const names = async (query: string) => (await server.api('GET', `${base}/artifacts?${query}`)).body.map((a: { name: string }) => a.name);
      t.deepEqual(await names('type=package'), ['firmware.bin', 'pos-agent.deb', 'pos-db.rpm', 'pos-tools.deb', 'prices.tgz']);
      t.deepEqual(await names('format=deb'), ['pos-agent.deb', 'pos-tools.deb']);
      t.deepEqual(await names('architecture=arm64'), ['pos-tools.deb']);
      t.deepEqual(await names('package_name=%40shop%2Fprices'), ['prices.tgz']);
      t.deepEqual(await names('type=file'), ['notes.txt']);
      t.deepEqual(await names('search=pos-'), ['pos-agent.deb', 'pos-db.rpm', 'pos-tools.deb']);
      t.deepEqual(await names('name=pos-db.rpm'), ['pos-db.rpm']);
      t.is((await server.api('GET', `${base}/artifacts?format=zip`)).status, 400);

      // The signed manifest carries the package metadata.
      const approved = await server.api('POST', `${base}/approve`);
      t.is(approved.status, 200);
      const manifest = JSON.parse((await server.api('GET', `/api/v1/blobs/${approved.body.manifestDigest}`)).raw.toString('utf8'));
      t.deepEqual(manifest.artifacts.find((a: { name: string }) => a.name === 'pos-agent.deb').package, deb.body.package);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('package metadata is set through the JSON routes too, and changed with PATCH while a draft', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
      const bytes = await fs.readFile(await makeDeb(work, { name: 'agent', version: '1.0', architecture: 'all' }, 'gzip'));
      const digest = sha256Digest(bytes);
      await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes });
      await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.0' } });
      const url = '/api/v1/bundles/pos/versions/1.0.0/artifacts/agent.deb';
      const noMeta = await server.api('PUT', url, { json: { type: 'package', digest, size: bytes.length } });
      t.is(noMeta.status, 400);
      t.regex(noMeta.body.error.message, /needs package metadata/);
      const wrongType = await server.api('PUT', url, { json: { type: 'file', digest, size: bytes.length, package: { format: 'deb' } } });
      t.is(wrongType.status, 400);
      const put = await server.api('PUT', url, { json: { type: 'package', digest, size: bytes.length, package: { format: 'deb' } } });
      t.is(put.status, 201);
      t.deepEqual(put.body.package, { format: 'deb', name: 'agent', version: '1.0', architecture: 'all' });
      const asFile = await server.api('PATCH', url, { json: { type: 'file', package: null } });
      t.is(asFile.status, 200);
      t.is(asFile.body.package, null);
      const asGeneric = await server.api('PATCH', url, { json: { type: 'package', package: { format: 'generic', name: 'agent-bundle', version: '1', architecture: 'any' } } });
      t.deepEqual(asGeneric.body.package, { format: 'generic', name: 'agent-bundle', version: '1', architecture: 'any' });
      t.is((await server.api('PATCH', url, { json: {} })).status, 400);
      t.is((await server.api('PATCH', url, { json: { type: 'package', colour: 'red' } })).status, 400);
      t.is((await server.api('PATCH', '/api/v1/bundles/pos/versions/1.0.0/artifacts/nope', { json: { type: 'file' } })).status, 404);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
