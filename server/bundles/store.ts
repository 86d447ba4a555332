import type { Artifact, Bundle, BundleVersion } from '../../protocol/api.ts';
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
  return { name: row.name, type: row.type, digest: row.digest, size: Number(row.size), updatedAt: row.updated_at };
}

export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT' && /UNIQUE/.test(e.message ?? '');
}

export function createBundleStore(db: Db) {
  return {
    db,
    async insertBundle(name: string, description: string, now: string): Promise<void> {
      await db('bundles').insert({ name, description, created_at: now });
    },
    async listBundles(): Promise<Bundle[]> {
      return (await db('bundles').orderBy('name')).map(toBundle);
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
    async insertVersion(bundle: string, version: string, now: string): Promise<void> {
      await db('versions').insert({ bundle, version, status: 'draft', created_at: now });
    },
    async listVersions(bundle: string): Promise<BundleVersion[]> {
      const rows = await db<VersionRow>('versions').where({ bundle }).orderBy('id');
      return rows.map(toVersion);
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
    async listArtifacts(versionId: number, trx: Db = db): Promise<Artifact[]> {
      return (await trx<ArtifactRow>('artifacts').where({ version_id: versionId }).orderBy('name')).map(toArtifact);
    },
    async findArtifact(versionId: number, name: string): Promise<Artifact | undefined> {
      const row = await db<ArtifactRow>('artifacts').where({ version_id: versionId, name }).first();
      return row ? toArtifact(row) : undefined;
    },
    async upsertArtifact(versionId: number, artifact: Omit<Artifact, 'updatedAt'>, now: string, trx: Db): Promise<'created' | 'replaced'> {
      const existing = await trx('artifacts').where({ version_id: versionId, name: artifact.name }).first();
      const row = { type: artifact.type, digest: artifact.digest, size: artifact.size, updated_at: now };
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
