import type { Readable } from 'node:stream';
import type { Artifact, ArtifactFilter, Bundle, BundleVersion, NextVersion, PackageInfo, PackageInput } from '../../protocol/api.ts';
import { buildBundleManifest, encodeBundleManifest, type BundleManifest } from '../../protocol/manifest.ts';
import type { ArtifactType } from '../../protocol/names.ts';
import type { Logger } from '../../protocol/log.ts';
import type { BlobStore } from '../blobs/store.ts';
import type { Db } from '../db/knex.ts';
import { ApiError } from '../http/errors.ts';
import type { TrustService } from '../trust/service.ts';
import { contentFingerprint } from './manifest.ts';
import { computeNextVersion, type Bump } from './next-version.ts';
import { readPackageFields, resolvePackage } from './packages.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { toVersion, type BundleFilter, type BundleStore, type VersionRow, type Window } from './store.ts';

/** An artifact as a request describes it: the bytes by digest, package metadata as given. */
export interface ArtifactInput {
  name: string;
  type: ArtifactType;
  digest: string;
  size: number;
  package?: PackageInput | undefined;
}

/**
 * Bundles and their versions. The one rule that matters most lives here: a version is a draft
 * until approved, and an approved version never changes again (409 `version_immutable`).
 * Every edit re-reads the version inside its transaction, so an approval racing an edit leaves
 * either the edit in the approved version or the edit refused, never half of it.
 */
