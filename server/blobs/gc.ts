import type { Logger } from '../../protocol/log.ts';
import type { BlobStore } from './store.ts';

/**
 * Where references to blobs live. Each capability that stores digests contributes one (bundle
 * artifacts and manifests; OCI manifests and the blobs they name, …), so the collector never
 * needs to know their tables.
 */
export type ReferenceSource = () => Promise<Iterable<string>>;

export interface GcOptions {
  blobs: BlobStore;
  sources: readonly ReferenceSource[];
  now: () => Date;
  /**
   * Blobs written (or touched) within this window are never collected: a client uploads a blob
   * first and references it in a later request (PUT /api/v1/blobs, then PUT …/artifacts/…).
   */
  graceMs: number;
  /** Upload temp files untouched this long belong to a crashed or abandoned upload. */
  abandonedUploadMs: number;
  log: Logger;
}

export interface GcReport {
  deleted: string[];
  freedBytes: number;
  kept: number;
  abandonedUploads: number;
}

/**
 * Mark and sweep. Candidates are blobs older than the grace period; the references are read
 * and the candidates deleted inside `blobs.sweeping`, which no `blobs.referencing` section
 * (check a blob exists, then record a reference to it) overlaps. So a blob is either referenced
 * before the mark and kept, or its referencing request runs after the sweep and finds it gone
 * (400, "upload it first"), never a reference to a deleted blob.
 */
export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const { blobs } = options;
  const cutoff = options.now().getTime() - options.graceMs;
  const report: GcReport = { deleted: [], freedBytes: 0, kept: 0, abandonedUploads: 0 };
  await blobs.sweeping(async () => {
    const referenced = new Set<string>();
    for (const source of options.sources) for (const digest of await source()) referenced.add(digest);
    for (const blob of await blobs.list()) {
      if (referenced.has(blob.digest) || blob.mtimeMs > cutoff) {
        report.kept++;
        continue;
      }
      await blobs.remove(blob.digest);
      report.deleted.push(blob.digest);
      report.freedBytes += blob.size;
    }
  });
  // Uploads in flight keep writing their temp file, so only long-silent ones are removed.
  const uploadCutoff = options.now().getTime() - options.abandonedUploadMs;
  for (const upload of await blobs.listUploads()) {
    if (upload.mtimeMs < uploadCutoff) {
      await blobs.removeUpload(upload.name);
      report.abandonedUploads++;
    }
  }
  if (report.deleted.length > 0 || report.abandonedUploads > 0) {
    options.log.info('collected unreferenced blobs', { deleted: report.deleted.length, freedBytes: report.freedBytes, abandonedUploads: report.abandonedUploads });
  }
  return report;
}
