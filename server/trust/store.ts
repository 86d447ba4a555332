import type { Db } from '../db/knex.ts';

/**
 * knex queries for trust's own tables, and only those: the approvals each bundle requires
 * (`trust_policies`), approvals and offline signatures (`trust_approvals`, the one approvals
 * table), targets proposals, revocations and allowed rollbacks. Versions belong to bundles:
 * trust asks the bundles service to freeze or revoke one, it never writes `versions`.
 */
export interface ApprovalRow {
  id: number;
  bundle: string;
  version: string;
  principal: string;
  approved_at: string;
  key_id: string | null;
  signature: string | null;
  /** Offline signatures over the proposal's other documents, JSON `{ "<role>": "<hex>" }`. */
  more_signatures: string | null;
  content_digest: string;
  proposal_id: number | null;
}

export interface ProposalRow {
  id: number;
  bundle: string;
  version: string;
  content_digest: string;
  manifest_digest: string | null;
  manifest_size: number | string | null;
  targets_version: number;
  targets_signed: string;
  state: 'open' | 'published' | 'stale';
  created_at: string;
}

export interface RevocationRow {
  reason: string;
  revoked_by: string;
  revoked_at: string;
}

export function createTrustStore(db: Db) {
  return {
    db,
    async requiredApprovals(bundle: string): Promise<number | undefined> {
      const row = await db('trust_policies').where({ bundle }).first<{ required_approvals: number } | undefined>();
      return row ? Number(row.required_approvals) : undefined;
    },
    async setRequiredApprovals(bundle: string, required: number, by: string, now: string): Promise<void> {
      const values = { required_approvals: required, updated_by: by, updated_at: now };
      const updated = await db('trust_policies').where({ bundle }).update(values);
      if (updated === 0) await db('trust_policies').insert({ bundle, ...values });
    },

    /** Approvals of one content of a version, oldest first. */
    async approvalsFor(bundle: string, version: string, contentDigest: string): Promise<ApprovalRow[]> {
      return db<ApprovalRow>('trust_approvals').where({ bundle, version, content_digest: contentDigest }).orderBy('id');
    },
    async signaturesOf(proposalId: number): Promise<ApprovalRow[]> {
      return db<ApprovalRow>('trust_approvals').where({ proposal_id: proposalId }).orderBy('id');
    },
    async insertApproval(row: Omit<ApprovalRow, 'id' | 'key_id' | 'signature' | 'more_signatures' | 'proposal_id'> & Partial<Pick<ApprovalRow, 'key_id' | 'signature' | 'more_signatures' | 'proposal_id'>>): Promise<void> {
      await db('trust_approvals').insert(row);
    },

    async openProposals(bundle: string, version: string): Promise<ProposalRow[]> {
      return db<ProposalRow>('trust_proposals').where({ bundle, version, state: 'open' }).orderBy('id', 'desc');
    },
    async findProposal(id: number, bundle: string, version: string): Promise<ProposalRow | undefined> {
      return db<ProposalRow>('trust_proposals').where({ id, bundle, version }).first();
    },
    async insertProposal(row: Omit<ProposalRow, 'id'>): Promise<ProposalRow> {
      const [inserted] = await db('trust_proposals').insert(row).returning<{ id: number }[]>('id');
      return (await db<ProposalRow>('trust_proposals').where({ id: inserted!.id }).first())!;
    },
    /** Manifests of open proposals: stored before they are signed, referenced by nothing else yet. */
    async proposedManifestDigests(): Promise<string[]> {
      const rows = await db('trust_proposals').where({ state: 'open' }).whereNotNull('manifest_digest').distinct('manifest_digest');
      return rows.map((r: { manifest_digest: string }) => r.manifest_digest);
    },
    /** The bundles with an open offline proposal whose manifest is the digest (not yet in `versions`). */
    async bundlesProposing(digest: string): Promise<string[]> {
      const rows = await db('trust_proposals').where({ state: 'open', manifest_digest: digest }).distinct('bundle');
      return rows.map((r: { bundle: string }) => r.bundle);
    },
    async setProposalState(id: number, state: ProposalRow['state'], trx: Db = db): Promise<void> {
      await trx('trust_proposals').where({ id }).update({ state });
    },

    async findRevocation(bundle: string, version: string): Promise<RevocationRow | undefined> {
      return db('trust_revocations').where({ bundle, version }).first<RevocationRow | undefined>();
    },
    /** Records a revocation; an allowed rollback to the version ends with it. */
    async insertRevocation(bundle: string, version: string, reason: string, by: string, now: string, trx: Db): Promise<void> {
      await trx('trust_revocations').insert({ bundle, version, reason, revoked_by: by, revoked_at: now });
      await trx('trust_rollbacks').where({ bundle, version }).delete();
    },

    async isRollbackAllowed(bundle: string, version: string): Promise<boolean> {
      return (await db('trust_rollbacks').where({ bundle, version }).first()) !== undefined;
    },
    async rollbacks(): Promise<{ bundle: string; version: string }[]> {
      return db('trust_rollbacks').select<{ bundle: string; version: string }[]>('bundle', 'version');
    },
    async setRollback(bundle: string, version: string, allowed: { by: string; at: string } | null): Promise<void> {
      await db.transaction(async (trx) => {
        await trx('trust_rollbacks').where({ bundle, version }).delete();
        if (allowed) await trx('trust_rollbacks').insert({ bundle, version, allowed_by: allowed.by, allowed_at: allowed.at });
      });
    },
  };
}

export type TrustStore = ReturnType<typeof createTrustStore>;
