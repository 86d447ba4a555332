import type Koa from 'koa';
import { ProtocolError, type ErrorCode } from '../../protocol/errors.ts';
import type { Logger } from '../../protocol/log.ts';
import { ApiError, httpStatusOf } from '../http/errors.ts';

/**
 * Errors on /v2 speak the OCI distribution spec ("Error Codes"), not Convoy's REST shape: registry
 * clients (skopeo, docker, crane) parse `{"errors":[{"code","message","detail"}]}` and show the
 * message to their user.
 */
export const ociErrorStatus = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  RANGE_INVALID: 416,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
} as const;
export type OciErrorCode = keyof typeof ociErrorStatus;

export class OciError extends Error {
  override readonly name = 'OciError';
  readonly status: number;
  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly detail: Record<string, unknown> = {},
    options?: { status?: number; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status ?? ociErrorStatus[code];
  }
}

/**
 * Convoy's own errors (from the bundle service, the blob store, parsers) keep their HTTP status
 * and message and get the closest OCI code; the Convoy code travels in `detail.convoyCode` so a
 * script can still branch on `version_immutable`.
 */
const fromConvoy: Partial<Record<ErrorCode, OciErrorCode>> = {
  invalid_name: 'NAME_INVALID',
  invalid_version: 'TAG_INVALID',
  invalid_digest: 'DIGEST_INVALID',
  digest_mismatch: 'DIGEST_INVALID',
  size_mismatch: 'SIZE_INVALID',
  payload_too_large: 'SIZE_INVALID',
  unauthenticated: 'UNAUTHORIZED',
  forbidden: 'DENIED',
  version_immutable: 'DENIED',
  already_exists: 'DENIED',
  not_found: 'NAME_UNKNOWN',
};

export function toOciError(error: ApiError | ProtocolError): OciError {
  const code = fromConvoy[error.code] ?? (httpStatusOf(error.code) < 500 ? 'UNSUPPORTED' : 'UNKNOWN');
  return new OciError(code, error.message, { convoyCode: error.code }, { status: httpStatusOf(error.code), cause: error });
}

export const basicChallenge = 'Basic realm="convoy", charset="UTF-8"';

/** The error boundary of /v2: every failure leaves as an OCI error body. */
export function ociErrorMiddleware(log: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (caught) {
      let error: OciError;
      if (caught instanceof OciError) error = caught;
      else if (caught instanceof ApiError || caught instanceof ProtocolError) error = toOciError(caught);
      else {
        log.error('registry request failed', { method: ctx.method, path: ctx.path, error: caught instanceof Error ? caught.stack : String(caught) });
        error = new OciError('UNKNOWN', 'internal server error');
      }
      ctx.status = error.status;
      if (error.status === 401) ctx.set('WWW-Authenticate', basicChallenge);
      // The request body may not have been read (an early refusal): close the connection rather
      // than let a client keep streaming a large upload into a dead request.
      if (!ctx.req.complete && ctx.method !== 'GET' && ctx.method !== 'HEAD') ctx.set('Connection', 'close');
      ctx.type = 'application/json';
      ctx.body = { errors: [{ code: error.code, message: error.message, detail: error.detail }] };
    }
  };
}
