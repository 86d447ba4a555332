import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { createLogger } from '../../protocol/log.ts';
import { BlobStore } from '../../server/blobs/store.ts';
import { listApprovedTargets } from '../../server/bundles/targets.ts';
import { createBundleService } from '../../server/bundles/service.ts';
import { createBundleStore } from '../../server/bundles/store.ts';
import type { Db } from '../../server/db/knex.ts';
import { parseRepository } from '../../server/oci/media.ts';
import { createOciService, type OciService } from '../../server/oci/service.ts';
import { createOciStore, ociReferencedDigests } from '../../server/oci/store.ts';
import { UploadFiles } from '../../server/oci/uploads.ts';
import { openTrustService } from '../../server/trust/service.ts';
import { withDatabase } from '../helpers/database.ts';
import { makeImage, ociIndexType, ociManifestType, sha256 } from './layout.ts';

/*
 * ociReferencedDigests, the registry's answer to the blob garbage collector ("which digests does
 * an image still need?"), over the real service, database and blob store.
 */

async function withRegistry(t: import('ava').ExecutionContext, run: (oci: OciService, db: Db, bundles: ReturnType<typeof createBundleService>) => Promise<void>) {
  await withDatabase(async (db, dataDir) => {
    const log = createLogger({ namespace: 'test', level: 'error', write: (line) => t.log(line) });
    const now = () => new Date();
    const blobs = await BlobStore.open(path.join(dataDir, 'blobs'));
    const bundleStore = createBundleStore(db);
    const trust = await openTrustService({ dataDir, listTargets: () => listApprovedTargets(bundleStore), now, log });
    const bundles = createBundleService({ store: bundleStore, blobs, trust, now, log });
    const oci = createOciService({
      store: createOciStore(db),
      uploads: await UploadFiles.open(path.join(dataDir, 'oci-uploads')),
      blobs,
      bundles,
      maxBlobBytes: 1024 ** 3,
      uploadTtlMs: 60_000,
      now,
      log,
    });
    await bundles.createBundle('shop');
    await run(oci, db, bundles);
  }, 'convoy-oci-refs-');
}

const app = parseRepository('shop/app');

async function pushImage(oci: OciService, reference: string, sizes: number[]) {
  const image = makeImage(sizes);
  const blobs = [image.config, ...image.layers];
  for (const blob of blobs) await oci.putBlob(app, Readable.from([blob]), sha256(blob), blob.length);
  const ref = reference.startsWith('sha256:') ? { type: 'digest' as const, digest: sha256(image.manifest) } : { type: 'tag' as const, tag: reference };
  await oci.putManifest(app, ref, image.manifest, ociManifestType);
  return { manifest: sha256(image.manifest), size: image.manifest.length, blobs: blobs.map(sha256) };
}

test('ociReferencedDigests names what versions need: manifests, index children, blobs, referrers; not orphans', async (t) => {
  await withRegistry(t, async (oci, db, bundles) => {
    t.deepEqual(await ociReferencedDigests(db), new Set());

    const one = await pushImage(oci, '1.0.0', [100, 200]);
    // An index in 2.0.0 whose children are pushed by digest.
    const a = await pushImage(oci, 'sha256:', [300]);
    const b = await pushImage(oci, 'sha256:', [400]);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociIndexType, manifests: [a, b].map((m) => ({ mediaType: ociManifestType, digest: m.manifest, size: m.size })) }));
    await oci.putManifest(app, { type: 'tag', tag: '2.0.0' }, index, ociIndexType);
    // A referrer (a signature) of 1.0.0's image, and an orphan manifest and blob nobody names.
    const payload = Buffer.from('signature');
    const config = Buffer.from('{}');
    for (const blob of [payload, config]) await oci.putBlob(app, Readable.from([blob]), sha256(blob), blob.length);
    const referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: ociManifestType,
        artifactType: 'application/vnd.example.sig',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/octet-stream', digest: sha256(payload), size: payload.length }],
        subject: { mediaType: ociManifestType, digest: one.manifest, size: one.size },
      }),
    );
    await oci.putManifest(app, { type: 'digest', digest: sha256(referrer) }, referrer, ociManifestType);
    const orphan = await pushImage(oci, 'sha256:', [500]);
    const stray = randomBytes(50);
    await oci.putBlob(app, Readable.from([stray]), sha256(stray), stray.length);

    const expected = new Set([
      one.manifest, ...one.blobs,
      sha256(index), a.manifest, ...a.blobs, b.manifest, ...b.blobs,
      sha256(referrer), sha256(config), sha256(payload),
    ]);
    t.deepEqual([...(await ociReferencedDigests(db))].sort(), [...expected].sort());
    t.false((await ociReferencedDigests(db)).has(orphan.manifest));
    t.false((await ociReferencedDigests(db)).has(sha256(stray)));

    // Deleting the 2.0.0 draft releases the index and its children; 1.0.0 keeps its own.
    await bundles.deleteVersion('shop', '2.0.0');
    const after = await ociReferencedDigests(db);
    t.false(after.has(sha256(index)));
    t.false(after.has(a.manifest));
    t.true(after.has(one.manifest) && one.blobs.every((d) => after.has(d)));
  });
});

test('a chunk broken off mid-way leaves the upload at its old end; the retried chunk completes it, verified', async (t) => {
  await withRegistry(t, async (oci) => {
    const bytes = randomBytes(70_000);
    const id = await oci.startUpload(app, 'admin');
    await oci.appendChunk(app, id, 'admin', Readable.from([bytes.subarray(0, 30_000)]), { start: 0, end: 29_999 }, undefined);
    // A chunk that breaks off mid-way (a dropped connection) leaves the session at its old end.
    const broken = new Readable({
      read() {
        this.push(bytes.subarray(30_000, 40_000));
        this.destroy(new Error('connection reset'));
      },
    });
    await t.throwsAsync(oci.appendChunk(app, id, 'admin', broken, { start: 30_000, end: 69_999 }, undefined));
    t.is(await oci.uploadStatus(app, id, 'admin'), 30_000);
    await oci.appendChunk(app, id, 'admin', Readable.from([bytes.subarray(30_000)]), { start: 30_000, end: 69_999 }, undefined);
    const done = await oci.completeUpload(app, id, 'admin', Readable.from([]), sha256(bytes), undefined, 0);
    t.deepEqual(done, { digest: sha256(bytes), size: bytes.length });
    t.deepEqual(await oci.statBlob(app, sha256(bytes)), { size: bytes.length });
  });
});
