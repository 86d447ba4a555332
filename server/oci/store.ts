import type { Db } from '../db/knex.ts';
import { isUniqueViolation } from '../db/errors.ts';

/** knex queries for the registry. No rules here: service.ts decides. */

export interface ManifestRow {
  repository: string;
  digest: string;
  media_type: string;
  size: number | string; // PostgreSQL returns bigint as a string
  subject: string | null;
  artifact_type: string | null;
  annotations: string | null;
  created_at: string;
}

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | undefined;
  annotations: Record<string, string> | undefined;
}

function toManifest(row: ManifestRow): StoredManifest {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    size: Number(row.size),
    artifactType: row.artifact_type ?? undefined,
    annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : undefined,
  };
}

/** Inserts a row, treating "already there" as success: every write here is idempotent. */
async function insertIgnore(trx: Db, table: string, row: Record<string, unknown>): Promise<void> {
  try {
    await trx(table).insert(row).onConflict().ignore();
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
  }
}

export function createOciStore(db: Db) {
  return {
    db,
    async hasRepositoryBlob(repository: string, digest: string): Promise<boolean> {
      return (await db('oci_repository_blobs').where({ repository, digest }).first()) !== undefined;
    },
    async linkBlob(repository: string, digest: string, now: string): Promise<void> {
      await insertIgnore(db, 'oci_repository_blobs', { repository, digest, created_at: now });
    },
    /**
     * The bundles whose repositories (`<bundle>/<image>`) hold the digest: blobs pushed or
     * mounted there (configs, layers) and manifests stored there (images, indexes, referrers).
     */
    async bundlesReferencing(digest: string): Promise<string[]> {
      const blobs = await db('oci_repository_blobs').where({ digest }).distinct('repository');
      const manifests = await db('oci_manifests').where({ digest }).distinct('repository');
      return [...new Set([...blobs, ...manifests].map((r: { repository: string }) => r.repository.split('/')[0]!))];
    },
    async findManifest(repository: string, digest: string): Promise<StoredManifest | undefined> {
      const row = await db<ManifestRow>('oci_manifests').where({ repository, digest }).first();
      return row ? toManifest(row) : undefined;
    },
    async missingManifests(repository: string, digests: readonly string[]): Promise<string[]> {
      if (digests.length === 0) return [];
      const found = new Set((await db('oci_manifests').where({ repository }).whereIn('digest', [...new Set(digests)]).select('digest')).map((r: { digest: string }) => r.digest));
      return digests.filter((d) => !found.has(d));
    },
    async missingBlobs(repository: string, digests: readonly string[]): Promise<string[]> {
      if (digests.length === 0) return [];
      const found = new Set((await db('oci_repository_blobs').where({ repository }).whereIn('digest', [...new Set(digests)]).select('digest')).map((r: { digest: string }) => r.digest));
      return digests.filter((d) => !found.has(d));
    },
    /** Records a manifest in a repository with what it references, all or nothing. */
    async insertManifest(
      row: Omit<ManifestRow, 'annotations'> & { annotations: Record<string, string> | undefined },
      refs: readonly { ref: string; kind: 'blob' | 'manifest' }[],
    ): Promise<void> {
      await db.transaction(async (trx) => {
        for (const ref of new Map(refs.map((r) => [r.ref, r])).values()) {
          await insertIgnore(trx, 'oci_manifest_refs', { manifest: row.digest, ref: ref.ref, kind: ref.kind });
        }
        await insertIgnore(trx, 'oci_manifests', { ...row, annotations: row.annotations ? JSON.stringify(row.annotations) : null });
      });
    },
    async listReferrers(repository: string, subject: string): Promise<StoredManifest[]> {
      return (await db<ManifestRow>('oci_manifests').where({ repository, subject }).orderBy('created_at').orderBy('digest')).map(toManifest);
    },
    /**
     * Tags of `<bundle>/<image>`: the versions of the bundle whose image artifact of that name is
     * a manifest pushed to this repository (`status`: only versions in it). Reads the bundle
     * tables, never writes them.
     */
    async listTags(repository: string, bundle: string, image: string, status?: 'approved'): Promise<string[]> {
      const query = db('versions')
        .join('artifacts', 'artifacts.version_id', 'versions.id')
        .join('oci_manifests', function () {
          this.on('oci_manifests.digest', '=', 'artifacts.digest').andOn('oci_manifests.repository', '=', db.raw('?', [repository]));
        })
        .where({ 'versions.bundle': bundle, 'artifacts.name': image, 'artifacts.type': 'image' })
        .select('versions.version');
      if (status) query.where('versions.status', status);
      const rows = await query;
      return rows.map((r: { version: string }) => r.version);
    },
    /**
     * Repositories that have at least one tag (a version holding the image), name-ordered, after
     * `after`, at most `limit`: the catalog is exactly what tags/list would answer for.
     */
    async listRepositories(after: string | undefined, limit: number): Promise<string[]> {
      const name = "versions.bundle || '/' || artifacts.name";
      const query = db('versions')
        .join('artifacts', 'artifacts.version_id', 'versions.id')
        .join('oci_manifests', function () {
          this.on('oci_manifests.digest', '=', 'artifacts.digest').andOn('oci_manifests.repository', '=', db.raw(name));
        })
        .where('artifacts.type', 'image')
        .select(db.raw(`distinct ${name} as repository`))
        .orderBy('repository')
        .limit(limit);
      if (after !== undefined) query.whereRaw(`${name} > ?`, [after]);
      return (await query).map((r: { repository: string }) => r.repository);
    },
    /**
     * What an image manifest (or index) references, for replication: its media type, the child
     * manifests an index names (with theirs) and every config/layer blob below it.
     */
    async imageGraph(root: string): Promise<{ mediaType: string; children: { digest: string; mediaType: string; size: number }[]; blobs: string[] } | undefined> {
      const describe = async (digest: string) => db<ManifestRow>('oci_manifests').where({ digest }).first();
      const top = await describe(root);
      if (!top) return undefined;
      const children: { digest: string; mediaType: string; size: number }[] = [];
      const blobs = new Set<string>();
      const seen = new Set<string>([root]);
      let frontier = [root];
      while (frontier.length > 0) {
        const next: string[] = [];
        for (const row of await db('oci_manifest_refs').whereIn('manifest', frontier).orderBy('ref').select('ref', 'kind')) {
          if (row.kind === 'blob') blobs.add(row.ref);
          else if (!seen.has(row.ref)) {
            seen.add(row.ref);
            const child = await describe(row.ref);
            if (child) children.push({ digest: child.digest, mediaType: child.media_type, size: Number(child.size) });
            next.push(row.ref);
          }
        }
        frontier = next;
      }
      // Deepest first: a registry accepts an index only once the manifests it names are there.
      return { mediaType: top.media_type, children: children.reverse(), blobs: [...blobs] };
    },
    async insertUpload(id: string, repository: string, createdBy: string, now: string): Promise<void> {
      await db('oci_uploads').insert({ id, repository, created_by: createdBy, created_at: now });
    },
    async findUpload(id: string): Promise<{ id: string; repository: string; created_by: string; created_at: string } | undefined> {
      return db('oci_uploads').where({ id }).first();
    },
    async deleteUpload(id: string): Promise<void> {
      await db('oci_uploads').where({ id }).delete();
    },
    /**
     * Forgets every repository of a bundle (`<bundle>/<image>`): its manifests, blob links and
     * upload sessions (whose ids it answers, for their files). The manifest references are keyed
     * by content and shared, so they stay; the blob collector then frees what nothing names.
     */
    async deleteBundleRepositories(bundle: string): Promise<string[]> {
      // Matched by prefix in code: "_" in a bundle name would be a LIKE wildcard.
      const inBundle = (repository: string) => repository.startsWith(`${bundle}/`);
      return db.transaction(async (trx) => {
        const manifests = [...new Set((await trx('oci_manifests').distinct('repository')).map((r: { repository: string }) => r.repository))].filter(inBundle);
        const links = [...new Set((await trx('oci_repository_blobs').distinct('repository')).map((r: { repository: string }) => r.repository))].filter(inBundle);
        const uploads = (await trx('oci_uploads').select('id', 'repository')).filter((r: { repository: string }) => inBundle(r.repository)).map((r: { id: string }) => r.id);
        for (let i = 0; i < manifests.length; i += 500) await trx('oci_manifests').whereIn('repository', manifests.slice(i, i + 500)).delete();
        for (let i = 0; i < links.length; i += 500) await trx('oci_repository_blobs').whereIn('repository', links.slice(i, i + 500)).delete();
        for (let i = 0; i < uploads.length; i += 500) await trx('oci_uploads').whereIn('id', uploads.slice(i, i + 500)).delete();
        return uploads;
      });
    },
    /** Upload sessions started before `before`, for the sweeper. */
    async listUploadsBefore(before: string): Promise<string[]> {
      return (await db('oci_uploads').where('created_at', '<', before).select('id')).map((r: { id: string }) => r.id);
    },
  };
}

