import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from '../../protocol/log.ts';
import type { BlobStore } from '../blobs/store.ts';
import type { BundleService } from '../bundles/service.ts';
import { ApiError } from '../http/errors.ts';
import { OciError } from './errors.ts';
import { maxManifestBytes, pageTags, parseManifest, versionOfTag, type Reference, type Repository } from './media.ts';
import type { OciStore, StoredManifest } from './store.ts';
import type { UploadFiles } from './uploads.ts';

export interface OciServiceDeps {
  store: OciStore;
  uploads: UploadFiles;
  blobs: BlobStore;
  bundles: BundleService;
  maxBlobBytes: number;
  /** Upload sessions idle longer than this are removed (ms). */
  uploadTtlMs: number;
  now: () => Date;
  log: Logger;
}

/**
 * The registry's behaviour. A repository is `<bundle>/<image>`; a tag is a version of the
 * bundle. Pushing a manifest by tag adds (or replaces) the image artifact `<image>` in that
 * version's draft, creating the draft if needed; the artifact's digest is the manifest's, so the
 * manifest becomes a signed TUF target at approval and, through it, every blob it names.
 */
export function createOciService(deps: OciServiceDeps) {
  const { store, uploads, blobs } = deps;
  const now = () => deps.now().toISOString();

  async function requireBundle(repo: Repository): Promise<void> {
    try {
      await deps.bundles.getBundle(repo.bundle);
    } catch (error) {
      if (error instanceof ApiError && error.code === 'not_found') {
        throw new OciError('NAME_UNKNOWN', `bundle "${repo.bundle}" does not exist; create it first (convoy bundle create ${repo.bundle})`, { bundle: repo.bundle });
      }
      throw error;
    }
  }

  /** A blob a repository may serve: linked to it and still in the store. */
  async function statRepositoryBlob(repo: Repository, digest: string): Promise<{ size: number } | undefined> {
    if (!(await store.hasRepositoryBlob(repo.name, digest))) return undefined;
    return blobs.stat(digest);
  }

  /** A session is its starter's: someone else's is answered as unknown, like one of another repository. */
  async function requireUpload(repo: Repository, id: string, by: string): Promise<number> {
    const session = /^[0-9a-f-]{36}$/.test(id) ? await store.findUpload(id) : undefined;
    const size = session && session.repository === repo.name && session.created_by === by ? await uploads.size(id) : undefined;
    if (size === undefined) throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 40)} is unknown in ${repo.name} (finished, cancelled or expired)`);
    return size;
  }

  async function finishUpload(repo: Repository, id: string, size: number, expected: string): Promise<{ digest: string; size: number }> {
    const actual = await uploads.digest(id, size);
    if (actual !== expected) {
      await cancelUpload(id);
      throw new OciError('DIGEST_INVALID', `the uploaded ${size} bytes hash to ${actual}, not ${expected}; nothing was stored`, { expected, actual });
    }
    await uploads.commit(id, expected, blobs);
    await store.linkBlob(repo.name, expected, now());
    await store.deleteUpload(id);
    return { digest: expected, size };
  }

  async function cancelUpload(id: string): Promise<void> {
    await uploads.remove(id);
    await store.deleteUpload(id);
  }

  async function resolveManifest(repo: Repository, reference: Reference, options: { signedOnly?: boolean } = {}): Promise<StoredManifest> {
    await requireBundle(repo);
    let digest: string;
    if (reference.type === 'digest') {
      digest = reference.digest;
    } else {
      const notFound = (error: unknown) => {
        if (error instanceof ApiError && error.code === 'not_found') return undefined;
        throw error;
      };
      const version = versionOfTag(reference.tag);
      // signedOnly (a device): a draft's or a revoked version's tag is not there.
      const signed = !options.signedOnly || (await deps.bundles.getVersion(repo.bundle, version).catch(notFound))?.status === 'approved';
      const artifact = signed ? await deps.bundles.getArtifact(repo.bundle, version, repo.image).catch(notFound) : undefined;
      if (!artifact || artifact.type !== 'image') throw new OciError('MANIFEST_UNKNOWN', `${repo.name}:${reference.tag} is not an image in ${repo.bundle}@${reference.tag}`, { tag: reference.tag });
      digest = artifact.digest;
    }
    const found = await store.findManifest(repo.name, digest);
    if (!found || !(await blobs.stat(digest))) throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest} is not in ${repo.name}`, { digest });
    return found;
  }

  return {
    requireBundle,

    async statBlob(repo: Repository, digest: string): Promise<{ size: number }> {
      await requireBundle(repo);
      const found = await statRepositoryBlob(repo, digest);
      if (!found) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not in ${repo.name}`, { digest });
      return found;
    },

    /**
     * Cross-repository mount (distribution spec, "Mounting a blob from another repository"):
     * links a blob the caller may read in `from` without sending its bytes again. Returns false
     * when it cannot (the caller then gets an ordinary upload session, as the spec asks).
     */
    async mountBlob(repo: Repository, from: Repository, digest: string): Promise<boolean> {
      if (!(await statRepositoryBlob(from, digest))) return false;
      await store.linkBlob(repo.name, digest, now());
      return true;
    },

    async startUpload(repo: Repository, createdBy: string): Promise<string> {
      await requireBundle(repo);
      await this.sweepUploads();
      const id = randomUUID();
      await uploads.create(id);
      await store.insertUpload(id, repo.name, createdBy, now());
      return id;
    },

    /** Monolithic upload in one POST (`?digest=`): straight into the blob store, verified. */
    async putBlob(repo: Repository, source: Readable, digest: string, expectedSize: number | undefined): Promise<{ digest: string; size: number }> {
      await requireBundle(repo);
      if (expectedSize !== undefined && expectedSize > deps.maxBlobBytes) throw new OciError('SIZE_INVALID', `the blob exceeds the limit of ${deps.maxBlobBytes} bytes`, {}, { status: 413 });
      const stored = await blobs.put(source, { expected: digest, maxBytes: deps.maxBlobBytes, ...(expectedSize !== undefined ? { expectedSize } : {}) });
      await store.linkBlob(repo.name, digest, now());
      return stored;
    },

    uploadStatus: (repo: Repository, id: string, by: string) => requireUpload(repo, id, by),

    /** PATCH: one chunk, at the offset the session has reached (else 416). */
    async appendChunk(repo: Repository, id: string, by: string, source: Readable, range: { start: number; end: number } | undefined, contentLength: number | undefined): Promise<number> {
      return uploads.exclusive(id, async () => {
        const size = await requireUpload(repo, id, by);
        if (range && range.start !== size) {
          throw new OciError('RANGE_INVALID', `the chunk starts at byte ${range.start}, but the upload has ${size} bytes; continue from ${size}`, { offset: size }, { status: 416 });
        }
        const expectedLength = range ? range.end - range.start + 1 : contentLength;
        return uploads.append(id, source, { offset: size, maxBytes: deps.maxBlobBytes, ...(expectedLength !== undefined ? { expectedLength } : {}) });
      });
    },

    /** PUT `?digest=`: the last chunk (optional), then verify and store. */
    async completeUpload(repo: Repository, id: string, by: string, source: Readable, digest: string, range: { start: number; end: number } | undefined, contentLength: number | undefined): Promise<{ digest: string; size: number }> {
      return uploads.exclusive(id, async () => {
        let size = await requireUpload(repo, id, by);
        if (range && range.start !== size) {
          throw new OciError('RANGE_INVALID', `the chunk starts at byte ${range.start}, but the upload has ${size} bytes`, { offset: size }, { status: 416 });
        }
        const expectedLength = range ? range.end - range.start + 1 : contentLength;
        if (expectedLength !== 0) {
          size = await uploads.append(id, source, { offset: size, maxBytes: deps.maxBlobBytes, ...(expectedLength !== undefined ? { expectedLength } : {}) });
        }
        return finishUpload(repo, id, size, digest);
      });
    },

    async cancelUpload(repo: Repository, id: string, by: string): Promise<void> {
      await uploads.exclusive(id, async () => {
        await requireUpload(repo, id, by);
        await cancelUpload(id);
      });
    },

    /** A bundle was deleted: its registry data goes with it, so a new bundle of that name starts empty. */
    async forgetBundle(bundle: string): Promise<void> {
      for (const id of await store.deleteBundleRepositories(bundle)) await uploads.exclusive(id, () => uploads.remove(id));
      deps.log.info('removed the registry data of a deleted bundle', { bundle });
    },

    /** Removes sessions older than the TTL: abandoned pushes must not fill the disk. */
    async sweepUploads(): Promise<void> {
      const before = new Date(deps.now().getTime() - deps.uploadTtlMs).toISOString();
      for (const id of await store.listUploadsBefore(before)) {
        await uploads.exclusive(id, () => cancelUpload(id));
        deps.log.info('removed an expired upload session', { id });
      }
    },

    resolveManifest,

    /**
     * Stores a manifest. Everything it names must already be in the repository (else
     * MANIFEST_BLOB_UNKNOWN, nothing stored). By tag, it then joins the release: image
     * `<image>` of draft `<bundle>@<tag>` (created if needed) becomes this manifest; an approved
     * version refuses (409 DENIED, detail.convoyCode = version_immutable).
     */
    async putManifest(repo: Repository, reference: Reference, bytes: Buffer, contentType: string | undefined): Promise<{ digest: string; subject: string | undefined; created: boolean }> {
      await requireBundle(repo);
      if (bytes.length > maxManifestBytes) throw new OciError('SIZE_INVALID', `the manifest exceeds ${maxManifestBytes} bytes`, {}, { status: 413 });
      const version = reference.type === 'tag' ? versionOfTag(reference.tag) : undefined;
      const parsed = parseManifest(bytes, contentType);
      // From checking that the blobs are stored to naming them in the release, the blob
      // collector waits: it never deletes a blob this push has just found present.
      return blobs.referencing(async () => {
        const missingBlobs = await store.missingBlobs(repo.name, parsed.blobs.map((d) => d.digest));
        const missingManifests = await store.missingManifests(repo.name, parsed.manifests.map((d) => d.digest));
        const missing = [...missingBlobs, ...missingManifests];
        if (missing.length > 0) {
          throw new OciError('MANIFEST_BLOB_UNKNOWN', `the manifest names ${missing.length} ${missingBlobs.length ? 'blob' : 'manifest'}(s) not pushed to ${repo.name} first, e.g. ${missing[0]}`, { digest: missing[0] });
        }
        for (const entry of parsed.blobs) {
          const stat = await blobs.stat(entry.digest);
          if (!stat) throw new OciError('MANIFEST_BLOB_UNKNOWN', `blob ${entry.digest} is no longer stored; push it again`, { digest: entry.digest });
          if (stat.size !== entry.size) throw new OciError('MANIFEST_INVALID', `the manifest says blob ${entry.digest} is ${entry.size} bytes; it is ${stat.size}`, { digest: entry.digest });
        }
        // Checked before storing anything: a push to an approved version leaves no trace.
        if (version !== undefined) {
          const existing = await deps.bundles.getVersion(repo.bundle, version).catch(() => undefined);
          if (existing && existing.status !== 'draft') {
            throw new OciError('DENIED', `${repo.bundle}@${version} is ${existing.status} and can no longer change; push the image with a new version`, { convoyCode: 'version_immutable', bundle: repo.bundle, version }, { status: 409 });
          }
        }
        const stored = await blobs.putBytes(bytes);
        if (reference.type === 'digest' && reference.digest !== stored.digest) {
          throw new OciError('DIGEST_INVALID', `the manifest hashes to ${stored.digest}, not ${reference.digest}`, { expected: reference.digest, actual: stored.digest });
        }
        await store.insertManifest(
          {
            repository: repo.name,
            digest: stored.digest,
            media_type: parsed.mediaType,
            size: stored.size,
            subject: parsed.subject ?? null,
            artifact_type: parsed.artifactType ?? null,
            annotations: parsed.annotations,
            created_at: now(),
          },
          [...parsed.blobs.map((d) => ({ ref: d.digest, kind: 'blob' as const })), ...parsed.manifests.map((d) => ({ ref: d.digest, kind: 'manifest' as const }))],
        );
        let created = true;
        if (version !== undefined) {
          await deps.bundles.ensureVersion(repo.bundle, version);
          try {
            created = (await deps.bundles.putArtifact(repo.bundle, version, { name: repo.image, type: 'image', digest: stored.digest, size: stored.size }, { referencing: true })).created;
          } catch (error) {
            if (error instanceof ApiError && error.code === 'version_immutable') {
              throw new OciError('DENIED', error.message, { convoyCode: 'version_immutable', bundle: repo.bundle, version }, { status: 409 });
            }
            throw error;
          }
          deps.log.info('image pushed into a release', { repository: repo.name, version, digest: stored.digest });
        }
        return { digest: stored.digest, subject: parsed.subject, created };
      });
    },

    async listTags(repo: Repository, n: number | undefined, last: string | undefined, options: { signedOnly?: boolean } = {}): Promise<{ tags: string[]; more: boolean }> {
      await requireBundle(repo);
      return pageTags(await store.listTags(repo.name, repo.bundle, repo.image, options.signedOnly ? 'approved' : undefined), n, last);
    },

    /**
     * The catalog (distribution's `GET /v2/_catalog`): repositories the caller may read, at most
     * `n` after `last`. Others' repositories are skipped, never counted, so a page holds `n`
     * readable names whenever there are that many; the scan reads the table in batches.
     */
    async listRepositories(mayRead: (repository: string) => boolean, n: number, last: string | undefined): Promise<{ repositories: string[]; more: boolean }> {
      const batch = Math.max(n + 1, 100);
      const found: string[] = [];
      let cursor = last;
      for (;;) {
        const names = await store.listRepositories(cursor, batch);
        for (const name of names) {
          if (mayRead(name)) found.push(name);
          if (found.length > n) return { repositories: found.slice(0, n), more: true };
        }
        if (names.length < batch) return { repositories: found, more: false };
        cursor = names.at(-1);
      }
    },

    async listReferrers(repo: Repository, subject: string, artifactType: string | undefined): Promise<StoredManifest[]> {
      await requireBundle(repo);
      const all = await store.listReferrers(repo.name, subject);
      return artifactType === undefined ? all : all.filter((m) => m.artifactType === artifactType);
    },
  };
}

export type OciService = ReturnType<typeof createOciService>;
