import * as z from 'zod';
import { bundlePath, bundleVersion, tufFilePath, tufTargetPath, versionPath } from '../../protocol/api.ts';
import { createdKey, createKeyRequest, revokeRequest, rollbackRequest, rootAccepted, signatureReceipt, signatureRequest, signingProposal, trustPolicy, trustPolicyRequest, trustStatus } from '../../protocol/trust.ts';
import { principalName } from '../auth/policy.ts';
import { ApiError } from '../http/errors.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { BlobReaders } from '../blobs/readers.ts';
import type { BlobStore } from '../blobs/store.ts';
import { sendBlob } from '../blobs/routes.ts';
import type { ApprovalService } from './approvals.ts';
import { bundleOfMetadataFile, type TrustService } from './service.ts';

/**
 * The TUF repository as a stock client expects it (TUF §5): metadata at `/tuf/<name>.json`,
 * targets under `/tuf/targets/`, hash-prefixed because root sets consistent_snapshot. Plus the
 * trust API: approvals, offline signatures, revocation, rollback permission, keys and root.
 */
export function trustRoutes(deps: {
  trust: TrustService;
  approvals: ApprovalService;
  blobs: BlobStore;
  resolveTarget: (path: string) => Promise<{ bundle: string; digest: string; size: number } | undefined>;
  anonymous: boolean;
  /** The read model per bundle: a target file is served only to who may read its bundle. */
  readers?: BlobReaders;
}): Route[] {
  const base = '/api/v1/bundles/:name/versions/:version';
  const { approvals, trust } = deps;
  return [
    route({
      method: 'GET', path: '/tuf/targets/*path', action: 'tuf:read', anonymous: deps.anonymous, summary: 'Download a signed target', params: tufTargetPath, responses: { 200: 'binary', 206: 'binary', 304: 'empty' },
      async handler({ koa, params, principal, edge }) {
        const found = await deps.resolveTarget(params.path);
        // Anonymous reads (CONVOY_ANONYMOUS_TUF_READ) see every bundle by the operator's choice;
        // a caller with a token sees the targets of the bundles it may read, others are 404.
        // An edge fetches target bytes by digest (what its tasks name), never by path.
        const hidden = edge !== undefined || (found !== undefined && principal !== undefined && deps.readers !== undefined && !(await deps.readers.mayReadBundle(principal, 'tuf:read', found.bundle)));
        if (!found || hidden) throw new ApiError('not_found', 'no such target');
        await sendBlob(koa, deps.blobs, found.digest, found.size);
      },
    }),
    route({
      method: 'GET', path: '/tuf/:file', action: 'tuf:read', anonymous: deps.anonymous, summary: 'Download TUF metadata', params: tufFilePath, responses: { 200: 'binary' },
      async handler({ koa, params, principal }) {
        // A bundle's role lists its targets' names, sizes and hashes: like the targets themselves
        // it is served only to who may read the bundle, and is 404 (not 403) to the others.
        const bundle = bundleOfMetadataFile(params.file);
        const hidden = bundle !== undefined && principal !== undefined && deps.readers !== undefined && !(await deps.readers.mayReadBundle(principal, 'tuf:read', bundle));
        const bytes = hidden ? undefined : await deps.trust.readMetadata(params.file);
        if (!bytes) throw new ApiError('not_found', `no metadata named "${params.file}"`);
        koa.type = 'application/json';
        // Versioned files never change; timestamp.json and root.json do and must not be cached.
        koa.set('Cache-Control', /^\d+\./.test(params.file) ? 'private, max-age=31536000, immutable' : 'no-store');
        koa.body = bytes;
      },
    }),
    route({
      method: 'POST', params: versionPath, path: `${base}/approve`, resource: bundleInPath, action: 'version:approve', summary: 'Approve a draft; the approval that meets the bundle threshold freezes and signs it', responses: { 200: bundleVersion },
      async handler({ koa, params, principal }) {
        koa.body = await approvals.approve(params.name, params.version, principalName(principal!));
      },
    }),
    route({
      method: 'GET', params: versionPath, path: `${base}/approvals`, resource: bundleInPath, action: 'bundle:read', summary: 'Show a version with its approvals (who, when) and revocation', responses: { 200: bundleVersion },
      async handler({ koa, params }) {
        koa.body = await approvals.details(params.name, params.version);
      },
    }),
    route({
      method: 'PUT', path: '/api/v1/bundles/:name/trust-policy', params: bundlePath, resource: bundleInPath, action: 'keys:admin', summary: 'Set how many distinct users must approve a version', body: trustPolicyRequest, responses: { 200: trustPolicy },
      async handler({ koa, params, body, principal }) {
        koa.body = await approvals.setPolicy(params.name, body.requiredApprovals, principalName(principal!));
      },
    }),
    route({
      method: 'GET', params: versionPath, path: `${base}/signing`, resource: bundleInPath, action: 'version:sign', summary: 'Offline mode: the targets metadata to sign for this version', responses: { 200: signingProposal },
      async handler({ koa, params }) {
        koa.body = await approvals.proposal(params.name, params.version);
      },
    }),
    route({
      method: 'POST', params: versionPath, path: `${base}/signatures`, resource: bundleInPath, action: 'version:sign', summary: "Offline mode: upload one approver's signature over the proposal", body: signatureRequest, responses: { 200: signatureReceipt },
      async handler({ koa, params, body, principal }) {
        const { approvedNow: _approvedNow, ...receipt } = await approvals.sign(params.name, params.version, body, principalName(principal!));
        koa.body = receipt;
      },
    }),
    route({
      method: 'POST', params: versionPath, path: `${base}/revoke`, resource: bundleInPath, action: 'version:revoke', summary: 'Revoke an approved version: removed from targets, never installed again', body: revokeRequest,
      responses: { 200: bundleVersion.extend({ pendingSignatures: z.boolean() }) },
      async handler({ koa, params, body, principal }) {
        koa.body = await approvals.revoke(params.name, params.version, body.reason, principalName(principal!));
      },
    }),
    route({
      method: 'PUT', params: versionPath, path: `${base}/rollback`, resource: bundleInPath, action: 'version:approve', summary: 'Allow (or stop allowing) devices to downgrade to this version; signed into targets', body: rollbackRequest,
      responses: { 200: z.strictObject({ pendingSignatures: z.boolean() }) },
      async handler({ koa, params, body, principal }) {
        koa.body = await approvals.setRollback(params.name, params.version, body.allowed, principalName(principal!));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/trust', action: 'keys:read', summary: 'Who signs what: roles, key ids, thresholds, keys the server holds', responses: { 200: trustStatus },
      async handler({ koa }) {
        koa.body = await trust.status();
      },
    }),
    route({
      method: 'POST', path: '/api/v1/trust/keys', action: 'keys:admin', summary: 'Generate an online key for a role (trusted once a signed root names it)', body: createKeyRequest, responses: { 201: createdKey },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await trust.createOnlineKey(body.role);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/trust/root', action: 'keys:admin', summary: 'Upload root metadata N+1, signed offline by the old and new root thresholds', body: z.record(z.string(), z.unknown()), responses: { 201: rootAccepted },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await trust.acceptRoot(Buffer.from(JSON.stringify(body)), `uploaded by ${principalName(principal!)}`);
      },
    }),
  ];
}
