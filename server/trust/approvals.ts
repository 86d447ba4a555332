import { createHash } from 'node:crypto';
import { Metadata, MetadataKind, Signature, type Targets } from '@tufjs/models';
import type { Artifact, BundleVersion } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { manifestSchemaId, type BundleManifest } from '../../protocol/manifest.ts';
import { hexOf } from '../../protocol/names.ts';
import { artifactTargetPath, manifestTargetPath } from '../../protocol/targets.ts';
import type { Approval, ApprovalSummary, SigningProposal } from '../../protocol/trust.ts';
import type { BlobStore } from '../blobs/store.ts';
import type { BundleService } from '../bundles/service.ts';
import { toVersion, type BundleStore, type VersionRow } from '../bundles/store.ts';
import { listApprovedTargets } from '../bundles/targets.ts';
import type { Db } from '../db/knex.ts';
import { ApiError } from '../http/errors.ts';
import type { TargetEntry } from './repository.ts';
import type { TrustService } from './service.ts';

/**
 * Approval = signature. A version needs approvals from `required` distinct users (a per-bundle
 * setting, default 1) before it is signed:
 * - default mode (the server holds the targets key): each `approve` is recorded with who and
 *   when; the one that meets the threshold freezes the draft and the server signs targets.
 * - offline mode (approvers hold the targets keys): the server proposes the next targets metadata
 *   (the bytes to sign), each approver signs it on their own machine and uploads the signature;
 *   once root's targets threshold and the bundle's approvals are met it is published.
 * An approval counts only for the content it saw: editing a draft makes earlier approvals moot.
 */
interface ApprovalRow {
  bundle: string;
  version: string;
  principal: string;
  approved_at: string;
  key_id: string | null;
  signature: string | null;
  content_digest: string;
  proposal_id: number | null;
}

