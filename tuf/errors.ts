import { DownloadHTTPError, DownloadLengthMismatchError, BadVersionError, ExpiredMetadataError, RepositoryError as ClientRepositoryError } from 'tuf-js/dist/error.js';
import { LengthOrHashMismatchError, RepositoryError as ModelRepositoryError, UnsignedMetadataError } from '@tufjs/models/dist/error.js';
import type { ErrorCode } from '../protocol/errors.ts';

/**
 * Why a TUF refresh was refused, as a stable code (the device reports it, the CLI prints it), so
 * a frozen repository, a forged signature, a replayed old version and an endless file can be told
 * apart in a fleet's reports instead of all reading "untrusted metadata".
 */
export const trustErrorCodes = ['metadata_expired', 'bad_signature', 'rollback', 'oversized', 'untrusted_metadata', 'download_failed'] as const satisfies readonly ErrorCode[];
export type TrustErrorCode = (typeof trustErrorCodes)[number];

/**
 * A refused or failed refresh. `transient` failures (network, a 5xx) are worth retrying as they
 * are; the others fail the same way until the repository changes. `cause` keeps tuf-js's error.
 */
export class TrustError extends Error {
  override readonly name = 'TrustError';
  constructor(
    readonly code: TrustErrorCode,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The code of an error tuf-js threw during a refresh, from its own error classes (tuf-js's
 * `error.ts` and @tufjs/models' `error.ts`), most specific first: EqualVersionError extends
 * BadVersionError, and all of the repository ones extend a RepositoryError.
 */
export function trustErrorCodeOf(error: unknown): { code: TrustErrorCode; transient: boolean } {
  // §5.3.10, §5.4.4, §5.5.6, §5.6.5: metadata past its expiry, the sign of a freeze attack.
  if (error instanceof ExpiredMetadataError) return { code: 'metadata_expired', transient: false };
  // §5.3.4–5.6.4: fewer than a threshold of valid signatures from the keys the delegator names.
  if (error instanceof UnsignedMetadataError) return { code: 'bad_signature', transient: false };
  // §5.3.5, §5.4.3.1, §5.5.5: a version lower than (or equal to) the trusted one: a rollback.
  if (error instanceof BadVersionError) return { code: 'rollback', transient: false };
  // More bytes than the configured or signed maximum: the endless-data attack (§5.2, §5.4.1).
  if (error instanceof DownloadLengthMismatchError) return { code: 'oversized', transient: false };
  // A file whose length or hash differs from what the delegator signed (mix-and-match, §5.5.2).
  if (error instanceof LengthOrHashMismatchError || error instanceof ClientRepositoryError || error instanceof ModelRepositoryError) {
    return { code: 'untrusted_metadata', transient: false };
  }
  // tuf-js reads a 404 as "no such metadata"; a 5xx is an outage worth retrying.
  if (error instanceof DownloadHTTPError) return { code: error.statusCode >= 500 ? 'download_failed' : 'untrusted_metadata', transient: error.statusCode >= 500 };
  // fetch() and lib/http.ts reject with a TypeError on a network failure, AbortSignal.timeout
  // with a TimeoutError; a body cut while it is read fails with the socket's error (ECONNRESET, …)
  // or an AbortError when the deadline passes.
  if (error instanceof TypeError || ['TimeoutError', 'AbortError'].includes((error as Error)?.name) || isSocketError(error)) return { code: 'download_failed', transient: true };
  return { code: 'untrusted_metadata', transient: false };
}

/** A node system error from a socket (a reset, a refused or timed-out connection, a broken pipe). */
function isSocketError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && /^(ECONN|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)/.test(code);
}

/**
 * Wraps what a refresh threw in a TrustError. `inner` is the error the code is derived from, when
 * tuf-js wrapped the original in a RuntimeError without it (see tuf/client.ts); it is kept as the
 * cause, so a report or a log can show the original class and stack.
 */
export function toTrustError(error: unknown, inner: unknown = error): TrustError {
  if (error instanceof TrustError) return error;
  const { code, transient } = trustErrorCodeOf(inner);
  return new TrustError(code, `TUF metadata refresh failed: ${(error as Error)?.message ?? String(error)}`, transient, { cause: inner });
}
