import test from 'ava';
import { ConfigError, secretKey } from '../../server/config.ts';
import { createSealer, SecretKeyMissing } from '../../server/replication/secrets.ts';

/* Credentials at rest: AES-256-GCM, bound to their endpoint, refused without a key. */

const key = Buffer.alloc(32, 1);

test('sealed values open with the key and the same context, and only so', (t) => {
  const sealer = createSealer(key);
  const sealed = sealer.seal('s3cret', 'registry:site:password');
  t.regex(sealed, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
  t.false(sealed.includes('s3cret'));
  t.not(sealer.seal('s3cret', 'registry:site:password'), sealed, 'a fresh nonce each time');
  t.is(sealer.open(sealed, 'registry:site:password'), 's3cret');
  t.throws(() => sealer.open(sealed, 'registry:other:password'), undefined, 'copied onto another endpoint: refused');
  t.throws(() => createSealer(Buffer.alloc(32, 2)).open(sealed, 'registry:site:password'), undefined, 'another key: refused');
  const [v, nonce, body, tag] = sealed.split('.') as [string, string, string, string];
  const flipped = Buffer.from(body, 'base64url');
  flipped[0] = flipped[0]! ^ 1;
  t.throws(() => sealer.open([v, nonce, flipped.toString('base64url'), tag].join('.'), 'registry:site:password'), undefined, 'tampered: refused');
  t.throws(() => createSealer(undefined).seal('x', 'c'), { instanceOf: SecretKeyMissing, message: /CONVOY_SECRET_KEY/ });
});

test('CONVOY_SECRET_KEY: 64 hex digits or base64 of 32 bytes; anything else stops the start', (t) => {
  t.is(secretKey({}), undefined);
  t.deepEqual(secretKey({ CONVOY_SECRET_KEY: '01'.repeat(32) }), key);
  t.deepEqual(secretKey({ CONVOY_SECRET_KEY: key.toString('base64') }), key);
  for (const bad of ['short', '01'.repeat(31), Buffer.alloc(16).toString('base64')]) {
    t.throws(() => secretKey({ CONVOY_SECRET_KEY: bad }), { instanceOf: ConfigError, message: /CONVOY_SECRET_KEY must be 32 bytes/ });
  }
});
