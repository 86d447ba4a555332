import type { BundleVersion } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { bundleReleasesTopic, type BundleReleaseNotice } from '../../protocol/messages.ts';
import type { Db } from '../db/knex.ts';
import type { Broker } from './broker.ts';

/**
 * Release notices for people and their tools (CI jobs, dashboards): approving a version
 * publishes a retained message on `convoy/v1/bundles/<name>/releases`, so a subscriber that
 * connects later still learns of the newest release. Approvers are recorded in `approvals`, so the
 * notice can be announced again after a restart (the embedded broker keeps retained messages in
 * memory only).
 */
export function createReleaseNotifier(deps: { db: Db; broker: () => Broker; now: () => Date; log: Logger }) {
  const { db } = deps;

  async function approversOf(versionId: number): Promise<string[]> {
    return (await db('approvals').where({ version_id: versionId }).orderBy('id').select<{ user_name: string }[]>('user_name')).map((r) => r.user_name);
  }

  async function publish(notice: BundleReleaseNotice): Promise<void> {
    await deps.broker().publish(bundleReleasesTopic(notice.bundle), JSON.stringify(notice), true);
  }

  return {
    /** Records who approved, then tells subscribers. A broker failure never undoes an approval. */
    async approved(version: BundleVersion, approver: string): Promise<void> {
      const row = await db('versions').where({ bundle: version.bundle, version: version.version }).first<{ id: number } | undefined>('id');
      if (!row || !version.manifestDigest || !version.approvedAt) return;
      await db('approvals').insert({ version_id: row.id, user_name: approver, approved_at: deps.now().toISOString() });
      const notice: BundleReleaseNotice = {
        type: 'approved',
        bundle: version.bundle,
        version: version.version,
        manifestDigest: version.manifestDigest,
        approvers: await approversOf(row.id),
        at: version.approvedAt,
      };
      await publish(notice).catch((error: unknown) => deps.log.error('could not publish a release notice', { bundle: version.bundle, version: version.version, error }));
    },

    /** For revocation: replaces the retained notice with the version's withdrawal. */
    async withdrawn(version: BundleVersion): Promise<void> {
      const row = await db('versions').where({ bundle: version.bundle, version: version.version }).first<{ id: number } | undefined>('id');
      if (!row || !version.manifestDigest) return;
      await publish({ type: 'withdrawn', bundle: version.bundle, version: version.version, manifestDigest: version.manifestDigest, approvers: await approversOf(row.id), at: deps.now().toISOString() });
    },

    /** Announces each bundle's most recently approved version again (at start). */
    async announceLatest(): Promise<void> {
      const rows = await db('versions')
        .whereNotNull('approved_at')
        .whereNotNull('manifest_digest')
        .orderBy([{ column: 'bundle' }, { column: 'approved_at', order: 'desc' }, { column: 'id', order: 'desc' }])
        .select<{ id: number; bundle: string; version: string; approved_at: string; manifest_digest: string }[]>('id', 'bundle', 'version', 'approved_at', 'manifest_digest');
      const seen = new Set<string>();
      for (const row of rows) {
        if (seen.has(row.bundle)) continue;
        seen.add(row.bundle);
        await publish({ type: 'approved', bundle: row.bundle, version: row.version, manifestDigest: row.manifest_digest, approvers: await approversOf(row.id), at: row.approved_at });
      }
    },
  };
}

export type ReleaseNotifier = ReturnType<typeof createReleaseNotifier>;