export function createBundleService(deps: {
  store: BundleStore;
  blobs: BlobStore;
  trust: TrustService;
  now: () => Date;
  log: Logger;
  /** After a bundle is deleted: what other capabilities keep of it goes too (the registry's images). */
  onDeleted?: (bundle: string) => Promise<void>;
}) {
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

  /**
   * Checks that the blob is stored with the claimed size and reads the package metadata from it.
   * Runs before `blobs.referencing`: a scan may take a while, and the collector (and every
   * writer queued behind it) must not wait for it; `confirmStored` checks again inside.
   */
  async function describeArtifact(input: ArtifactInput): Promise<Omit<Artifact, 'updatedAt'>> {
    await confirmStored(input);
    return { name: input.name, type: input.type, digest: input.digest, size: input.size, package: await packageOf(input.type, input.package, input.digest) };
  }

  /**
   * The blob is stored with the claimed size. Inside `blobs.referencing` this holds until the
   * reference is recorded: the blob cannot be collected in between.
   */
  async function confirmStored(input: { digest: string; size: number }): Promise<void> {
    const stored = await deps.blobs.stat(input.digest);
    if (!stored) throw new ApiError('invalid_request', `blob ${input.digest} is not in the store; upload it first (PUT /api/v1/blobs/${input.digest})`);
    if (stored.size !== input.size) throw new ApiError('size_mismatch', `blob ${input.digest} is ${stored.size} bytes, not ${input.size}`);
    // A blob about to be referenced must not look old to a collector sweep that starts now.
    await deps.blobs.touch(input.digest);
  }

  async function packageOf(type: ArtifactType, input: PackageInput | undefined | null, digest: string): Promise<PackageInfo | null> {
    if (type !== 'package') {
      if (input) throw new ApiError('invalid_request', `only artifacts of type "package" carry package metadata; this one is "${type}"`);
      return null;
    }
    if (!input) throw new ApiError('invalid_request', 'an artifact of type "package" needs package metadata: at least {"format": "deb"|"rpm"|"npm"|"generic"}');
    return resolvePackage(input, await readPackageFields(input.format, deps.blobs.pathOf(digest)));
  }

  /** Adds or replaces one described artifact; the caller holds `blobs.referencing` (kept short). */
  async function upsertReferenced(bundle: string, version: string, artifact: Omit<Artifact, 'updatedAt'>, create: boolean): Promise<{ artifact: Artifact; created: boolean }> {
    await confirmStored(artifact);
    return editDraft(bundle, version, async (row, trx) => {
      const outcome = await store.upsertArtifact(row.id, artifact, now(), trx);
      return { artifact: (await store.findArtifact(row.id, artifact.name, trx))!, created: outcome === 'created' };
    }, { create });
  }

  /** The transaction of a PATCH: `scanned` was read from `digest` beforehand; 'changed' if the artifact moved on. */
  async function patchArtifactIn(bundle: string, version: string, name: string, patch: { type?: ArtifactType | undefined; package?: PackageInput | null | undefined }, digest: string, scanned: PackageInfo | null | undefined): Promise<Artifact | 'changed'> {
    return editDraft(bundle, version, async (row, trx) => {
      const existing = await store.findArtifact(row.id, name, trx);
      if (!existing) throw new ApiError('not_found', `artifact "${name}" is not in ${bundle}@${version}`);
      if (existing.digest !== digest) return 'changed';
      // Package metadata without a type makes the artifact a package: there is no other reading.
      const type = patch.type ?? (patch.package ? 'package' : existing.type);
      let pkg: PackageInfo | null;
      if (patch.package === undefined) {
        if (type === 'package' && !existing.package) throw new ApiError('invalid_request', 'changing the type to "package" needs package metadata too');
        pkg = type === 'package' ? existing.package : null;
      } else {
        pkg = scanned !== undefined ? scanned : await packageOf(type, patch.package, existing.digest);
      }
      await store.updateArtifactMetadata(row.id, name, { type, package: pkg }, now(), trx);
      return (await store.findArtifact(row.id, name, trx))!;
    });
  }

  /**
   * A cheap early answer for edits of an approved version (409 before any blob is checked or
   * read). Not the guard itself: `editDraft` checks again, atomically, inside its transaction.
   */
  async function refuseIfApproved(bundle: string, version: string): Promise<void> {
    const row = await store.findVersionRow(bundle, version);
    if (row) requireDraft(row);
  }

  /** Runs an edit of a draft in one transaction, with the version locked. */
  async function editDraft<T>(bundle: string, version: string, edit: (row: VersionRow, trx: Db) => Promise<T>, options: { create?: boolean } = {}): Promise<T> {
    const attempt = () =>
      store.db.transaction(async (trx) => {
        let row = await store.findVersionRow(bundle, version, trx, true);
        if (!row && options.create) {
          // Created in the same transaction as the edit: if the edit fails, no empty draft stays.
          await requireBundle(bundle, trx);
          await store.insertVersion(bundle, version, now(), trx);
          row = await store.findVersionRow(bundle, version, trx, true);
        }
        if (!row) row = await requireVersion(bundle, version, trx, true);
        requireDraft(row);
        return edit(row, trx);
      });
    try {
      return await attempt();
    } catch (error) {
      // Another request created the draft at the same moment: edit the one it created.
      if (options.create && isUniqueViolation(error)) return attempt();
      throw error;
    }
  }

  async function nonEmptyArtifacts(row: VersionRow, trx: Db): Promise<Artifact[]> {
    const artifacts = await store.listArtifacts(row.id, trx);
    if (artifacts.length === 0) throw new ApiError('version_empty', `${row.bundle}@${row.version} has no artifacts; add at least one before approving`);
    return artifacts;
  }

  function checkFingerprint(row: VersionRow, artifacts: readonly Artifact[], expected: string | undefined): void {
    if (expected !== undefined && contentFingerprint(artifacts) !== expected) {
      throw new ApiError('proposal_stale', `${row.bundle}@${row.version} changed while it was being approved; the approvals are for its earlier content: review it and approve again`);
    }
  }

  const storeManifest = (manifest: BundleManifest) => deps.blobs.putBytes(Buffer.from(encodeBundleManifest(manifest)));

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

    listBundles: (filter: BundleFilter = {}, window?: Window) => store.listBundles(filter, window),
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
      // A new bundle of the same name must not inherit anything (its members are new people).
      await deps.onDeleted?.(name);
    },

    /** Creates a draft; with `copyFrom`, holding every artifact of that version (blobs shared). */
    async createVersion(bundle: string, version: string, copyFrom?: string): Promise<BundleVersion> {
      await requireBundle(bundle);
      try {
        const create = () =>
          store.db.transaction(async (trx) => {
            const source = copyFrom === undefined ? undefined : await requireVersion(bundle, copyFrom, trx);
            await store.insertVersion(bundle, version, now(), trx);
            if (source) {
              const created = (await store.findVersionRow(bundle, version, trx))!;
              await store.copyArtifacts(source.id, created.id, now(), trx);
            }
          });
        // A copy records new references to existing blobs: the collector must not sweep meanwhile.
        // (Not nested in another `referencing`: a waiting sweep would block the inner one.)
        await (copyFrom === undefined ? create() : deps.blobs.referencing(create));
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `version ${bundle}@${version} already exists`);
        throw error;
      }
      return toVersion((await store.findVersionRow(bundle, version))!);
    },

    async nextVersion(bundle: string, bump: Bump, preid?: string): Promise<NextVersion> {
      await requireBundle(bundle);
      const { previous, version } = computeNextVersion(await store.versionStrings(bundle), bump, preid);
      return { bundle, previous, version, bump };
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

    async listVersions(bundle: string, filter: { status?: 'draft' | 'approved' | 'revoked' | undefined } = {}, window?: Window): Promise<{ items: BundleVersion[]; total: number }> {
      await requireBundle(bundle);
      return store.listVersions(bundle, filter, window);
    },

    async getVersion(bundle: string, version: string): Promise<BundleVersion> {
      return toVersion(await requireVersion(bundle, version));
    },

    async deleteVersion(bundle: string, version: string): Promise<void> {
      await editDraft(bundle, version, (row, trx) => store.deleteVersion(row.id, trx));
    },

    async listArtifacts(bundle: string, version: string, filter: ArtifactFilter = {}, window: Window = { offset: 0, limit: Number.MAX_SAFE_INTEGER }): Promise<{ items: Artifact[]; total: number }> {
      const row = await requireVersion(bundle, version);
      return store.findArtifacts(row.id, filter, window);
    },

    async getArtifact(bundle: string, version: string, name: string): Promise<Artifact> {
      const row = await requireVersion(bundle, version);
      const found = await store.findArtifact(row.id, name);
      if (!found) throw new ApiError('not_found', `artifact "${name}" is not in ${bundle}@${version}`);
      return found;
    },

    /** Adds or replaces an artifact in a draft. Its bytes must already be in the blob store. */
    async putArtifact(bundle: string, version: string, input: ArtifactInput, options: { createDraft?: boolean; referencing?: boolean } = {}): Promise<{ artifact: Artifact; created: boolean }> {
      await refuseIfApproved(bundle, version);
      const artifact = await describeArtifact(input);
      const upsert = () => upsertReferenced(bundle, version, artifact, options.createDraft === true);
      // `referencing: the caller already holds blobs.referencing` (nesting it could deadlock
      // behind a waiting sweep).
      return options.referencing ? upsert() : deps.blobs.referencing(upsert);
    },

    /**
     * Adds or replaces many artifacts in one transaction, creating the draft if needed: all of
     * them land, or (on any error) none.
     */
    async addArtifacts(bundle: string, version: string, inputs: readonly ArtifactInput[]): Promise<Artifact[]> {
      await requireBundle(bundle);
      await refuseIfApproved(bundle, version);
      const artifacts: Omit<Artifact, 'updatedAt'>[] = [];
      for (const input of inputs) artifacts.push(await describeArtifact(input));
      return deps.blobs.referencing(async () => {
        for (const artifact of artifacts) await confirmStored(artifact);
        return editDraft(bundle, version, async (row, trx) => {
          for (const artifact of artifacts) await store.upsertArtifact(row.id, artifact, now(), trx);
          const result: Artifact[] = [];
          for (const artifact of artifacts) result.push((await store.findArtifact(row.id, artifact.name, trx))!);
          return result;
        }, { create: true });
      });
    },

    /** New metadata (type, package fields) for an artifact of a draft; its bytes stay. */
    async patchArtifact(bundle: string, version: string, name: string, patch: { type?: ArtifactType | undefined; package?: PackageInput | null | undefined }): Promise<Artifact> {
      // A package scan reads the file: it runs before the transaction, never inside it (on SQLite
      // a transaction holds the only connection). The transaction then checks the artifact still
      // names the bytes that were read; if it was replaced meanwhile, read again.
      await refuseIfApproved(bundle, version);
      for (let attempt = 1; ; attempt++) {
        const before = await this.getArtifact(bundle, version, name);
        const scanned = patch.package ? await packageOf(patch.type ?? 'package', patch.package, before.digest) : undefined;
        const result = await patchArtifactIn(bundle, version, name, patch, before.digest, scanned);
        if (result !== 'changed') return result;
        if (attempt === 3) throw new ApiError('invalid_request', `artifact "${name}" keeps changing while its package metadata is read; try again`);
      }
    },

    /**
     * The one-request upload (`curl --upload-file`): streams the bytes into the blob store, then
     * adds or replaces the artifact in the draft, creating the draft if needed. An approved
     * version is refused before a byte is read, and again atomically when the artifact is added.
     */
    async uploadFile(
      bundle: string,
      version: string,
      input: { name: string; type: ArtifactType; package?: PackageInput | undefined; expectedDigest?: string | undefined; expectedSize?: number | undefined; maxBytes: number },
      source: Readable,
    ): Promise<{ artifact: Artifact; created: boolean }> {
      await requireBundle(bundle);
      await refuseIfApproved(bundle, version);
      if (input.type !== 'package' && input.package) throw new ApiError('invalid_request', `only artifacts of type "package" carry package metadata; this one is "${input.type}"`);
      if (input.type === 'package' && !input.package) throw new ApiError('invalid_request', 'an artifact of type "package" needs ?format=deb|rpm|npm|generic');
      // The bytes stream in outside `blobs.referencing`: a slow client must not make the
      // collector wait, nor every writer queued behind the collector. A blob just written is
      // inside the collector's grace period; the short referencing section checks it is still
      // there before naming it in the draft.
      const stored = await deps.blobs.put(source, {
        maxBytes: input.maxBytes,
        ...(input.expectedDigest ? { expected: input.expectedDigest } : {}),
        ...(input.expectedSize !== undefined ? { expectedSize: input.expectedSize } : {}),
      });
      const artifact = await describeArtifact({ name: input.name, type: input.type, digest: stored.digest, size: stored.size, package: input.package });
      return deps.blobs.referencing(() => upsertReferenced(bundle, version, artifact, true));
    },

    async deleteArtifact(bundle: string, version: string, name: string): Promise<void> {
      await editDraft(bundle, version, async (row, trx) => {
        if ((await store.deleteArtifact(row.id, name, trx)) === 0) throw new ApiError('not_found', `artifact "${name}" is not in ${bundle}@${version}`);
      });
    },

    /**
     * Freezes and signs a draft (the server holds the targets key): writes its manifest, marks it
     * approved, then signs new TUF metadata naming the manifest and every artifact. If signing
     * fails after the commit, the trust service's reconcile at the next start signs it; the
     * version is never approved-but-editable. `expectedFingerprint` is the content the approvals
     * were given for, checked in the freezing transaction: an edit that lands between an approval
     * and the freeze is never signed on that approval's behalf.
     */
    async approve(bundle: string, version: string, options: { expectedFingerprint?: string } = {}): Promise<BundleVersion> {
      await editDraft(bundle, version, async (row, trx) => {
        const artifacts = await nonEmptyArtifacts(row, trx);
        checkFingerprint(row, artifacts, options.expectedFingerprint);
        const approvedAt = now();
        const stored = await storeManifest(buildBundleManifest({ bundle, version, approvedAt, artifacts }));
        await store.markApproved(row.id, approvedAt, stored, trx);
      });
      await deps.trust.publish(`approved ${bundle}@${version}`);
      deps.log.info('approved a version', { bundle, version });
      return toVersion((await store.findVersionRow(bundle, version))!);
    },

    /** The fingerprint of a version's content as it is now (what an approval of it vouches for). */
    async fingerprint(bundle: string, version: string): Promise<string> {
      const row = await requireVersion(bundle, version);
      return contentFingerprint(await store.listArtifacts(row.id));
    },

    /**
     * Offline mode, step 1: the manifest a draft would be frozen with, stored (a blob nothing
     * references yet, so the collector may take it if the proposal is abandoned) and described
     * for the targets approvers sign. Built by the same builder as `approve`.
     */
    async proposeManifest(bundle: string, version: string, approvedAt: string): Promise<{ digest: string; size: number; fingerprint: string; artifacts: Artifact[] }> {
      const row = await requireVersion(bundle, version);
      requireDraft(row);
      const artifacts = await nonEmptyArtifacts(row, store.db);
      const stored = await storeManifest(buildBundleManifest({ bundle, version, approvedAt, artifacts }));
      return { ...stored, fingerprint: contentFingerprint(artifacts), artifacts };
    },

    /**
     * Offline mode, step 2: freezes a draft with the manifest its signed targets name, if the
     * draft still holds the content the manifest was made from. `within` runs in the same
     * transaction (the caller publishes the signed targets there: if that fails, nothing froze).
     */
    async freezeSigned(bundle: string, version: string, frozen: { approvedAt: string; manifest: { digest: string; size: number }; fingerprint: string }, within: (trx: Db) => Promise<void>): Promise<void> {
      await store.db.transaction(async (trx) => {
        const row = await requireVersion(bundle, version, trx, true);
        if (row.status !== 'draft') throw new ApiError('proposal_stale', `${bundle}@${version} changed meanwhile`);
        checkFingerprint(row, await store.listArtifacts(row.id, trx), frozen.fingerprint);
        await store.markApproved(row.id, frozen.approvedAt, frozen.manifest, trx);
        await within(trx);
      });
    },

    /**
     * Marks an approved version revoked (the only other write to a frozen version). `within`
     * runs in the same transaction, for the trust records of the revocation.
     */
    async markRevoked(bundle: string, version: string, within: (trx: Db) => Promise<void>): Promise<void> {
      await store.db.transaction(async (trx) => {
        const row = await requireVersion(bundle, version, trx, true);
        if (row.status === 'draft') throw new ApiError('version_not_approved', `${bundle}@${version} is a draft; delete it instead`);
        if (row.status === 'revoked') throw new ApiError('version_revoked', `${bundle}@${version} is already revoked`);
        await store.markRevoked(row.id, trx);
        await within(trx);
      });
    },

    /** Each bundle's most recently approved version that is not revoked; null where all were revoked. */
    async releaseHeads(onlyBundle?: string): Promise<{ bundle: string; latest: BundleVersion | null }[]> {
      return store.releaseHeads(onlyBundle);
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
