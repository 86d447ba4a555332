import { createHash } from 'node:crypto';
import { Metadata, MetadataKind, Signature, type Targets } from '@tufjs/models';
import type { BundleVersion } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { hexOf } from '../../protocol/names.ts';
import { artifactTargetPath, bundleOfTarget, bundleRoleName, manifestTargetPath } from '../../protocol/targets.ts';
import type { Approval, ApprovalSummary, SigningProposal } from '../../protocol/trust.ts';
import { contentFingerprint } from '../bundles/manifest.ts';
import type { BundleService } from '../bundles/service.ts';
import { toVersion, type BundleStore, type VersionRow } from '../bundles/store.ts';
import { listApprovedTargets } from '../bundles/targets.ts';
import { ApiError } from '../http/errors.ts';
import type { TargetEntry } from '../../tuf/repository.ts';
import type { SignedDocument, TrustService } from './service.ts';
import type { ApprovalRow, ProposalRow, TrustStore } from './store.ts';

/**
 * Approval = signature. A version needs approvals from `required` distinct users (a per-bundle
 * setting, default 1) before it is signed:
 * - default mode (the server holds the targets key): each `approve` is recorded with who and
 *   when; the one that meets the threshold freezes the draft and the server signs targets.
 * - offline mode (approvers hold the targets keys): the server proposes the next metadata of the
 *   bundle's TUF role (the bytes to sign), plus top-level targets when the delegated bundles
 *   change; each approver signs them on their own machine and uploads the signatures; once
 *   root's targets threshold and the bundle's approvals are met they are published.
 * An approval counts only for the content it saw (`contentFingerprint`: everything the manifest
 * signs): editing a draft, package metadata included, makes earlier approvals moot.
 * Versions belong to bundles: freezing and revoking go through the bundles service.
 */

/** Every target devices should see: approved, not revoked; allowed rollbacks marked as such. */
export async function listSignedTargets(trustStore: TrustStore, bundles: BundleStore): Promise<TargetEntry[]> {
  const entries = await listApprovedTargets(bundles);
  const marked = new Set((await trustStore.rollbacks()).map((r) => manifestTargetPath(r.bundle, r.version)));
  return entries.map((entry) => (marked.has(entry.path) ? { ...entry, custom: { convoy: { rollback: true } } } : entry));
}

/** What other capabilities hear of (wired in the composition root): releases announce them. */
export interface ApprovalEvents {
  /** A version became approved (signed); `approvers` are the distinct users whose approvals made it. */
  approved?(version: BundleVersion, approvers: string[]): Promise<void>;
  /** An approved version was revoked. */
  revoked?(version: BundleVersion): Promise<void>;
}

const toApproval = (row: ApprovalRow): Approval => ({ principal: row.principal, at: row.approved_at, keyId: row.key_id });

