import type { Artifact, ArtifactFilter, Bundle, BundleVersion, PackageInfo } from '../../protocol/api.ts';
import type { ArtifactType } from '../../protocol/names.ts';
import type { Db } from '../db/knex.ts';

/** knex queries for bundles, versions and artifacts. No rules here: the service decides. */

interface VersionRow {
  id: number;
  bundle: string;
  version: string;
  status: 'draft' | 'approved' | 'revoked';
  created_at: string;
  approved_at: string | null;
  manifest_digest: string | null;
  manifest_size: number | string | null;
}

interface ArtifactRow {
  version_id: number;
  name: string;
  type: ArtifactType;
  digest: string;
  size: number | string; // PostgreSQL returns bigint as a string
  updated_at: string;
  package_format: PackageInfo['format'] | null;
  package_name: string | null;
  package_version: string | null;
  package_arch: string | null;
}

/** What one listing asks for: a window (offset, limit) of the filtered rows. */
/** `names`: only these bundles (undefined: all), e.g. the ones the caller may read. */
export interface BundleFilter {
  search?: string | undefined;
  names?: readonly string[] | undefined;
}

export interface Window {
  offset: number;
  limit: number;
}

export function toBundle(row: { name: string; description: string; created_at: string }): Bundle {
  return { name: row.name, description: row.description, createdAt: row.created_at };
}

export function toVersion(row: VersionRow): BundleVersion {
  return {
    bundle: row.bundle,
    version: row.version,
    status: row.status,
    createdAt: row.created_at,
    approvedAt: row.approved_at,
    manifestDigest: row.manifest_digest,
  };
}

export function toArtifact(row: ArtifactRow): Artifact {
  const pkg: PackageInfo | null = row.package_format
    ? { format: row.package_format, name: row.package_name!, version: row.package_version!, architecture: row.package_arch! }
    : null;
  return { name: row.name, type: row.type, digest: row.digest, size: Number(row.size), package: pkg, updatedAt: row.updated_at };
}

function packageColumns(pkg: PackageInfo | null | undefined) {
  return {
    package_format: pkg?.format ?? null,
    package_name: pkg?.name ?? null,
    package_version: pkg?.version ?? null,
    package_arch: pkg?.architecture ?? null,
  };
}

