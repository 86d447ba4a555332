import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { hexOf } from '../../protocol/names.ts';
import { deploy } from '../helpers/release.ts';
import { adminToken, makeTempDir, waitFor, type TestServer } from '../helpers/server.ts';
import { withServer } from '../helpers/server.ts';
import { layoutDigest, readLayoutBlob, skopeo, writeLayout } from '../oci/layout.ts';
import { addEdge, copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * Edges serving stock clients (issue 12 item 1): `/v2` pulls with a device's credentials and
 * `/tuf/targets/<path>`, from the edge's verified mirror, with the origin's rule for who reads
 * what. Real origin, real edge (pull mode behind a counting proxy), Debian's skopeo.
 */

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

async function pushImage(origin: TestServer, layoutDir: string, repository: string, tag: string): Promise<void> {
  await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${layoutDir}:build`, `docker://127.0.0.1:${origin.httpPort}/${repository}:${tag}`]);
}

async function approve(origin: TestServer, bundle: string, version: string): Promise<void> {
  const res = await origin.api('POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`);
  if (res.status !== 200) throw new Error(`approve answered ${res.status}: ${res.raw}`);
}

/**
 * Two bundles mirrored to the edge `shop-eu` by an on-approval pull policy, each with one image
 * pushed by skopeo as CI does (pos/till and kiosk/screen, version 1.0.0); pos is deployed to the
 * group of the device it registers, till-1, whose token it returns. Throws unless both runs succeed.
 */
async function mirrorTwoBundles(origin: TestServer, images: { till: string; screen: string }): Promise<string> {
  for (const bundle of ['pos', 'kiosk']) {
    const created = await origin.api('POST', '/api/v1/bundles', { json: { name: bundle } });
    const policy = await origin.api('POST', `/api/v1/bundles/${bundle}/replication-policies`, { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } });
    if (created.status !== 201 || policy.status !== 201) throw new Error(`set-up of ${bundle}: ${created.status} ${policy.status}`);
  }
  await pushImage(origin, images.till, 'pos/till', '1.0.0');
  await pushImage(origin, images.screen, 'kiosk/screen', '1.0.0');
  for (const bundle of ['pos', 'kiosk']) {
    await approve(origin, bundle, '1.0.0');
    const [run] = await runsOf(origin, bundle);
    const finished = await finishedRun(origin, bundle, run!.id);
    if (finished.run.status !== 'succeeded') throw new Error(`${bundle}'s run to the edge: ${finished.run.status}`);
  }
  // The device's group runs pos, not kiosk.
  await deploy(origin, 'pos', '1.0.0', 'shop-tills');
  const registered = await origin.api('POST', '/api/v1/devices', { json: { id: 'till-1', group: 'shop-tills' } });
  if (registered.status !== 201) throw new Error(`registering till-1: ${registered.status}`);
  return registered.body.token as string;
}

/** The GET requests for blobs the origin answered through the proxy (edges' reads). */
function blobReads(reads: Map<string, number>): number {
  return [...reads].filter(([key]) => key.startsWith('/api/v1/blobs/')).reduce((sum, [, n]) => sum + n, 0);
}

test('a device pulls its release image from an edge with skopeo: the origin\'s manifest digest, no blob read from the origin; other bundles, writes and tampered blobs are refused', async (t) => {
  const work = await makeTempDir('convoy-edge-v2-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const rootFile = await copyRoot(origin, work);
    const edge = await startTestEdge({ upstreamUrl: proxy.url, token: await addEdge(origin, 'shop-eu'), rootFile });
    try {
      const image = await writeLayout(path.join(work, 'till'), 'build', [256 * 1024, 64 * 1024]);
      const other = await writeLayout(path.join(work, 'kiosk'), 'build', [32 * 1024]);
      const token = await mirrorTwoBundles(origin, { till: image.dir, screen: other.dir });
      const creds = `till-1:${token}`;
      const edgeHost = `127.0.0.1:${edge.httpPort}`;
      const originHost = `127.0.0.1:${origin.httpPort}`;

      // The edge names what the origin names: the same repository, tag and manifest digest.
      const fromEdge = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${edgeHost}/pos/till:1.0.0`])).stdout) as { Digest: string; RepoTags: string[] };
      const fromOrigin = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${originHost}/pos/till:1.0.0`])).stdout) as { Digest: string; RepoTags: string[] };
      t.is(fromEdge.Digest, image.manifestDigest);
      t.is(fromOrigin.Digest, image.manifestDigest);
      t.deepEqual(fromEdge.RepoTags, ['1.0.0']);

      // skopeo copy from the edge: bit-identical, and the origin served no blob meanwhile.
      const readsBefore = blobReads(proxy.reads);
      const pulled = path.join(work, 'pulled');
      await skopeo(['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${edgeHost}/pos/till:1.0.0`, `oci:${pulled}:1.0.0`]);
      t.is(await layoutDigest(pulled, '1.0.0'), image.manifestDigest);
      t.true((await readLayoutBlob(pulled, image.manifestDigest)).equals(image.manifest), 'the manifest byte for byte');
      for (const [digest, bytes] of image.blobs) t.true((await readLayoutBlob(pulled, digest)).equals(bytes), `blob ${digest}`);
      t.is(blobReads(proxy.reads), readsBefore, 'no blob read from the origin while the device pulled from the edge');

      // A bundle not deployed to the device: refused at the edge as at the origin.
      const headers = { authorization: basic('till-1', token) };
      const refusedAtEdge = await fetch(`${edge.url}/v2/kiosk/screen/manifests/1.0.0`, { headers });
      const refusedAtOrigin = await fetch(`${origin.url}/v2/kiosk/screen/manifests/1.0.0`, { headers });
      t.is(refusedAtEdge.status, 403);
      t.is(refusedAtOrigin.status, 403);
      t.like(await refusedAtEdge.json(), { errors: [{ code: 'DENIED' }] });
      const blobOfOther = [...other.blobs.keys()][0]!;
      t.is((await fetch(`${edge.url}/v2/kiosk/screen/blobs/${blobOfOther}`, { headers })).status, 403);
      // Its blob is not reachable through a repository the device may read either.
      t.is((await fetch(`${edge.url}/v2/pos/till/blobs/${blobOfOther}`, { headers })).status, 404);
      // The catalog lists only what the device may pull.
      t.deepEqual(await (await fetch(`${edge.url}/v2/_catalog`, { headers })).json(), { repositories: ['pos/till'] });
      t.deepEqual(await (await fetch(`${origin.url}/v2/_catalog`, { headers })).json(), { repositories: ['pos/till'] });

      // Without credentials: the Basic challenge, as at the origin; a wrong user name for the token: 401.
      const anonymous = await fetch(`${edge.url}/v2/`);
      t.is(anonymous.status, 401);
      t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
      t.is((await fetch(`${edge.url}/v2/`, { headers: { authorization: basic('till-2', token) } })).status, 401);
      t.is((await fetch(`${edge.url}/v2/`, { headers: { authorization: basic('admin', adminToken) } })).status, 401, 'users pull from the origin');

      // Writes: the edge is a read-only mirror.
      for (const [method, url] of [['POST', '/v2/pos/till/blobs/uploads/'], ['PUT', `/v2/pos/till/manifests/1.0.1`], ['DELETE', `/v2/pos/till/manifests/${image.manifestDigest}`]] as const) {
        const res = await fetch(`${edge.url}${url}`, { method, headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, ...(method === 'PUT' ? { body: image.manifest } : {}) });
        t.is(res.status, 405, `${method} ${url}`);
        const body = (await res.json()) as { errors: { code: string; message: string }[] };
        t.is(body.errors[0]!.code, 'UNSUPPORTED');
        t.regex(body.errors[0]!.message, /read-only mirror/);
      }

      // Range on a blob, as distribution clients resume.
      const layer = [...image.blobs.keys()].find((digest) => image.blobs.get(digest)!.length > 100_000)!;
      const ranged = await fetch(`${edge.url}/v2/pos/till/blobs/${layer}`, { headers: { ...headers, range: 'bytes=10-19' } });
      t.is(ranged.status, 206);
      t.true(Buffer.from(await ranged.arrayBuffer()).equals(image.blobs.get(layer)!.subarray(10, 20)));

      // A blob altered on the edge's disk is not served as valid: quarantined and fetched again.
      const file = path.join(edge.dataDir, 'blobs', 'sha256', hexOf(layer).slice(0, 2), hexOf(layer));
      const tampered = Buffer.from(image.blobs.get(layer)!);
      tampered[100] = tampered[100]! ^ 0xff;
      await fs.writeFile(`${file}.evil`, tampered);
      await fs.rename(`${file}.evil`, file);
      const served = await fetch(`${edge.url}/v2/pos/till/blobs/${layer}`, { headers });
      t.is(served.status, 200);
      t.is(sha256(Buffer.from(await served.arrayBuffer())), layer, 'what the edge serves hashes to the digest');
      t.is((await fs.readdir(path.join(edge.dataDir, 'quarantine'))).length, 1, 'the altered file was moved aside');

      // A revoked version leaves the edge's registry with the re-signed metadata, as it leaves the origin's for devices.
      t.is((await origin.api('POST', '/api/v1/bundles/pos/versions/1.0.0/revoke', { json: { reason: 'till crash' } })).status, 200);
      const [revocation] = (await runsOf(origin, 'pos', 2)).filter((run) => run.trigger === 'revocation');
      t.is((await finishedRun(origin, 'pos', revocation!.id)).run.status, 'succeeded');
      t.is((await fetch(`${edge.url}/v2/pos/till/manifests/1.0.0`, { headers })).status, 404);
      t.is((await fetch(`${origin.url}/v2/pos/till/manifests/1.0.0`, { headers })).status, 404);
    } finally {
      await edge.close();
      await proxy.close();
    }
  });
  await fs.rm(work, { recursive: true, force: true });
});

