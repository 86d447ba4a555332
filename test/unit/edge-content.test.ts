import { createHash } from 'node:crypto';
import test from 'ava';
import { manifestSchemaId } from '../../protocol/manifest.ts';
import { imagesOf, targetOfUrl, type SignedTarget } from '../../server/edge/content.ts';

/*
 * The pure part of what an edge serves to stock clients (server/edge/content.ts): which images
 * its signed targets hold, which digests each repository reaches, and which target a URL under
 * /tuf/targets/ names. Fixtures built in code; blobs come from a map.
 */

const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

function image(layer: string) {
  const config = json({ architecture: 'arm64', os: 'linux', layer });
  const layerBytes = Buffer.from(`layer ${layer}`);
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layerBytes), size: layerBytes.length }],
  });
  return { config, layer: layerBytes, manifest, digest: digestOf(manifest) };
}

function release(bundle: string, version: string, artifacts: { name: string; type: string; bytes: Buffer }[]) {
  const manifest = json({ schema: manifestSchemaId, bundle, version, approvedAt: '2026-12-01T00:00:00.000Z', artifacts: artifacts.map((a) => ({ name: a.name, type: a.type, digest: digestOf(a.bytes), size: a.bytes.length })) });
  const targets: SignedTarget[] = [{ path: `${bundle}/${version}/manifest.json`, bundle, digest: digestOf(manifest), size: manifest.length }];
  for (const a of artifacts) targets.push({ path: `${bundle}/${version}/artifacts/${a.name}`, bundle, digest: digestOf(a.bytes), size: a.bytes.length });
  return { manifest, targets };
}

function store(...blobs: Buffer[]) {
  const map = new Map(blobs.map((b) => [digestOf(b), b]));
  return async (digest: string) => map.get(digest);
}

test('images of the signed releases: tag = version, the manifest digest the target signs, every digest the image reaches', async (t) => {
  const till = image('a');
  const pos = release('pos', '1.0.0', [{ name: 'till', type: 'image', bytes: till.manifest }, { name: 'app.bin', type: 'file', bytes: Buffer.from('app') }]);
  const targets = new Map(pos.targets.map((target) => [target.path, target]));
  const view = await imagesOf(targets, store(pos.manifest, till.manifest, till.config, till.layer));
  t.false(view.incomplete);
  t.deepEqual([...view.tags.keys()], ['pos/till']);
  t.like(view.tags.get('pos/till')!.get('1.0.0'), { digest: till.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: till.manifest.length, bundle: 'pos' });
  t.deepEqual([...view.reachable.get('pos/till')!.keys()].sort(), [till.digest, digestOf(till.config), digestOf(till.layer)].sort());
});

test('an index reaches its children and their blobs; a child the edge does not hold stays unknown', async (t) => {
  const arm = image('arm');
  const amd = image('amd');
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [arm, amd].map((child, i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.manifest.length, platform: { os: 'linux', architecture: i === 0 ? 'arm64' : 'amd64' } })),
  });
  const pos = release('pos', '2.0.0', [{ name: 'till', type: 'image', bytes: index }]);
  const view = await imagesOf(new Map(pos.targets.map((target) => [target.path, target])), store(pos.manifest, index, arm.manifest, arm.config, arm.layer));
  t.like(view.tags.get('pos/till')!.get('2.0.0'), { digest: digestOf(index), mediaType: 'application/vnd.oci.image.index.v1+json' });
  const reached = view.reachable.get('pos/till')!;
  t.deepEqual([...reached.keys()].sort(), [digestOf(index), arm.digest, digestOf(arm.config), digestOf(arm.layer)].sort());
  t.is(reached.get(arm.digest)!.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'a child is served as a manifest');
  t.true(view.incomplete, 'looked at again soon: the missing child may still arrive');
});

test('what the signed targets do not vouch for is not an image', async (t) => {
  const till = image('a');
  const other = image('b');
  const cases: { what: string; targets: SignedTarget[]; blobs: Buffer[]; incomplete: boolean }[] = [];
  {
    // The bundle manifest names an image whose own signed target has another digest.
    const pos = release('pos', '1.0.0', [{ name: 'till', type: 'image', bytes: till.manifest }]);
    const forged = pos.targets.map((target) => (target.path.endsWith('/till') ? { ...target, digest: other.digest } : target));
    cases.push({ what: 'artifact target with another digest', targets: forged, blobs: [pos.manifest, till.manifest, other.manifest], incomplete: false });
  }
  {
    const pos = release('pos', '1.0.0', [{ name: 'till', type: 'image', bytes: till.manifest }]);
    cases.push({ what: 'bundle manifest not on the edge', targets: pos.targets, blobs: [till.manifest], incomplete: true });
    cases.push({ what: 'image manifest not on the edge', targets: pos.targets, blobs: [pos.manifest], incomplete: true });
  }
  {
    const pos = release('pos', '1.0.0', [{ name: 'till', type: 'file', bytes: till.manifest }]);
    cases.push({ what: 'an artifact of another type', targets: pos.targets, blobs: [pos.manifest, till.manifest], incomplete: false });
  }
  {
    // A manifest filed under another bundle's path (its role could not vouch for it).
    const pos = release('kiosk', '1.0.0', [{ name: 'till', type: 'image', bytes: till.manifest }]);
    const moved = pos.targets.map((target) => ({ ...target, path: target.path.replace(/^kiosk\/1\.0\.0/, 'pos/2.0.0') }));
    cases.push({ what: 'bundle manifest of another bundle and version', targets: moved, blobs: [pos.manifest, till.manifest], incomplete: false });
  }
  for (const c of cases) {
    const view = await imagesOf(new Map(c.targets.map((target) => [target.path, target])), store(...c.blobs));
    t.is(view.tags.size, 0, c.what);
    t.is(view.incomplete, c.incomplete, c.what);
  }
});

test('targetOfUrl: plain and hash-prefixed names, a wrong prefix names nothing', (t) => {
  const target: SignedTarget = { path: 'pos/1.0.0/manifest.json', bundle: 'pos', digest: `sha256:${'ab'.repeat(32)}`, size: 10 };
  const targets = new Map([[target.path, target]]);
  t.is(targetOfUrl(targets, 'pos/1.0.0/manifest.json'), target);
  t.is(targetOfUrl(targets, `pos/1.0.0/${'ab'.repeat(32)}.manifest.json`), target);
  t.is(targetOfUrl(targets, `pos/1.0.0/${'cd'.repeat(32)}.manifest.json`), undefined);
  t.is(targetOfUrl(targets, 'pos/1.0.0/artifacts/x'), undefined);
  t.is(targetOfUrl(targets, '../pos/1.0.0/manifest.json'), undefined);
});
