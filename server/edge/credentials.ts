import { createHash } from 'node:crypto';
import type { CredentialVerdict, DeviceCredential } from '../../protocol/edge.ts';
import { normalSerial } from '../../certs/pki.ts';
import { UpstreamUnavailable } from './upstream.ts';

/*
 * Device credentials at the edge. The edge holds no device table: it asks the origin whether a
 * token holds and may read what it asks for (POST /api/v1/edge/credentials), and keeps the answer
 * for `freshMs` (a revoked device is refused within that time while the link is up). While the
 * origin cannot be reached, an answer up to `staleMs` old still stands, so a link drop does not
 * lock the shop's devices out. Tokens are kept only as SHA-256 hashes; the cache is bounded.
 * A device on the edge's HTTPS listener is its certificate (issue 12): the TLS layer checked the
 * chain, and the origin says whether that certificate (by serial) is still good, under the same
 * rule, so a revoked certificate is refused within `freshMs` once the link is up.
 */

/** One cache key per credential; a certificate by CN and serial (one spelling: normalSerial). */
function keyOf(credential: DeviceCredential): string {
  if ('token' in credential) return `t:${createHash('sha256').update(credential.token).digest('hex')}`;
  return `c:${credential.certificate.commonName}|${normalSerial(credential.certificate.serial)}`;
}

export interface CredentialCacheOptions {
  ask(credential: DeviceCredential, digest: string | undefined, bundle?: string): Promise<CredentialVerdict>;
  /** Milliseconds since some epoch (injected: tests move time). */
  now(): number;
  freshMs: number;
  staleMs: number;
  /** Most answers kept; the oldest go first. */
  maxEntries?: number;
}

export interface CredentialCache {
  /**
   * The verdict, or throws UpstreamUnavailable when the origin is down and no usable answer is
   * cached. `bundle`: may the device read that bundle's content (`/v2` pulls, `/tuf/targets/`).
   */
  check(credential: DeviceCredential, digest?: string, bundle?: string): Promise<CredentialVerdict>;
}

export function createCredentialCache(options: CredentialCacheOptions): CredentialCache {
  const entries = new Map<string, { verdict: CredentialVerdict; at: number }>();
  const max = options.maxEntries ?? 100_000;
  return {
    async check(credential, digest, bundle) {
      const key = `${keyOf(credential)}|${digest ?? ''}${bundle ? `|b:${bundle}` : ''}`;
      const cached = entries.get(key);
      const now = options.now();
      if (cached && now - cached.at < options.freshMs) return cached.verdict;
      try {
        const verdict = await options.ask(credential, digest, bundle);
        entries.delete(key);
        entries.set(key, { verdict, at: now });
        if (entries.size > max) entries.delete(entries.keys().next().value!);
        return verdict;
      } catch (error) {
        if (error instanceof UpstreamUnavailable && cached && now - cached.at < options.staleMs) return cached.verdict;
        throw error;
      }
    },
  };
}
