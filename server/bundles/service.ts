import type { Artifact, Bundle, BundleVersion } from '../../protocol/api.ts';
import { manifestSchemaId, type BundleManifest } from '../../protocol/manifest.ts';
import type { ArtifactType } from '../../protocol/names.ts';
import type { Logger } from '../../protocol/log.ts';
import type { BlobStore } from '../blobs/store.ts';
import type { Db } from '../db/knex.ts';
import { ApiError } from '../http/errors.ts';
import type { TrustService } from '../trust/service.ts';
import { isUniqueViolation, toVersion, type BundleStore, type VersionRow } from './store.ts';

/**
 * Bundles and their versions. The one rule that matters most lives here: a version is a draft
 * until approved, and an approved version never changes again (409 `version_immutable`).
 * Every edit re-reads the version inside its transaction, so an approval racing an edit leaves
 * either the edit in the approved version or the edit refused, never half of it.
 */
export function createBundleService(deps: { store: BundleStore; blobs: BlobStore; trust: TrustService; now: () => Date; log: Logger }) {
  const { store } = deps;
  const now = () => deps.now().toISOString();

  async function requireBundle(name: string, trx?: Db): Promise<Bundle> {
    const found = await store.findBundle(name, trx);
    if (!found) throw new ApiError('not_found', `bundle "${name}" does not exist`);
    return found;
  }

  async function requireVersion(bundle: string, version: string, trx?: Db, lock = false): Promise<VersionRow> {
    const row = await store.findVersionRow(bundle, version, trx, lock);
    if (!row) {
      await requireBundle(bundle, trx);
      throw new ApiError('not_found', `version ${bundle}@${version} does not exist`);
    }
    return row;
  }

  function requireDraft(row: VersionRow): void {
    if (row.status !== 'draft') {
      throw new ApiError('version_immutable', `${row.bundle}@${row.version} is approved and can no longer change; create a new version`);
    }
  }

  /** Runs an edit of a draft in one transaction, with the version locked. */
  async function editDraft<T>(bundle: string, version: string, edit: (row: VersionRow, trx: Db) => Promise<T>): Promise<T> {
    return store.db.transaction(async (trx) => {
      const row = await requireVersion(bundle, version, trx, true);
      requireDraft(row);
      return edit(row, trx);
    });
  }

  return {
    async createBundle(name: string, description = ''): Promise<Bundle> {
      try {
        await store.insertBundle(name, description, now());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `bundle "${name}" already exists`);
        throw error;
      }
      return requireBundle(name);
    },

    listBundles: () => store.listBundles(),
    getBundle: (name: string) => requireBundle(name),

    async deleteBundle(name: string): Promise<void> {
      await store.db.transaction(async (trx) => {
        await requireBundle(name, trx);
        if ((await store.countApproved(name, trx)) > 0) {
          throw new ApiError('version_immutable', `bundle "${name}" has approved versions, which are kept forever`);
        }
        // Blobs stay: the store is content-addressed and other versions may share them.
        await store.deleteBundle(name, trx);
      });
    },

    async createVersion(bundle: string, version: string): Promise<BundleVersion> {
      await requireBundle(bundle);
      try {
        await store.insertVersion(bundle, version, now());
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `version ${bundle}@${version} already exists`);
        throw error;
      }
      return toVersion((await store.findVersionRow(bundle, version))!);
    },

    /** Creates the draft if it does not exist yet; returns it either way. */
    async ensureVersion(bundle: string, version: string): Promise<BundleVersion> {
      const existing = await store.findVersionRow(bundle, version);
      if (existing) return toVersion(existing);
      try {
        return await this.createVersion(bundle, version);
      } catch (error) {
        // Another request created it in between: that is the same outcome.
        if (error instanceof ApiError && error.code === 'already_exists') return toVersion((await store.findVersionRow(bundle, version))!);
        throw error;
      }
    },

    async listVersions(bundle: string): Promise<BundleVersion[]> {
      await requireBundle(bundle);
      return store.listVersions(bundle);
    },

    async getVersion(bundle: string, version: string): Promise<BundleVersion> {
      return toVersion(await requireVersion(bundle, version));
    },

    async deleteVersion(bundle: string, version: string): Promise<void> {
      await editDraft(bundle, version, (row, trx) => store.deleteVersion(row.id, trx));
    },

    async listArtifacts(bundle: string, version: string): Promise<Artifact[]> {
      const row = await requireVersion(bundle, version);
      return store.listArtifacts(row.id);
    },

    async getArtifact(bundle: string, version: string, name: string): Promise<Artifact> {
      const row = await requireVersion(bundle, version);
      const found = await store.findArtifact(row.id, name);
      if (!found) throw new ApiError('not_found', `artifact "${name}" is not in ${bundle}@${version}`);
      return found;
    },

    /** Adds or replaces an artifact in a draft. Its bytes must already be in the blob store. */
    async putArtifact(bundle: string, version: string, artifact: { name: string; type: ArtifactType; digest: string; size: number }): Promise<{ artifact: Artifact; created: boolean }> {
      const stored = await deps.blobs.stat(artifact.digest);
      if (!stored) throw new ApiError('invalid_request', `blob ${artifact.digest} is not in the store; upload it first (PUT /api/v1/blobs/${artifact.digest})`);
      if (stored.size !== artifact.size) throw new ApiError('size_mismatch', `blob ${artifact.digest} is ${stored.size} bytes, not ${artifact.size}`);
      const outcome = await editDraft(bundle, version, (row, trx) => store.upsertArtifact(row.id, artifact, now(), trx));
      return { artifact: await this.getArtifact(bundle, version, artifact.name), created: outcome === 'created' };
    },

    async deleteArtifact(bundle: string, version: string, name: string): Promise<void> {
      await editDraft(bundle, version, async (row, trx) => {
        if ((await store.deleteArtifact(row.id, name, trx)) === 0) throw new ApiError('not_found', `artifact "${name}" is not in ${bundle}@${version}`);
      });
    },

    /**
     * Freezes a draft: writes its manifest, marks it approved, then signs new TUF metadata naming
     * the manifest and every artifact. If signing fails after the commit, the trust service's
     * reconcile at the next start signs it; the version is never approved-but-editable.
     */
    async approve(bundle: string, version: string): Promise<BundleVersion> {
      await editDraft(bundle, version, async (row, trx) => {
        const artifacts = await store.listArtifacts(row.id, trx);
        if (artifacts.length === 0) throw new ApiError('version_empty', `${bundle}@${version} has no artifacts; add at least one before approving`);
        const approvedAt = now();
        const manifest: BundleManifest = {
          schema: manifestSchemaId,
          bundle,
          version,
          approvedAt,
          artifacts: artifacts.map(({ name, type, digest, size }) => ({ name, type, digest, size })),
        };
        const stored = await deps.blobs.putBytes(Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
        await store.markApproved(row.id, approvedAt, stored, trx);
      });
      await deps.trust.publish(`approved ${bundle}@${version}`);
      deps.log.info('approved a version', { bundle, version });
      return toVersion((await store.findVersionRow(bundle, version))!);
    },

    async requireApproved(bundle: string, version: string): Promise<BundleVersion> {
      const row = await requireVersion(bundle, version);
      if (row.status === 'revoked') throw new ApiError('version_revoked', `${bundle}@${version} was revoked; deploy another version`);
      if (row.status !== 'approved') throw new ApiError('version_not_approved', `${bundle}@${version} is a draft; approve it before deploying`);
      return toVersion(row);
    },
  };
}

export type BundleService = ReturnType<typeof createBundleService>;
