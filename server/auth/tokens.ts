import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Access tokens are 256 random bits with a recognisable prefix (so secret scanners find leaks). */
export function generateToken(): string {
  return `cvy_${randomBytes(32).toString('base64url')}`;
}

/** Only this hash is stored. SHA-256 suffices: the token is random, not a guessable password. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