export type OciStore = ReturnType<typeof createOciStore>;

/**
 * Every blob digest an image in a bundle version still needs: the manifest an image artifact
 * names, for an index each child manifest, the config and layers of each, and every manifest that
 * refers to one of those (signatures, SBOMs: the referrers API). For the blob garbage collector:
 * a digest in this set must not be removed. Manifests pushed by digest but not (yet) reachable
 * from a version, and blobs uploaded but not yet named by a manifest, are left to the collector's
 * grace period for uploads in flight.
 */
export async function ociReferencedDigests(db: Db): Promise<Set<string>> {
  const roots: string[] = (await db('artifacts').where({ type: 'image' }).distinct('digest')).map((r: { digest: string }) => r.digest);
  const keep = new Set<string>();
  let frontier = roots.filter((d) => !keep.has(d));
  // Breadth-first over the reference graph; bounded by the number of stored manifests since a
  // digest is expanded once.
  while (frontier.length > 0) {
    for (const digest of frontier) keep.add(digest);
    const next = new Set<string>();
    for (let i = 0; i < frontier.length; i += 500) {
      const batch = frontier.slice(i, i + 500);
      for (const row of await db('oci_manifest_refs').whereIn('manifest', batch).select('ref', 'kind')) {
        if (row.kind === 'blob') keep.add(row.ref);
        else if (!keep.has(row.ref)) next.add(row.ref);
      }
      for (const row of await db('oci_manifests').whereIn('subject', batch).distinct('digest')) {
        if (!keep.has(row.digest)) next.add(row.digest);
      }
    }
    frontier = [...next];
  }
  return keep;
}
