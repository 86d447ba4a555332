import { createHash, createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Signature } from '@tufjs/models';

/**
 * Ed25519 signing keys for TUF metadata. Pure key material in, key material out: storing and
 * protecting the private half is the caller's job (the server keeps online keys in its data dir
 * with mode 0600; the offline root ceremony keeps the root key off the server entirely).
 */
export interface SigningKey {
  /** TUF key id: SHA-256 of the canonical JSON of the public key (TUF spec §4.2). */
  keyId: string;
  publicKey: Key;
  privateKeyPem: string;
}

export function generateSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
}

export function signingKeyFromPem(privateKeyPem: string): SigningKey {
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('TUF signing keys must be Ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const publicHex = Buffer.from(jwk.x!, 'base64url').toString('hex');
  const keyJson = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicHex } };
  const keyId = createHash('sha256').update(canonicalize(keyJson)).digest('hex');
  const publicKey = new Key({ keyID: keyId, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } });
  return { keyId, publicKey, privateKeyPem };
}

/** A signer in the shape `Metadata.sign` expects: signs the canonical bytes it is handed. */
export function signerFor(key: SigningKey): (data: Buffer) => Signature {
  const privateKey = createPrivateKey(key.privateKeyPem);
  return (data) => new Signature({ keyID: key.keyId, sig: sign(null, data, privateKey).toString('hex') });
}
