import type Koa from 'koa';
import { ProtocolError, type ErrorCode } from '../../protocol/errors.ts';
import type { Logger } from '../../protocol/log.ts';

/** An error meant for the API caller: a stable code and a message safe to show. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const statusOf: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_name: 400,
  invalid_version: 400,
  invalid_digest: 400,
  digest_mismatch: 400,
  size_mismatch: 400,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  already_exists: 409,
  version_immutable: 409,
  version_not_approved: 409,
  version_empty: 409,
  version_revoked: 409,
  proposal_stale: 409,
  group_empty: 409,
  downgrade_not_allowed: 409,
  invalid_state: 409,
  signature_invalid: 400,
  downgrade_refused: 500,
  untrusted_metadata: 500,
  target_missing: 500,
  download_failed: 500,
  install_failed: 500,
  insufficient_space: 500,
  health_check_failed: 500,
  hook_failed: 500,
  metadata_expired: 500,
  bad_signature: 500,
  rollback: 500,
  oversized: 500,
  edge_read_only: 403,
  upstream_unavailable: 503,
  internal: 500,
};

export function httpStatusOf(code: ErrorCode): number {
  return statusOf[code];
}

/**
 * The one place errors become responses: `{ "error": { "code", "message" } }`. Anything that is
 * not an ApiError or ProtocolError is a bug: logged with its stack, answered as a bare 500.
 */
export function errorMiddleware(log: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new ApiError('not_found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (error) {
      let code: ErrorCode = 'internal';
      let message = 'internal server error';
      if (error instanceof ApiError || error instanceof ProtocolError) {
        code = error.code;
        message = error.message;
      } else if (isClientHttpError(error)) {
        code = error.status === 413 ? 'payload_too_large' : error.status === 415 ? 'unsupported_media_type' : 'invalid_request';
        message = error.message;
      } else {
        log.error('request failed', { method: ctx.method, path: ctx.path, error: error instanceof Error ? error.stack : String(error) });
      }
      ctx.status = httpStatusOf(code);
      if (code === 'unauthenticated') ctx.set('WWW-Authenticate', 'Bearer realm="convoy"');
      // An early refusal (401, 403, a bad parameter) leaves a declared body unread. Node would
      // keep the connection and read the whole body to reuse it, so a client announcing gigabytes
      // could hold the socket for as long as it likes: answer, then close instead.
      if (hasUnreadBody(ctx)) ctx.set('Connection', 'close');
      ctx.body = { error: { code, message } };
    }
  };
}

/**
 * Bodies up to this size are still read to their end after an early refusal, as Node does: the
 * connection stays reusable, and a client still sending a small body is not cut off mid-send
 * (closing a socket with unread bytes resets it, and the client may lose the answer).
 */
const drainableBodyBytes = 64 * 1024;

/**
 * A request whose body was not read to its end and is too large to drain cheaply: more than
 * `drainableBodyBytes` declared, or chunked (no length: it may never end).
 */
export function hasUnreadBody(ctx: Koa.Context): boolean {
  if (ctx.req.complete) return false;
  const declared = ctx.get('content-length');
  if (declared !== '') return !/^\d+$/.test(declared) || Number(declared) > drainableBodyBytes;
  return ctx.get('transfer-encoding') !== '';
}

function isClientHttpError(error: unknown): error is { status: number; message: string } {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && (error as { expose?: unknown }).expose === true;
}
