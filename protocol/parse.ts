import type { z } from 'zod';
import { ProtocolError, type ErrorCode } from './errors.ts';

/**
 * Parse, don't cast: turns `unknown` from the wire into a typed value or a ProtocolError whose
 * message names every offending field (`artifacts.0.digest: …`).
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  code: ErrorCode = 'invalid_request',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
  throw new ProtocolError(code, `invalid ${what}: ${details}`);
}

/** Parses JSON text, reporting bad JSON with the same error type as a bad shape. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ProtocolError('invalid_request', `invalid ${what}: not JSON`);
  }
}
