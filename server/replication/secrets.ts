import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/*
 * Registry credentials at rest: AES-256-GCM under CONVOY_SECRET_KEY (NIST SP 800-38D). A fresh
 * 96-bit nonce per value; the tag authenticates the ciphertext and, as associated data, the
 * endpoint's name, so a sealed value copied onto another endpoint's row fails to open.
 * Stored as `v1.<nonce>.<ciphertext>.<tag>` in base64url: the version lets the scheme change.
 */

export class SecretKeyMissing extends Error {
  override readonly name = 'SecretKeyMissing';
}

export interface Sealer {
  seal(plain: string, context: string): string;
  open(sealed: string, context: string): string;
}

export function createSealer(key: Buffer | undefined): Sealer {
  const need = (): Buffer => {
    if (!key) throw new SecretKeyMissing('CONVOY_SECRET_KEY is not set: registry credentials are stored only encrypted (set it to 32 random bytes, e.g. openssl rand -hex 32)');
    return key;
  };
  return {
    seal(plain, context) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', need(), nonce);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v1', nonce, body, cipher.getAuthTag()].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
    },
    open(sealed, context) {
      const [version, nonce, body, tag] = sealed.split('.');
      if (version !== 'v1' || nonce === undefined || body === undefined || tag === undefined) throw new Error('sealed value has an unknown format');
      const decipher = createDecipheriv('aes-256-gcm', need(), Buffer.from(nonce, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    },
  };
}