test('a device reads signed targets by path at an edge, for the bundles deployed to it; a draft tag is not there for a device at the origin', async (t) => {
  const work = await makeTempDir('convoy-edge-targets-');
  await withServer(t, async (origin) => {
    const rootFile = await copyRoot(origin, work);
    const edge = await startTestEdge({ upstreamUrl: origin.url, token: await addEdge(origin, 'shop-eu'), rootFile });
    try {
      const image = await writeLayout(path.join(work, 'till'), 'build', [16 * 1024]);
      const token = await mirrorTwoBundles(origin, { till: image.dir, screen: image.dir });
      const auth = { authorization: `Bearer ${token}` };

      // The bundle manifest by path, plain and hash-prefixed (consistent snapshots), as the origin serves it.
      const fromOrigin = await fetch(`${origin.url}/tuf/targets/pos/1.0.0/manifest.json`, { headers: auth });
      t.is(fromOrigin.status, 200);
      const manifest = Buffer.from(await fromOrigin.arrayBuffer());
      const plain = await waitFor('the edge serving the target', async () => {
        const res = await fetch(`${edge.url}/tuf/targets/pos/1.0.0/manifest.json`, { headers: auth });
        return res.status === 200 ? Buffer.from(await res.arrayBuffer()) : undefined;
      }, 10_000);
      t.true(plain.equals(manifest));
      const prefixed = await fetch(`${edge.url}/tuf/targets/pos/1.0.0/${hexOf(sha256(manifest))}.manifest.json`, { headers: auth });
      t.is(prefixed.status, 200);
      t.is((await fetch(`${edge.url}/tuf/targets/pos/1.0.0/${'0'.repeat(64)}.manifest.json`, { headers: auth })).status, 404, 'a wrong hash prefix names nothing');
      const artifact = await fetch(`${edge.url}/tuf/targets/pos/1.0.0/artifacts/till`, { headers: auth });
      t.is(artifact.status, 200);
      t.true(Buffer.from(await artifact.arrayBuffer()).equals(image.manifest));
      // Another bundle's target: 404 at the edge as at the origin; no credential: 401.
      t.is((await fetch(`${edge.url}/tuf/targets/kiosk/1.0.0/manifest.json`, { headers: auth })).status, 404);
      t.is((await fetch(`${origin.url}/tuf/targets/kiosk/1.0.0/manifest.json`, { headers: auth })).status, 404);
      t.is((await fetch(`${edge.url}/tuf/targets/pos/1.0.0/manifest.json`)).status, 401);
      // The bundles' roles, as on the origin: the device's own bundle's, not another's (404).
      const published = await fs.readdir(path.join(edge.dataDir, 'tuf'));
      const roleOf = (bundle: string) => published.find((name) => name.endsWith(`.bundle-${bundle}.json`))!;
      t.is((await fetch(`${edge.url}/tuf/${roleOf('pos')}`, { headers: auth })).status, 200);
      t.is((await fetch(`${edge.url}/tuf/${roleOf('kiosk')}`, { headers: auth })).status, 404);
      t.is((await fetch(`${origin.url}/tuf/${roleOf('kiosk')}`, { headers: auth })).status, 404);

      // Published metadata altered on the edge's disk no longer verifies: nothing is served by path or on /v2.
      const timestampFile = path.join(edge.dataDir, 'tuf', 'timestamp.json');
      const timestamp = JSON.parse(await fs.readFile(timestampFile, 'utf8'));
      timestamp.signed.expires = '2099-01-01T00:00:00Z';
      await fs.writeFile(timestampFile, JSON.stringify(timestamp));
      t.is((await fetch(`${edge.url}/tuf/targets/pos/1.0.0/manifest.json`, { headers: auth })).status, 404);
      t.is((await fetch(`${edge.url}/v2/pos/till/manifests/1.0.0`, { headers: { authorization: basic('till-1', token) } })).status, 404);
      t.true(edge.logs.some((line) => line.includes('does not verify against the trusted root')));

      // At the origin a device reads only what is signed: a draft's tag is unknown to it.
      await pushImage(origin, image.dir, 'pos/till', '1.1.0-rc.1');
      const draft = await fetch(`${origin.url}/v2/pos/till/manifests/1.1.0-rc.1`, { headers: { authorization: basic('till-1', token) } });
      t.is(draft.status, 404);
      const tags = await fetch(`${origin.url}/v2/pos/till/tags/list`, { headers: { authorization: basic('till-1', token) } });
      t.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['1.0.0']);
      t.deepEqual(((await (await fetch(`${origin.url}/v2/pos/till/tags/list`, { headers: { authorization: basic('admin', adminToken) } })).json()) as { tags: string[] }).tags, ['1.0.0', '1.1.0-rc.1'], 'a user still sees the draft');
    } finally {
      await edge.close();
    }
  });
  await fs.rm(work, { recursive: true, force: true });
});