export function createApprovalService(deps: { trustStore: TrustStore; store: BundleStore; bundles: BundleService; trust: TrustService; events?: ApprovalEvents; now: () => Date; log: Logger }) {
  const { trustStore, store, trust } = deps;
  const nowText = () => deps.now().toISOString();

  async function requireRow(bundle: string, version: string): Promise<VersionRow> {
    await deps.bundles.getBundle(bundle);
    const row = await store.findVersionRow(bundle, version);
    if (!row) throw new ApiError('not_found', `version ${bundle}@${version} does not exist`);
    return row;
  }

  async function requiredApprovals(bundle: string): Promise<number> {
    return (await trustStore.requiredApprovals(bundle)) ?? 1;
  }

  async function summary(bundle: string, version: string, digest: string | null): Promise<ApprovalSummary> {
    const rows = digest === null ? [] : await trustStore.approvalsFor(bundle, version, digest);
    const seen = new Set<string>();
    const by: Approval[] = [];
    for (const row of rows) {
      if (seen.has(row.principal)) continue; // M-of-N counts distinct users
      seen.add(row.principal);
      by.push(toApproval(row));
    }
    return { required: await requiredApprovals(bundle), by };
  }

  const desiredTargets = () => listSignedTargets(trustStore, store);

  /** The documents a proposal holds: the bundle's role first (the one approvers review). */
  type ProposedDocument = { role: string; signed: Record<string, unknown> };
  function documentsOf(row: ProposalRow): ProposedDocument[] | undefined {
    const stored = JSON.parse(row.targets_signed) as { documents?: ProposedDocument[] };
    // A proposal made before bundle roles holds one flat targets document: never fresh again.
    return Array.isArray(stored.documents) ? stored.documents : undefined;
  }

  async function withDetails(row: VersionRow): Promise<BundleVersion> {
    const version = toVersion(row);
    const revocation = await trustStore.findRevocation(row.bundle, row.version);
    const digest = await fingerprintOf(row);
    return {
      ...version,
      approvals: await summary(row.bundle, row.version, digest),
      ...(revocation ? { revocation: { reason: revocation.reason, by: revocation.revoked_by, at: revocation.revoked_at } } : {}),
    };
  }

  /** The content an approval of this version vouches for (a frozen version's never changes). */
  async function fingerprintOf(row: VersionRow): Promise<string> {
    return contentFingerprint(await store.listArtifacts(row.id));
  }

  /** The distinct users whose approvals of its content count for a version. */
  async function approversOf(row: VersionRow): Promise<string[]> {
    return (await summary(row.bundle, row.version, await fingerprintOf(row))).by.map((a) => a.principal);
  }

  /** Tells the other capabilities; their failure never undoes what happened here. */
  async function emit(what: string, send: (() => Promise<void>) | undefined): Promise<void> {
    await send?.().catch((error: unknown) => deps.log.error(`a listener of "${what}" failed`, { error }));
  }

  async function emitApproved(bundle: string, version: string): Promise<void> {
    const row = (await store.findVersionRow(bundle, version))!;
    const listener = deps.events?.approved;
    await emit('approved', listener && (async () => listener(toVersion(row), await approversOf(row))));
  }

  /** Each proposed document with the signatures collected so far (the first is `signature`). */
  function proposalMetadata(row: ProposalRow, signatures: readonly ApprovalRow[]): SignedDocument[] {
    return (documentsOf(row) ?? []).map((document, index) => {
      const metadata = Metadata.fromJSON(MetadataKind.Targets, { signed: document.signed, signatures: [] } as never);
      for (const s of signatures) {
        const sig = index === 0 ? s.signature : (JSON.parse(s.more_signatures ?? '{}') as Record<string, string>)[document.role];
        if (sig) metadata.signatures[s.key_id!] = new Signature({ keyID: s.key_id!, sig });
      }
      return { role: document.role, metadata };
    });
  }

  async function proposalView(row: ProposalRow): Promise<SigningProposal> {
    const signatures = await trustStore.signaturesOf(row.id);
    const [first, ...also] = documentsOf(row)!;
    // What devices see now and would see after: each proposed document replaces its role's.
    const published = await trust.publishedTargetPaths();
    const listed = (document: ProposedDocument) => Object.keys((document.signed as { targets?: Record<string, unknown> }).targets ?? {});
    const proposed = Object.fromEntries([first!, ...also].map((d) => [d.role, listed(d)]));
    const before = new Set(Object.values(published).flat());
    const afterSet = new Set(Object.values({ ...published, ...proposed }).flat());
    const status = await trust.status();
    return {
      proposalId: row.id,
      bundle: row.bundle,
      version: row.version,
      role: first!.role,
      signed: first!.signed,
      also,
      added: [...afterSet].filter((p) => !before.has(p)),
      removed: [...before].filter((p) => !afterSet.has(p)),
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
      return contentFingerprint(artifacts);
    }
    // Approved or revoked: the proposal re-signs the bundle's targets as the database wants them
    // (a revocation, an allowed rollback, or a renewal before expiry). Other bundles' changes
    // leave it fresh: they are other roles (the versions below catch a shared document).
    const own = (await desiredTargets()).filter((entry) => bundleOfTarget(entry.path) === row.bundle);
    return `sha256:${createHash('sha256').update(JSON.stringify(own)).digest('hex')}`;
  }

  /** Open, made for the content the version has now, and each document one above what devices see. */
  async function isFresh(row: ProposalRow, version: VersionRow): Promise<boolean> {
    if (row.state !== 'open') return false;
    const documents = documentsOf(row);
    if (!documents) return false;
    const versions = await trust.targetsVersions();
    if (!documents.every((d) => (d.signed as { version?: unknown }).version === (versions[d.role] ?? 0) + 1)) return false;
    return row.content_digest === (await currentContent(version));
  }

  return {
    requiredApprovals,
    desiredTargets,
    /** The distinct users whose approvals made this version approved (for release notices). */
    approvers: async (bundle: string, version: string) => approversOf(await requireRow(bundle, version)),
    details: async (bundle: string, version: string) => withDetails(await requireRow(bundle, version)),

    async setPolicy(bundle: string, required: number, by: string): Promise<{ bundle: string; requiredApprovals: number }> {
      await deps.bundles.getBundle(bundle);
      await trustStore.setRequiredApprovals(bundle, required, by, nowText());
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
      const mine = (await trustStore.approvalsFor(bundle, version, digest)).some((a) => a.principal === principal);
      if (mine) throw new ApiError('already_exists', `${principal} already approved this content of ${bundle}@${version}; another user must approve`);
      await trustStore.insertApproval({ bundle, version, principal, content_digest: digest, approved_at: nowText() });
      const approvals = await summary(bundle, version, digest);
      deps.log.info('recorded an approval', { bundle, version, principal, received: approvals.by.length, required: approvals.required });
      if (approvals.by.length < approvals.required) return { ...toVersion(row), approvals };
      try {
        await deps.bundles.approve(bundle, version, { expectedFingerprint: digest });
      } catch (error) {
        // A concurrent approval met the threshold first: same outcome (that request announces it).
        if (!(error instanceof ApiError && error.code === 'version_immutable')) throw error;
        return withDetails((await store.findVersionRow(bundle, version))!);
      }
      await emitApproved(bundle, version);
      return withDetails((await store.findVersionRow(bundle, version))!);
    },

    /** Offline mode: the targets metadata to sign for this version (made once, shared by all). */
    async proposal(bundle: string, version: string): Promise<SigningProposal> {
      const row = await requireRow(bundle, version);
      if (trust.signsTargets()) throw new ApiError('invalid_request', `this server signs targets itself: approve with \`convoy bundle approve ${bundle}@${version}\``);
      for (const candidate of await trustStore.openProposals(bundle, version)) {
        if (await isFresh(candidate, row)) return proposalView(candidate);
        await trustStore.setProposalState(candidate.id, 'stale');
      }
      const content = await currentContent(row);
      const entries = await desiredTargets();
      let manifest: { digest: string; size: number } | null = null;
      const createdAt = nowText();
      if (row.status === 'draft') {
        // The same builder as the server-signed path: offline-signed manifests keep everything.
        const proposed = await deps.bundles.proposeManifest(bundle, version, createdAt);
        if (proposed.fingerprint !== content) throw new ApiError('proposal_stale', `${bundle}@${version} changed while the proposal was made; ask again`);
        manifest = { digest: proposed.digest, size: proposed.size };
        entries.push({ path: manifestTargetPath(bundle, version), length: manifest.size, sha256: hexOf(manifest.digest) });
        for (const a of proposed.artifacts) entries.push({ path: artifactTargetPath(bundle, version, a.name), length: a.size, sha256: hexOf(a.digest) });
      }
      // The bundle's role first: the document approvers review; the others follow from it.
      const own = bundleRoleName(bundle);
      const planned = (await trust.proposeTargets(entries, bundle)).sort((a, b) => (a.role === own ? -1 : b.role === own ? 1 : 0));
      if (planned.length === 0) throw new ApiError('invalid_request', `nothing to sign: devices already see the targets of ${bundle} as they should be`);
      const documents = planned.map(({ role, metadata }) => ({ role, signed: metadata.signed.toJSON() as Record<string, unknown> }));
      const targetsVersion = documents[0]!.signed.version as number;
      const created = await trustStore.insertProposal({
          bundle,
          version,
          content_digest: content,
          manifest_digest: manifest?.digest ?? null,
          manifest_size: manifest?.size ?? null,
          targets_version: targetsVersion,
          targets_signed: JSON.stringify({ documents }),
          state: 'open',
          created_at: createdAt,
      });
      deps.log.info('proposed targets for offline signing', { bundle, version, targetsVersion, proposal: created.id });
      return proposalView(created);
    },

    /** Offline mode: records one approver's signature; the one that meets both thresholds publishes. */
    async sign(bundle: string, version: string, input: { proposalId: number; keyid: string; sig: string; also?: { role: string; sig: string }[] | undefined }, principal: string) {
      const row = await requireRow(bundle, version);
      const proposal = await trustStore.findProposal(input.proposalId, bundle, version);
      if (!proposal) throw new ApiError('not_found', `no proposal ${input.proposalId} for ${bundle}@${version}`);
      if (!(await isFresh(proposal, row))) {
        await trustStore.setProposalState(proposal.id, proposal.state === 'published' ? 'published' : 'stale');
        throw new ApiError('proposal_stale', 'the targets changed since this proposal was made; fetch it again and sign the new one');
      }
      // One signature per document, each checked now: a bad one is refused before it is counted.
      const [first, ...others] = proposalMetadata(proposal, []);
      trust.checkTargetsSignature(first!.metadata, input);
      const more: Record<string, string> = {};
      for (const { role, sig } of input.also ?? []) more[role] = sig;
      const extra = Object.keys(more).filter((role) => !others.some((d) => d.role === role));
      if (extra.length > 0) throw new ApiError('invalid_request', `the proposal has no document for ${extra.join(', ')}`);
      for (const document of others) {
        const sig = more[document.role];
        if (!sig) throw new ApiError('invalid_request', `sign every document of the proposal: the signature over ${document.role} is missing (\`convoy bundle sign\` signs them all)`);
        trust.checkTargetsSignature(document.metadata, { keyid: input.keyid, sig });
      }
      const signatures = await trustStore.signaturesOf(proposal.id);
      if (signatures.some((s) => s.principal === principal)) throw new ApiError('already_exists', `${principal} already signed this proposal; another user must sign`);
      if (signatures.some((s) => s.key_id === input.keyid)) throw new ApiError('already_exists', 'this key already signed this proposal');
      await trustStore.insertApproval({ bundle, version, principal, content_digest: proposal.content_digest, proposal_id: proposal.id, key_id: input.keyid, signature: input.sig, more_signatures: others.length > 0 ? JSON.stringify(more) : null, approved_at: nowText() });
      const all = await trustStore.signaturesOf(proposal.id);
      const status = await trust.status();
      const threshold = status.roles.targets.threshold;
      const required = await requiredApprovals(bundle);
      const distinct = new Set(all.map((s) => s.principal)).size;
      deps.log.info('recorded an offline signature', { bundle, version, principal, keyId: input.keyid, signatures: all.length, threshold, required });
      let published = false;
      const approvedNow = row.status === 'draft';
      if (all.length >= threshold && distinct >= required) {
        const metadata = proposalMetadata(proposal, all);
        const publish = async (trx: typeof trustStore.db) => {
          await trustStore.setProposalState(proposal.id, 'published', trx);
          // Last: if the threshold check in publishing fails, the transaction rolls back.
          await trust.publishSignedTargets(metadata, `signed offline: ${bundle}@${version}`);
        };
        if (row.status === 'draft') {
          await deps.bundles.freezeSigned(bundle, version, {
            approvedAt: proposal.created_at,
            manifest: { digest: proposal.manifest_digest!, size: Number(proposal.manifest_size) },
            fingerprint: proposal.content_digest,
          }, publish);
        } else {
          await trustStore.db.transaction(publish);
        }
        published = true;
      }
      if (published && approvedNow) await emitApproved(bundle, version);
      return { published, approvedNow: published && approvedNow, signatures: all.map(toApproval), threshold };
    },

    /** Withdraws an approved version: out of targets, never installed again, devices told. */
    async revoke(bundle: string, version: string, reason: string, principal: string): Promise<BundleVersion & { pendingSignatures: boolean }> {
      await requireRow(bundle, version);
      await deps.bundles.markRevoked(bundle, version, (trx) => trustStore.insertRevocation(bundle, version, reason, principal, nowText(), trx));
      deps.log.warn('revoked a version', { bundle, version, reason, by: principal });
      const pendingSignatures = !trust.signsTargets();
      if (!pendingSignatures) await trust.publish(`revoked ${bundle}@${version}`);
      const revoked = (await store.findVersionRow(bundle, version))!;
      const listener = deps.events?.revoked;
      await emit('revoked', listener && (() => listener(toVersion(revoked))));
      return { ...(await withDetails(revoked)), pendingSignatures };
    },

    /** Marks an approved version as an allowed downgrade target (signed into targets), or clears it. */
    async setRollback(bundle: string, version: string, allowed: boolean, principal: string): Promise<{ pendingSignatures: boolean }> {
      const row = await requireRow(bundle, version);
      if (row.status !== 'approved') throw new ApiError(row.status === 'revoked' ? 'version_revoked' : 'version_not_approved', `${bundle}@${version} is ${row.status}`);
      await trustStore.setRollback(bundle, version, allowed ? { by: principal, at: nowText() } : null);
      deps.log.info(allowed ? 'allowed a rollback' : 'cleared a rollback', { bundle, version, by: principal });
      const pendingSignatures = !trust.signsTargets();
      if (!pendingSignatures) await trust.publish(`rollback ${allowed ? 'allowed' : 'cleared'} ${bundle}@${version}`);
      return { pendingSignatures };
    },

    /** Whether a signed rollback to this version is allowed (deployments accept the downgrade). */
    async isRollbackAllowed(bundle: string, version: string): Promise<boolean> {
      return trustStore.isRollbackAllowed(bundle, version);
    },
  };
}

export type ApprovalService = ReturnType<typeof createApprovalService>;
