import * as z from 'zod';

/*
 * Bodies of the trust API (approvals, offline signatures, revocation, keys). The server validates
 * requests with these; the CLI validates answers with them.
 */

const timestamp = z.iso.datetime();
const keyId = z.string().regex(/^[0-9a-f]{64}$/, 'must be a TUF key id (64 lowercase hex digits)');
export const trustRoles = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export const trustRole = z.enum(trustRoles);

/** One recorded approval: who, when, and (offline mode) with which key. */
export const approval = z.strictObject({ principal: z.string(), at: timestamp, keyId: keyId.nullable() });
export type Approval = z.infer<typeof approval>;

export const approvalSummary = z.strictObject({
  /** Distinct users whose approval is needed (the bundle's setting). */
  required: z.number().int().positive(),
  /** Approvals of the version's current content, one per user. */
  by: z.array(approval),
});
export type ApprovalSummary = z.infer<typeof approvalSummary>;

export const revocation = z.strictObject({ reason: z.string(), by: z.string(), at: timestamp });

export const trustPolicyRequest = z.strictObject({ requiredApprovals: z.number().int().min(1).max(32) });
export const trustPolicy = z.strictObject({ bundle: z.string(), requiredApprovals: z.number().int().positive() });

export const revokeRequest = z.strictObject({ reason: z.string().trim().min(1, 'a reason is required').max(1000) });

export const rollbackRequest = z.strictObject({ allowed: z.boolean() });

/** The targets metadata an approver signs offline, and what is already signed. */
export const signingProposal = z.strictObject({
  proposalId: z.number().int().positive(),
  bundle: z.string(),
  version: z.string(),
  /** The TUF role `signed` is for: the bundle's delegated role (`bundle-<name>`). */
  role: z.string(),
  /** `signed` part of the proposed targets metadata: the approver signs its canonical JSON. */
  signed: z.record(z.string(), z.unknown()),
  /**
   * Other documents the change needs signed by the same keys: top-level `targets` when the
   * bundles it delegates to change (a bundle's first approval, its last revocation), other
   * bundles' roles when a repository of the flat layout migrates. Each is signed like `signed`.
   */
  also: z.array(z.strictObject({ role: z.string(), signed: z.record(z.string(), z.unknown()) })),
  /** Targets added and removed compared with what devices see now, for the approver to review. */
  added: z.array(z.string()),
  removed: z.array(z.string()),
  threshold: z.number().int().positive(),
  required: z.number().int().positive(),
  signatures: z.array(approval),
});
export type SigningProposal = z.infer<typeof signingProposal>;

export const signatureRequest = z.strictObject({
  proposalId: z.number().int().positive(),
  keyid: keyId,
  sig: z.string().regex(/^[0-9a-f]{128}$/, 'must be an Ed25519 signature in hex'),
  /** One signature per document of the proposal's `also`, by role. */
  also: z.array(z.strictObject({ role: z.string().max(80), sig: z.string().regex(/^[0-9a-f]{128}$/, 'must be an Ed25519 signature in hex') })).max(10_000).optional(),
});

export const signatureReceipt = z.strictObject({
  published: z.boolean(),
  signatures: z.array(approval),
  threshold: z.number().int().positive(),
});

export const createKeyRequest = z.strictObject({ role: z.enum(['targets', 'snapshot', 'timestamp']) });
export const createdKey = z.strictObject({ keyId, publicKey: z.record(z.string(), z.unknown()) });

export const trustStatus = z.strictObject({
  mode: z.enum(['development', 'offline-root']),
  targetsSigning: z.enum(['server', 'offline']),
  rootVersion: z.number().int().positive(),
  rootExpires: z.string(),
  roles: z.record(z.string(), z.strictObject({ keyIds: z.array(z.string()), threshold: z.number().int(), heldByServer: z.number().int() })),
  timestamp: z.strictObject({ version: z.number().int(), expires: z.string() }).nullable(),
});

export const rootAccepted = z.strictObject({ version: z.number().int().positive() });
