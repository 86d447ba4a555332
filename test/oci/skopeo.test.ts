import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { provisionDevice, runDaemon } from '../helpers/device.ts';
import { adminToken, makeTempDir, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { layoutDigest, readLayoutBlob, skopeo, writeLayout, writeMultiArchLayout } from './layout.ts';

/*
 * Debian's skopeo against Convoy's /v2: what a CI job does (push with the release version as the
 * tag), what a consumer does (pull), and what a device ends up holding.
 */

const creds = `admin:${adminToken}`;

function registry(server: TestServer): string {
  return `127.0.0.1:${server.httpPort}`;
}

async function push(server: TestServer, source: string, repository: string, tag: string, extra: string[] = []) {
  return skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds, ...extra, source, `docker://${registry(server)}/${repository}:${tag}`]);
}

async function pull(server: TestServer, repository: string, tag: string, destination: string) {
  return skopeo(['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${registry(server)}/${repository}:${tag}`, destination]);
}

async function sameBlobs(t: import('ava').ExecutionContext, fromDir: string, toDir: string, digests: Iterable<string>) {
  for (const digest of digests) t.true((await readLayoutBlob(toDir, digest)).equals(await readLayoutBlob(fromDir, digest)), `blob ${digest} is bit-identical`);
}

test('skopeo pushes an image into a release draft and pulls it back bit-identical; an approved version refuses a push', async (t) => {
  const work = await makeTempDir('convoy-oci-');
  try {
    await withServer(t, async (server) => {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
      const image = await writeLayout(path.join(work, 'src'), 'build', [512 * 1024, 256 * 1024, 1024]);

      // The tag is the release version: the push creates draft 1.0.0 with image "pos-app".
      await push(server, `oci:${image.dir}:build`, 'shop/pos-app', '1.0.0');
      const artifact = await server.api('GET', '/api/v1/bundles/shop/versions/1.0.0/artifacts/pos-app');
      t.is(artifact.status, 200);
      t.like(artifact.body, { name: 'pos-app', type: 'image', digest: image.manifestDigest, size: image.manifest.length });
      t.is((await server.api('GET', '/api/v1/bundles/shop/versions/1.0.0')).body.status, 'draft');

      // Pulled back: the same manifest digest and every blob byte for byte.
      const pulled = path.join(work, 'pulled');
      await pull(server, 'shop/pos-app', '1.0.0', `oci:${pulled}:1.0.0`);
      t.is(await layoutDigest(pulled, '1.0.0'), image.manifestDigest);
      t.true((await readLayoutBlob(pulled, image.manifestDigest)).equals(image.manifest));
      await sameBlobs(t, image.dir, pulled, image.blobs.keys());

      // skopeo inspect reads the manifest and the tag list through the registry.
      const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${registry(server)}/shop/pos-app:1.0.0`])).stdout);
      t.is(inspected.Digest, image.manifestDigest);
      t.deepEqual(inspected.RepoTags, ['1.0.0']);

      // Docker schema 2 as well: skopeo converts the manifest; the layers stay identical.
      await push(server, `oci:${image.dir}:build`, 'shop/pos-app', '1.1.0', ['--format', 'v2s2']);
      const raw = JSON.parse((await skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', creds, `docker://${registry(server)}/shop/pos-app:1.1.0`])).stdout);
      t.is(raw.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
      const v2 = path.join(work, 'v2');
      await pull(server, 'shop/pos-app', '1.1.0', `oci:${v2}:1.1.0`);
      const layers = [...image.blobs.keys()].filter((d) => raw.layers.some((l: { digest: string }) => l.digest === d));
      t.is(layers.length, 3);
      await sameBlobs(t, image.dir, v2, layers);

      // Replacing the image in a draft is allowed; once approved, a push is refused with 409.
      const other = await writeLayout(path.join(work, 'other'), 'build', [4096]);
      await push(server, `oci:${other.dir}:build`, 'shop/pos-app', '1.0.0');
      t.is((await server.api('GET', '/api/v1/bundles/shop/versions/1.0.0/artifacts/pos-app')).body.digest, other.manifestDigest);
      t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
      const refused = await t.throwsAsync(push(server, `oci:${image.dir}:build`, 'shop/pos-app', '1.0.0'));
      t.regex(refused.message, /approved and can no longer change/);
      t.is((await server.api('GET', '/api/v1/bundles/shop/versions/1.0.0/artifacts/pos-app')).body.digest, other.manifestDigest);

      // Mistakes a CI job makes get the reason in skopeo's own error output.
      const noBundle = await t.throwsAsync(push(server, `oci:${image.dir}:build`, 'nobundle/pos-app', '1.0.0'));
      t.regex(noBundle.message, /name unknown: bundle \\?"nobundle\\?" does not exist; create it first/);
      const latest = await t.throwsAsync(push(server, `oci:${image.dir}:build`, 'shop/pos-app', 'latest'));
      t.regex(latest.message, /not a release version/);

      // No token, a wrong token, or a user name that is not the token's: refused.
      const denied = await t.throwsAsync(skopeo(['inspect', '--tls-verify=false', '--creds', 'admin:wrong-token-0123456789', `docker://${registry(server)}/shop/pos-app:1.0.0`]));
      t.regex(denied.message, /unauthorized|authentication required|invalid/i);
      await t.throwsAsync(skopeo(['inspect', '--tls-verify=false', '--creds', `someone:${adminToken}`, `docker://${registry(server)}/shop/pos-app:1.0.0`]));
    });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
});

async function deviceRecord(server: TestServer, id: string) {
  const list = await server.api('GET', '/api/v1/devices');
  return (list.body as any[]).find((d) => d.id === id);
}

test('a device installs approved images as OCI layouts, every blob verified; a tampered layer is refused', async (t) => {
  const work = await makeTempDir('convoy-oci-device-');
  try {
    await withServer(t, async (server) => {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
      const image = await writeLayout(path.join(work, 'src'), 'build', [300 * 1024, 2048]);
      await push(server, `oci:${image.dir}:build`, 'shop/pos-app', '2.0.0');
      // A multi-architecture image: skopeo --all pushes each child by digest, then the index by tag.
      const multi = await writeMultiArchLayout(path.join(work, 'multi'), 'build', ['amd64', 'arm64'], 64 * 1024);
      await push(server, `oci:${multi.dir}:build`, 'shop/agent', '2.0.0', ['--all']);
      // A plain file beside the image in the same release.
      const config = Buffer.from('{"currency":"EUR"}\n');
      const put = await server.api('PUT', `/api/v1/blobs/${sha256Digest(config)}`, { body: config });
      t.true(put.status === 201 || put.status === 200);
      t.is((await server.api('PUT', '/api/v1/bundles/shop/versions/2.0.0/artifacts/config.json', { json: { type: 'file', digest: put.body.digest, size: config.length } })).status, 201);
      t.is((await server.api('POST', '/api/v1/bundles/shop/versions/2.0.0/approve')).status, 200);

      // Verification failures are retried (with backoff) before the device gives up: keep it short.
      const dir = await provisionDevice(server, 'till-1', 'shop', { update: { retryBaseMs: 200, retryMaxMs: 1_000 } });
      const device = runDaemon('till-1', dir);
      try {
        t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'shop', version: '2.0.0', group: 'shop' } })).status, 201);
        await waitFor('till-1 on 2.0.0', async () => {
          const list = await server.api('GET', '/api/v1/devices');
          return (list.body as any[]).find((d) => d.id === 'till-1')?.installed?.version === '2.0.0' ? true : undefined;
        });
        const installed = path.join(dir, 'current', 'pos-app');
        t.deepEqual(JSON.parse(await fs.readFile(path.join(installed, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
        t.is(await layoutDigest(installed, '2.0.0'), image.manifestDigest);
        t.true((await readLayoutBlob(installed, image.manifestDigest)).equals(image.manifest));
        await sameBlobs(t, image.dir, installed, image.blobs.keys());
        t.true((await fs.readFile(path.join(dir, 'current', 'config.json'))).equals(config));
        // The layout is one that standard tools read as it is.
        const inspected = JSON.parse((await skopeo(['inspect', `oci:${installed}:2.0.0`])).stdout);
        t.is(inspected.Digest, image.manifestDigest);
        // The index and both architectures' manifests and blobs, byte for byte.
        const agent = path.join(dir, 'current', 'agent');
        t.is(await layoutDigest(agent, '2.0.0'), multi.manifestDigest);
        await sameBlobs(t, multi.dir, agent, [multi.manifestDigest, ...multi.blobs.keys()]);
        t.deepEqual((await fs.readdir(path.join(agent, 'blobs', 'sha256'))).length, multi.blobs.size + 1);

        // 2.1.0: a new layer, altered on the server's disk after approval. The manifest is signed
        // and names the layer's digest, so the device refuses it and keeps 2.0.0.
        const next = await writeLayout(path.join(work, 'next'), 'build', [200 * 1024]);
        await push(server, `oci:${next.dir}:build`, 'shop/pos-app', '2.1.0');
        t.is((await server.api('POST', '/api/v1/bundles/shop/versions/2.1.0/approve')).status, 200);
        const layer = [...next.blobs.entries()].find(([, bytes]) => bytes.length > 100 * 1024)!;
        const blobFile = path.join(server.dataDir, 'blobs', 'sha256', layer[0].slice(7, 9), layer[0].slice(7));
        const tampered = Buffer.from(layer[1]);
        tampered[5000] = tampered[5000]! ^ 0xff;
        await fs.writeFile(blobFile, tampered);
        t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'shop', version: '2.1.0', group: 'shop' } })).status, 201);
        const failed = await waitFor('till-1 to refuse 2.1.0', async () => {
          const record = await deviceRecord(server, 'till-1');
          return record?.state === 'failed' ? record : undefined;
        });
        t.is(failed.error.code, 'digest_mismatch');
        t.deepEqual(failed.installed, { bundle: 'shop', version: '2.0.0' });
        t.is(await layoutDigest(path.join(dir, 'current', 'pos-app'), '2.0.0'), image.manifestDigest);
      } catch (error) {
        t.log(device.logs.join('').slice(-4000));
        throw error;
      } finally {
        await device.stop();
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
});
