import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import { Sha256 } from '../../ui/src/sha256.ts';

/* The web UI's incremental SHA-256 (resumable uploads hash chunk by chunk) against node:crypto. */

const reference = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('known answers: empty, "abc", and lengths around the padding boundary', (t) => {
  t.is(new Sha256().hex(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.is(new Sha256().update(new TextEncoder().encode('abc')).hex(), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  for (const length of [55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]) {
    const bytes = randomBytes(length);
    t.is(new Sha256().update(bytes).hex(), reference(bytes), `length ${length}`);
  }
});

test('the same digest however the bytes are split into updates', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), fc.array(fc.nat({ max: 700 }), { maxLength: 8 }), (bytes, cuts) => {
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const hash = new Sha256();
      let previous = 0;
      for (const point of [...points, bytes.length]) {
        hash.update(bytes.subarray(previous, point));
        previous = point;
      }
      return hash.hex() === reference(bytes);
    }),
  );
  t.pass();
});

test('a few MiB in uneven chunks', (t) => {
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const hash = new Sha256();
  for (let offset = 0; offset < bytes.length; offset += 1_000_003) hash.update(bytes.subarray(offset, offset + 1_000_003));
  t.is(hash.hex(), reference(bytes));
});
