import test from 'ava';
import { initCeremony, keyFromJson, publicKeyJson, rotateRole } from '../../certs/ceremony.ts';
import { generateSigningKey, signerFor } from '../../tuf/keys.ts';
import { isSignedRollback } from '../../device/guard.ts';
import { ConfigError, loadServerConfig } from '../../server/config.ts';
import { contentFingerprint } from '../../server/bundles/manifest.ts';
import { buildRoot, rolePolicyOf, verifyRootRotation } from '../../tuf/repository.ts';

const now = new Date('2026-01-01T00:00:00Z');

test('a root threshold must be between 1 and the number of keys', (t) => {
  const key = generateSigningKey().publicKey;
  for (const threshold of [0, 2]) {
    t.throws(() => buildRoot({ root: { keys: [key], threshold }, targets: { keys: [key], threshold: 1 }, snapshot: { keys: [key], threshold: 1 }, timestamp: { keys: [key], threshold: 1 } }, 1, now), { message: /threshold/ });
  }
});

test('the ceremony signs root 1 with every root key and names the thresholds', (t) => {
  const ceremony = initCeremony({ rootKeys: 3, rootThreshold: 2, now });
  t.is(Object.keys(ceremony.root.signatures).length, 3);
  t.like(ceremony.root.signed.roles.root, { threshold: 2 });
  t.deepEqual(ceremony.online.map((o) => o.role).sort(), ['snapshot', 'targets', 'timestamp']);
  t.notThrows(() => ceremony.root.verifyDelegate('root', ceremony.root));
  const offline = initCeremony({ rootKeys: 1, rootThreshold: 1, targetsKeys: [generateSigningKey().publicKey, generateSigningKey().publicKey], targetsThreshold: 2, now });
  t.deepEqual(offline.online.map((o) => o.role).sort(), ['snapshot', 'timestamp'], 'no targets key is made for the server');
});

// TUF §5.3.4-5.3.5 as the server and the CLI check it before any device does.
const rotations: [string, (c: ReturnType<typeof initCeremony>) => Parameters<typeof verifyRootRotation>[1], RegExp | null][] = [
  ['2 of 3 old root keys, same root keys', (c) => rotateRole({ current: c.root, role: 'timestamp', keys: [generateSigningKey().publicKey], signers: c.rootKeys.slice(0, 2), now }), null],
  ['1 of 3 old root keys', (c) => {
    const policy = rolePolicyOf(c.root.signed);
    const next = buildRoot(policy, 2, now);
    next.sign(signerFor(c.rootKeys[0]!));
    return next;
  }, /root was signed by 1\/2 keys/],
  ['a version that skips one', (c) => {
    const next = buildRoot(rolePolicyOf(c.root.signed), 3, now);
    for (const key of c.rootKeys) next.sign(signerFor(key), true);
    return next;
  }, /root version must be 2/],
  ['new root keys that did not sign', (c) => {
    const fresh = [generateSigningKey(), generateSigningKey()];
    const policy = rolePolicyOf(c.root.signed);
    policy.root = { keys: fresh.map((k) => k.publicKey), threshold: 2 };
    const next = buildRoot(policy, 2, now);
    for (const key of c.rootKeys) next.sign(signerFor(key), true);
    return next;
  }, /signed by 0\/2/],
];

for (const [title, make, error] of rotations) {
  test(`root rotation: ${title}`, (t) => {
    const ceremony = initCeremony({ rootKeys: 3, rootThreshold: 2, now });
    const attempt = () => verifyRootRotation(ceremony.root, make(ceremony));
    if (error) t.throws(attempt, { message: error });
    else t.notThrows(attempt);
  });
}

test('rotateRole refuses to produce a root devices would refuse', (t) => {
  const ceremony = initCeremony({ rootKeys: 3, rootThreshold: 2, now });
  t.throws(() => rotateRole({ current: ceremony.root, role: 'snapshot', keys: [generateSigningKey().publicKey], signers: [ceremony.rootKeys[2]!], now }), { message: /1\/2/ });
  const newRoot = [generateSigningKey(), generateSigningKey()];
  const next = rotateRole({ current: ceremony.root, role: 'root', keys: newRoot.map((k) => k.publicKey), threshold: 2, signers: [...ceremony.rootKeys.slice(1), ...newRoot], now });
  t.notThrows(() => verifyRootRotation(ceremony.root, next));
});

test('public key files: the key id is recomputed, a forged one is refused', (t) => {
  const key = generateSigningKey();
  t.is(keyFromJson(publicKeyJson(key)).keyID, key.keyId);
  t.throws(() => keyFromJson({ ...publicKeyJson(key), keyid: 'ab'.repeat(32) }), { message: /does not match/ });
});

const rollbackCustom: [unknown, boolean][] = [
  [undefined, false],
  [{}, false],
  [{ convoy: { rollback: 'true' } }, false],
  [{ convoy: { rollback: false } }, false],
  [{ rollback: true }, false],
  [{ convoy: { rollback: true } }, true],
];
for (const [custom, allowed] of rollbackCustom) {
  test(`a downgrade is allowed only by custom.convoy.rollback === true: ${JSON.stringify(custom)}`, (t) => {
    t.is(isSignedRollback(custom as Record<string, unknown> | undefined), allowed);
  });
}

test('an approval is for exact content: order does not matter, any change does', (t) => {
  const a = { name: 'a', type: 'file' as const, digest: `sha256:${'1'.repeat(64)}`, size: 1, package: null, updatedAt: now.toISOString() };
  const b = { ...a, name: 'b' };
  t.is(contentFingerprint([a, b]), contentFingerprint([b, a]));
  t.not(contentFingerprint([a, b]), contentFingerprint([a, { ...b, size: 2 }]));
  t.not(contentFingerprint([a, b]), contentFingerprint([a]));
});

test('an approval covers package metadata: every field the manifest signs changes the fingerprint', (t) => {
  const pkg = { format: 'deb' as const, name: 'pos', version: '1.0.0', architecture: 'amd64' };
  const a = { name: 'pos.deb', type: 'package' as const, digest: `sha256:${'1'.repeat(64)}`, size: 1, package: pkg };
  const base = contentFingerprint([a]);
  for (const change of [{ name: 'other' }, { version: '1.0.1' }, { architecture: 'arm64' }, { format: 'generic' as const }]) {
    t.not(contentFingerprint([{ ...a, package: { ...pkg, ...change } }]), base, JSON.stringify(change));
  }
  t.not(contentFingerprint([{ ...a, type: 'file', package: null }]), base);
  // Key order of the input does not matter: the builder fixes it.
  t.is(contentFingerprint([{ ...a, package: { architecture: 'amd64', version: '1.0.0', name: 'pos', format: 'deb' } }]), base);
});

test('CONVOY_TUF_EXPIRY sets online roles lifetimes and names itself when wrong', (t) => {
  t.like(loadServerConfig({ CONVOY_TUF_EXPIRY: 'timestamp=3600,snapshot=86400' }).tufExpiry, { timestamp: 3600, snapshot: 86400, targets: 365 * 24 * 3600 });
  for (const raw of ['root=100', 'timestamp=10', 'timestamp']) {
    t.throws(() => loadServerConfig({ CONVOY_TUF_EXPIRY: raw }), { instanceOf: ConfigError, message: /^CONVOY_TUF_EXPIRY must be/ });
  }
});
