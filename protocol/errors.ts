/**
 * Error codes shared by every room. A code is a stable string: clients branch on it, so a code is
 * never renamed, only added. The HTTP status each code maps to lives in server/http/errors.ts.
 */
export const errorCodes = [
  // Input that breaks the contract.
  'invalid_request',
  'invalid_name',
  'invalid_version',
  'invalid_digest',
  'digest_mismatch',
  'size_mismatch',
  'payload_too_large',
  'unsupported_media_type',
  'signature_invalid',
  // Who may do what.
  'unauthenticated',
  'forbidden',
  // State of resources.
  'not_found',
  'already_exists',
  'version_immutable',
  'version_not_approved',
  'version_empty',
  'version_revoked',
  'proposal_stale',
  // Rollouts.
  'group_empty',
  'downgrade_not_allowed',
  'invalid_state',
  // Device side.
  'untrusted_metadata',
  'target_missing',
  'download_failed',
  'install_failed',
  'downgrade_refused',
  'insufficient_space',
  'health_check_failed',
  'hook_failed',
  // Device side, why signed metadata was refused (from tuf-js's error classes; see tuf/errors.ts).
  'metadata_expired',
  'bad_signature',
  'rollback',
  'oversized',
  // Edge nodes (server/edge/): a write sent to an edge belongs to the origin; the origin is unreachable.
  'edge_read_only',
  'upstream_unavailable',
  // Anything else: a bug or an outage, never the caller's fault.
  'internal',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

/** The one error shape on the wire (HTTP bodies, device reports). */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

/**
 * An input that failed a protocol parser. Carries the code to answer with and a message that
 * names the offending field, so a user can fix the request without reading the source.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}