/** Escapes LIKE wildcards so a search for "a_b" matches only that text. */
function likeContaining(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

async function countOf(query: { clone(): any }): Promise<number> {
  const row = await query.clone().clearSelect().clearOrder().count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export function createBundleStore(db: Db) {
  return {
    db,
    async insertBundle(name: string, description: string, now: string): Promise<void> {
      await db('bundles').insert({ name, description, created_at: now });
    },
    async listBundles(filter: BundleFilter = {}, window?: Window): Promise<{ items: Bundle[]; total: number }> {
      const query = db('bundles');
      // In the query, not after it: a page and its X-Total count only what the caller may see.
      if (filter.names) query.whereIn('name', [...filter.names]);
      if (filter.search) query.whereRaw("lower(name) like lower(?) escape '\\'", [likeContaining(filter.search)]);
      const total = await countOf(query);
      const rows = await query.orderBy('name').offset(window?.offset ?? 0).limit(window?.limit ?? Number.MAX_SAFE_INTEGER);
      return { items: rows.map(toBundle), total };
    },
    async findBundle(name: string, trx: Db = db): Promise<Bundle | undefined> {
      const row = await trx('bundles').where({ name }).first();
      return row ? toBundle(row) : undefined;
    },
    async deleteBundle(name: string, trx: Db = db): Promise<void> {
      await trx('bundles').where({ name }).delete();
    },
    async countApproved(bundle: string, trx: Db = db): Promise<number> {
      const row = await trx('versions').where({ bundle, status: 'approved' }).count<{ n: number | string }[]>({ n: '*' }).first();
      return Number(row?.n ?? 0);
    },
    async insertVersion(bundle: string, version: string, now: string, trx: Db = db): Promise<void> {
      await trx('versions').insert({ bundle, version, status: 'draft', created_at: now });
    },
    async listVersions(bundle: string, filter: { status?: 'draft' | 'approved' | 'revoked' | undefined } = {}, window?: Window): Promise<{ items: BundleVersion[]; total: number }> {
      const query = db<VersionRow>('versions').where({ bundle });
      if (filter.status) query.where({ status: filter.status });
      const total = await countOf(query);
      const rows = await query.orderBy('id').offset(window?.offset ?? 0).limit(window?.limit ?? Number.MAX_SAFE_INTEGER);
      return { items: rows.map(toVersion), total };
    },
    /** Every version string of a bundle, for computing the next one. */
    async versionStrings(bundle: string): Promise<string[]> {
      return (await db('versions').where({ bundle }).select('version')).map((row: { version: string }) => row.version);
    },
    /** With `lock`, the row stays locked until the transaction ends (PostgreSQL; SQLite locks the whole database). */
    async findVersionRow(bundle: string, version: string, trx: Db = db, lock = false): Promise<VersionRow | undefined> {
      const query = trx<VersionRow>('versions').where({ bundle, version }).first();
      return lock && trx.client.config.client === 'pg' ? query.forUpdate() : query;
    },
    async deleteVersion(id: number, trx: Db): Promise<void> {
      await trx('versions').where({ id }).delete();
    },
    async markApproved(id: number, approvedAt: string, manifest: { digest: string; size: number }, trx: Db): Promise<void> {
      await trx('versions').where({ id }).update({ status: 'approved', approved_at: approvedAt, manifest_digest: manifest.digest, manifest_size: manifest.size });
    },
    async markRevoked(id: number, trx: Db): Promise<void> {
      await trx('versions').where({ id }).update({ status: 'revoked' });
    },
    /** Per bundle that ever had an approved version: its newest one still approved, or null. */
    async releaseHeads(onlyBundle?: string): Promise<{ bundle: string; latest: BundleVersion | null }[]> {
      const query = db<VersionRow>('versions').whereNotNull('approved_at').whereNotNull('manifest_digest')
        .orderBy([{ column: 'bundle' }, { column: 'approved_at', order: 'desc' }, { column: 'id', order: 'desc' }]);
      if (onlyBundle !== undefined) query.where({ bundle: onlyBundle });
      const heads = new Map<string, BundleVersion | null>();
      for (const row of await query) {
        if (!heads.has(row.bundle)) heads.set(row.bundle, null);
        if (heads.get(row.bundle) === null && row.status === 'approved') heads.set(row.bundle, toVersion(row));
      }
      return [...heads].map(([bundle, latest]) => ({ bundle, latest }));
    },
    async listArtifacts(versionId: number, trx: Db = db): Promise<Artifact[]> {
      return (await trx<ArtifactRow>('artifacts').where({ version_id: versionId }).orderBy('name')).map(toArtifact);
    },
    async findArtifacts(versionId: number, filter: ArtifactFilter, window: Window): Promise<{ items: Artifact[]; total: number }> {
      const query = db<ArtifactRow>('artifacts').where({ version_id: versionId });
      if (filter.type) query.where({ type: filter.type });
      if (filter.name) query.where({ name: filter.name });
      if (filter.search) query.whereRaw("lower(name) like lower(?) escape '\\'", [likeContaining(filter.search)]);
      if (filter.format) query.where({ package_format: filter.format });
      if (filter.architecture) query.where({ package_arch: filter.architecture });
      if (filter.package_name) query.where({ package_name: filter.package_name });
      if (filter.package_version) query.where({ package_version: filter.package_version });
      const total = await countOf(query);
      const rows = await query.orderBy('name').offset(window.offset).limit(window.limit);
      return { items: rows.map(toArtifact), total };
    },
    async findArtifact(versionId: number, name: string, trx: Db = db): Promise<Artifact | undefined> {
      const row = await trx<ArtifactRow>('artifacts').where({ version_id: versionId, name }).first();
      return row ? toArtifact(row) : undefined;
    },
    async updateArtifactMetadata(versionId: number, name: string, meta: { type: Artifact['type']; package: PackageInfo | null }, now: string, trx: Db): Promise<void> {
      await trx('artifacts').where({ version_id: versionId, name }).update({ type: meta.type, ...packageColumns(meta.package), updated_at: now });
    },
    /** Copies every artifact row of one version into another (the blobs are shared, not copied). */
    async copyArtifacts(fromVersionId: number, toVersionId: number, now: string, trx: Db): Promise<void> {
      const rows = await trx<ArtifactRow>('artifacts').where({ version_id: fromVersionId });
      if (rows.length === 0) return;
      await trx('artifacts').insert(rows.map((row) => ({ ...row, version_id: toVersionId, updated_at: now })));
    },
    /** Every digest the bundle tables reference: artifacts and approved manifests. */
    async referencedDigests(): Promise<string[]> {
      const artifacts = await db('artifacts').distinct('digest');
      const manifests = await db('versions').whereNotNull('manifest_digest').distinct('manifest_digest');
      return [...artifacts.map((r: { digest: string }) => r.digest), ...manifests.map((r: { manifest_digest: string }) => r.manifest_digest)];
    },
    /** The bundles whose versions (draft or approved) name the digest, as an artifact or a manifest. */
    async bundlesReferencing(digest: string): Promise<string[]> {
      const byArtifact = db('versions').join('artifacts', 'artifacts.version_id', 'versions.id').where('artifacts.digest', digest).distinct('versions.bundle as bundle');
      const byManifest = db('versions').where('manifest_digest', digest).distinct('bundle');
      return [...new Set([...(await byArtifact), ...(await byManifest)].map((r: { bundle: string }) => r.bundle))];
    },
    async upsertArtifact(versionId: number, artifact: Omit<Artifact, 'updatedAt'>, now: string, trx: Db): Promise<'created' | 'replaced'> {
      const existing = await trx('artifacts').where({ version_id: versionId, name: artifact.name }).first();
      const row = { type: artifact.type, digest: artifact.digest, size: artifact.size, ...packageColumns(artifact.package), updated_at: now };
      if (existing) {
        await trx('artifacts').where({ version_id: versionId, name: artifact.name }).update(row);
        return 'replaced';
      }
      await trx('artifacts').insert({ version_id: versionId, name: artifact.name, ...row });
      return 'created';
    },
    async deleteArtifact(versionId: number, name: string, trx: Db): Promise<number> {
      return trx('artifacts').where({ version_id: versionId, name }).delete();
    },
    /** Every approved version with its artifacts: the input to TUF signing. */
    async listApprovedWithArtifacts(): Promise<{ version: BundleVersion; manifestSize: number; artifacts: Artifact[] }[]> {
      const versions = await db<VersionRow>('versions').where({ status: 'approved' }).orderBy('id');
      const artifacts = await db<ArtifactRow>('artifacts').whereIn('version_id', db('versions').select('id').where({ status: 'approved' }));
      const byVersion = new Map<number, Artifact[]>();
      for (const row of artifacts) byVersion.set(row.version_id, [...(byVersion.get(row.version_id) ?? []), toArtifact(row)]);
      return versions.map((row) => ({ version: toVersion(row), manifestSize: Number(row.manifest_size), artifacts: byVersion.get(row.id) ?? [] }));
    },
  };
}

export type BundleStore = ReturnType<typeof createBundleStore>;
export type { VersionRow };