interface ProposalRow {
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

/** What an approval vouches for: the exact artifacts of the draft. */
export function contentDigest(artifacts: readonly Artifact[]): string {
  const canonical = JSON.stringify([...artifacts].sort((a, b) => (a.name < b.name ? -1 : 1)).map((a) => [a.name, a.type, a.digest, a.size]));
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

/** Every target devices should see: approved, not revoked; allowed rollbacks marked as such. */
export async function listSignedTargets(db: Db, store: BundleStore): Promise<TargetEntry[]> {
  const entries = await listApprovedTargets(store);
  const rollbacks = await db('trust_rollbacks').select<{ bundle: string; version: string }[]>('bundle', 'version');
  const marked = new Set(rollbacks.map((r) => manifestTargetPath(r.bundle, r.version)));
  return entries.map((entry) => (marked.has(entry.path) ? { ...entry, custom: { convoy: { rollback: true } } } : entry));
}

const toApproval = (row: ApprovalRow): Approval => ({ principal: row.principal, at: row.approved_at, keyId: row.key_id });

export function createApprovalService(deps: { db: Db; store: BundleStore; bundles: BundleService; blobs: BlobStore; trust: TrustService; now: () => Date; log: Logger }) {
  const { db, store, trust } = deps;
  const nowText = () => deps.now().toISOString();

  async function requireRow(bundle: string, version: string): Promise<VersionRow> {
    await deps.bundles.getBundle(bundle);
    const row = await store.findVersionRow(bundle, version);
    if (!row) throw new ApiError('not_found', `version ${bundle}@${version} does not exist`);
    return row;
  }

  async function requiredApprovals(bundle: string): Promise<number> {
    const row = await db('trust_policies').where({ bundle }).first<{ required_approvals: number } | undefined>();
    return row ? Number(row.required_approvals) : 1;
  }

  async function summary(bundle: string, version: string, digest: string | null): Promise<ApprovalSummary> {
    const rows = digest === null ? [] : await db<ApprovalRow>('trust_approvals').where({ bundle, version, content_digest: digest }).orderBy('id');
    const seen = new Set<string>();
    const by: Approval[] = [];
    for (const row of rows) {
      if (seen.has(row.principal)) continue; // M-of-N counts distinct users
      seen.add(row.principal);
      by.push(toApproval(row));
    }
    return { required: await requiredApprovals(bundle), by };
  }

  const desiredTargets = () => listSignedTargets(db, store);

  async function publishedTargetPaths(): Promise<string[]> {
    const version = await trust.targetsVersion();
    const bytes = version ? await trust.readMetadata(`${version}.targets.json`) : undefined;
    return bytes ? Object.keys((JSON.parse(bytes.toString('utf8')) as { signed: { targets: Record<string, unknown> } }).signed.targets) : [];
  }

  async function withDetails(row: VersionRow): Promise<BundleVersion> {
    const version = toVersion(row);
    const revocation = await db('trust_revocations').where({ bundle: row.bundle, version: row.version }).first<{ reason: string; revoked_by: string; revoked_at: string } | undefined>();
    const digest = row.status === 'draft' ? contentDigest(await store.listArtifacts(row.id)) : await approvedDigest(row);
    return {
      ...version,
      approvals: await summary(row.bundle, row.version, digest),
      ...(revocation ? { revocation: { reason: revocation.reason, by: revocation.revoked_by, at: revocation.revoked_at } } : {}),
    };
  }

  /** The content digest the approvals of a frozen version were made for. */
  async function approvedDigest(row: VersionRow): Promise<string> {
    return contentDigest(await store.listArtifacts(row.id));
  }

  function proposalMetadata(row: ProposalRow, signatures: readonly ApprovalRow[]): Metadata<Targets> {
    const signed = JSON.parse(row.targets_signed) as Record<string, unknown>;
    const metadata = Metadata.fromJSON(MetadataKind.Targets, { signed, signatures: [] } as never);
    for (const s of signatures) metadata.signatures[s.key_id!] = new Signature({ keyID: s.key_id!, sig: s.signature! });
    return metadata;
  }

  async function proposalView(row: ProposalRow): Promise<SigningProposal> {
    const signatures = await db<ApprovalRow>('trust_approvals').where({ proposal_id: row.id }).orderBy('id');
    const signed = JSON.parse(row.targets_signed) as { targets: Record<string, unknown> };
    const before = new Set(await publishedTargetPaths());
    const after = Object.keys(signed.targets);
    const status = await trust.status();
    return {
      proposalId: row.id,
      bundle: row.bundle,
      version: row.version,
      signed,
      added: after.filter((p) => !before.has(p)),
      removed: [...before].filter((p) => !after.includes(p)),
      threshold: status.roles.targets.threshold,
      required: await requiredApprovals(row.bundle),
      signatures: signatures.map(toApproval),
    };
  }

  /** What the proposal for this version must cover now: its draft content, or its revocation. */
  async function currentContent(row: VersionRow): Promise<string> {
    if (row.status === 'draft') {
      const artifacts = await store.listArtifacts(row.id);
      if (artifacts.length === 0) throw new ApiError('version_empty', `${row.bundle}@${row.version} has no artifacts; add at least one before approving`);
      return contentDigest(artifacts);
    }
    // Approved or revoked: the proposal re-signs the targets the database wants (a revocation,
    // an allowed rollback, or a renewal before expiry).
    return `sha256:${createHash('sha256').update(JSON.stringify(await desiredTargets())).digest('hex')}`;
  }

  async function isFresh(row: ProposalRow, version: VersionRow): Promise<boolean> {
    if (row.state !== 'open') return false;
    if (row.targets_version !== (await trust.targetsVersion()) + 1) return false;
    return row.content_digest === (await currentContent(version));
  }

  return {
    requiredApprovals,
    desiredTargets,
    details: async (bundle: string, version: string) => withDetails(await requireRow(bundle, version)),

    async setPolicy(bundle: string, required: number, by: string): Promise<{ bundle: string; requiredApprovals: number }> {
      await deps.bundles.getBundle(bundle);
      const values = { required_approvals: required, updated_by: by, updated_at: nowText() };
      const updated = await db('trust_policies').where({ bundle }).update(values);
      if (updated === 0) await db('trust_policies').insert({ bundle, ...values });
      deps.log.info('set the approvals a bundle requires', { bundle, required, by });
      return { bundle, requiredApprovals: required };
    },

    /** Default mode: records one user's approval; the one that meets the threshold signs. */
    async approve(bundle: string, version: string, principal: string): Promise<BundleVersion> {
      const row = await requireRow(bundle, version);
      if (row.status === 'revoked') throw new ApiError('version_revoked', `${bundle}@${version} was revoked`);
      if (row.status === 'approved') throw new ApiError('version_immutable', `${bundle}@${version} is already approved and signed`);
      if (!trust.signsTargets()) {
        throw new ApiError('invalid_request', `targets are signed offline on this server: sign with \`convoy bundle sign ${bundle}@${version} --key FILE\``);
      }
      const digest = await currentContent(row);
      const mine = await db('trust_approvals').where({ bundle, version, principal, content_digest: digest }).first();
      if (mine) throw new ApiError('already_exists', `${principal} already approved this content of ${bundle}@${version}; another user must approve`);
      await db('trust_approvals').insert({ bundle, version, principal, content_digest: digest, approved_at: nowText() });
      const approvals = await summary(bundle, version, digest);
      deps.log.info('recorded an approval', { bundle, version, principal, received: approvals.by.length, required: approvals.required });
      if (approvals.by.length < approvals.required) return { ...toVersion(row), approvals };
      try {
        await deps.bundles.approve(bundle, version, { approvedContent: (artifacts) => contentDigest(artifacts) === digest });
      } catch (error) {
        // A concurrent approval met the threshold first: same outcome.
        if (!(error instanceof ApiError && error.code === 'version_immutable')) throw error;
      }
      return withDetails((await store.findVersionRow(bundle, version))!);
    },

    /** Offline mode: the targets metadata to sign for this version (made once, shared by all). */
    async proposal(bundle: string, version: string): Promise<SigningProposal> {
      const row = await requireRow(bundle, version);
      if (trust.signsTargets()) throw new ApiError('invalid_request', `this server signs targets itself: approve with \`convoy bundle approve ${bundle}@${version}\``);
      const open = await db<ProposalRow>('trust_proposals').where({ bundle, version, state: 'open' }).orderBy('id', 'desc');
      for (const candidate of open) {
        if (await isFresh(candidate, row)) return proposalView(candidate);
        await db('trust_proposals').where({ id: candidate.id }).update({ state: 'stale' });
      }
      const content = await currentContent(row);
      const entries = await desiredTargets();
      let manifest: { digest: string; size: number } | null = null;
      const createdAt = nowText();
      if (row.status === 'draft') {
        const artifacts = await store.listArtifacts(row.id);
        const body: BundleManifest = {
          schema: manifestSchemaId,
          bundle,
          version,
          approvedAt: createdAt,
          artifacts: artifacts.map(({ name, type, digest, size }) => ({ name, type, digest, size })),
        };
        manifest = await deps.blobs.putBytes(Buffer.from(JSON.stringify(body, null, 2) + '\n'));
        entries.push({ path: manifestTargetPath(bundle, version), length: manifest.size, sha256: hexOf(manifest.digest) });
        for (const a of artifacts) entries.push({ path: artifactTargetPath(bundle, version, a.name), length: a.size, sha256: hexOf(a.digest) });
      }
      const targetsVersion = (await trust.targetsVersion()) + 1;
      const metadata = trust.proposeTargets(entries);
      const signed = { ...(metadata.signed.toJSON() as Record<string, unknown>), version: targetsVersion };
      const [inserted] = await db('trust_proposals')
        .insert({
          bundle,
          version,
          content_digest: content,
          manifest_digest: manifest?.digest ?? null,
          manifest_size: manifest?.size ?? null,
          targets_version: targetsVersion,
          targets_signed: JSON.stringify(signed),
          state: 'open',
          created_at: createdAt,
        })
        .returning<{ id: number }[]>('id');
      const created = await db<ProposalRow>('trust_proposals').where({ id: inserted!.id }).first();
      deps.log.info('proposed targets for offline signing', { bundle, version, targetsVersion, proposal: inserted!.id });
      return proposalView(created!);
    },

    /** Offline mode: records one approver's signature; the one that meets both thresholds publishes. */
    async sign(bundle: string, version: string, input: { proposalId: number; keyid: string; sig: string }, principal: string) {
      const row = await requireRow(bundle, version);
      const proposal = await db<ProposalRow>('trust_proposals').where({ id: input.proposalId, bundle, version }).first();
      if (!proposal) throw new ApiError('not_found', `no proposal ${input.proposalId} for ${bundle}@${version}`);
      if (!(await isFresh(proposal, row))) {
        await db('trust_proposals').where({ id: proposal.id }).update({ state: proposal.state === 'published' ? 'published' : 'stale' });
        throw new ApiError('proposal_stale', 'the targets changed since this proposal was made; fetch it again and sign the new one');
      }
      trust.checkTargetsSignature(proposalMetadata(proposal, []), input);
      const signatures = await db<ApprovalRow>('trust_approvals').where({ proposal_id: proposal.id });
      if (signatures.some((s) => s.principal === principal)) throw new ApiError('already_exists', `${principal} already signed this proposal; another user must sign`);
      if (signatures.some((s) => s.key_id === input.keyid)) throw new ApiError('already_exists', 'this key already signed this proposal');
      await db('trust_approvals').insert({ bundle, version, principal, content_digest: proposal.content_digest, proposal_id: proposal.id, key_id: input.keyid, signature: input.sig, approved_at: nowText() });
      const all = await db<ApprovalRow>('trust_approvals').where({ proposal_id: proposal.id }).orderBy('id');
      const status = await trust.status();
      const threshold = status.roles.targets.threshold;
      const required = await requiredApprovals(bundle);
      const distinct = new Set(all.map((s) => s.principal)).size;
      deps.log.info('recorded an offline signature', { bundle, version, principal, keyId: input.keyid, signatures: all.length, threshold, required });
      let published = false;
      const approvedNow = row.status === 'draft';
      if (all.length >= threshold && distinct >= required) {
        const metadata = proposalMetadata(proposal, all);
        await db.transaction(async (trx) => {
          if (row.status === 'draft') {
            const locked = await store.findVersionRow(bundle, version, trx, true);
            if (locked?.status !== 'draft') throw new ApiError('proposal_stale', `${bundle}@${version} changed meanwhile`);
            await store.markApproved(row.id, proposal.created_at, { digest: proposal.manifest_digest!, size: Number(proposal.manifest_size) }, trx);
          }
          await trx('trust_proposals').where({ id: proposal.id }).update({ state: 'published' });
          // Last: if the threshold check in publishing fails, the transaction rolls back.
          await trust.publishSignedTargets(metadata, `signed offline: ${bundle}@${version}`);
        });
        published = true;
      }
      return { published, approvedNow: published && approvedNow, signatures: all.map(toApproval), threshold };
    },

    /** Withdraws an approved version: out of targets, never installed again, devices told. */
    async revoke(bundle: string, version: string, reason: string, principal: string): Promise<BundleVersion & { pendingSignatures: boolean }> {
      const row = await requireRow(bundle, version);
      if (row.status === 'draft') throw new ApiError('version_not_approved', `${bundle}@${version} is a draft; delete it instead`);
      if (row.status === 'revoked') throw new ApiError('version_revoked', `${bundle}@${version} is already revoked`);
      await db.transaction(async (trx) => {
        await trx('versions').where({ id: row.id }).update({ status: 'revoked' });
        await trx('trust_revocations').insert({ bundle, version, reason, revoked_by: principal, revoked_at: nowText() });
        await trx('trust_rollbacks').where({ bundle, version }).delete();
      });
      deps.log.warn('revoked a version', { bundle, version, reason, by: principal });
      const pendingSignatures = !trust.signsTargets();
      if (!pendingSignatures) await trust.publish(`revoked ${bundle}@${version}`);
      return { ...(await withDetails((await store.findVersionRow(bundle, version))!)), pendingSignatures };
    },

    /** Marks an approved version as an allowed downgrade target (signed into targets), or clears it. */
    async setRollback(bundle: string, version: string, allowed: boolean, principal: string): Promise<{ pendingSignatures: boolean }> {
      const row = await requireRow(bundle, version);
      if (row.status !== 'approved') throw new ApiError(row.status === 'revoked' ? 'version_revoked' : 'version_not_approved', `${bundle}@${version} is ${row.status}`);
      await db('trust_rollbacks').where({ bundle, version }).delete();
      if (allowed) await db('trust_rollbacks').insert({ bundle, version, allowed_by: principal, allowed_at: nowText() });
      deps.log.info(allowed ? 'allowed a rollback' : 'cleared a rollback', { bundle, version, by: principal });
      const pendingSignatures = !trust.signsTargets();
      if (!pendingSignatures) await trust.publish(`rollback ${allowed ? 'allowed' : 'cleared'} ${bundle}@${version}`);
      return { pendingSignatures };
    },

    /** Whether a signed rollback to this version is allowed (deployments accept the downgrade). */
    async isRollbackAllowed(bundle: string, version: string): Promise<boolean> {
      return (await db('trust_rollbacks').where({ bundle, version }).first()) !== undefined;
    },
  };
}

export type ApprovalService = ReturnType<typeof createApprovalService>;
