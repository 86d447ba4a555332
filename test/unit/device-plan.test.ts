import test from 'ava';
import { UpdateError } from '../../device/errors.ts';
import { planArtifacts, planManifest, planSpace, requireSignedTarget, uniqueBlobs, type SignedTarget } from '../../device/plan.ts';
import type { PlannedArtifact } from '../../device/state.ts';
import { maxManifestBytes, type BundleManifest } from '../../protocol/manifest.ts';
import type { ErrorCode } from '../../protocol/errors.ts';

const release = { bundle: 'pos-app', version: '2.0.0' };
const hex = (c: string) => c.repeat(64);
const manifest: BundleManifest = {
  schema: 'convoy.bundle.manifest/v1',
  bundle: 'pos-app',
  version: '2.0.0',
  approvedAt: '2026-01-01T00:00:00.000Z',
  artifacts: [
    { name: 'app.bin', type: 'file', digest: `sha256:${hex('a')}`, size: 10 },
    { name: 'conf.tar', type: 'archive', digest: `sha256:${hex('b')}`, size: 20 },
  ],
};
const signed = (length: number, sha256?: string): SignedTarget => ({ length, hashes: sha256 ? { sha256 } : {} });
const honest = new Map<string, SignedTarget | undefined>([
  ['pos-app/2.0.0/artifacts/app.bin', signed(10, hex('a'))],
  ['pos-app/2.0.0/artifacts/conf.tar', signed(20, hex('b'))],
]);

/** The code an UpdateError thrown by `fn` carries, or 'ok'. */
function outcome(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof UpdateError) return error.code;
    throw error;
  }
}

test('the signed targets paths the plan reads are those protocol/targets.ts names', (t) => {
  // Guards the fixture: if the naming changes, the table below must be rebuilt from it.
  t.deepEqual([...honest.keys()].sort(), ['pos-app/2.0.0/artifacts/app.bin', 'pos-app/2.0.0/artifacts/conf.tar'].sort());
  t.deepEqual(planArtifacts(release, manifest, honest).map((a) => a.name), ['app.bin', 'conf.tar']);
});

const manifestCases: [string, SignedTarget | undefined, ErrorCode | 'ok'][] = [
  ['a signed manifest is planned', signed(500, hex('c')), 'ok'],
  ['a manifest not in the signed targets', undefined, 'target_missing'],
  ['a manifest signed without a SHA-256', signed(500), 'untrusted_metadata'],
  ['a manifest signed with a malformed SHA-256', signed(500, 'ABC'), 'untrusted_metadata'],
  ['a manifest over the size limit', signed(maxManifestBytes + 1, hex('c')), 'untrusted_metadata'],
  ['a manifest at the size limit', signed(maxManifestBytes, hex('c')), 'ok'],
];
for (const [name, info, expected] of manifestCases) {
  test(`planManifest: ${name} → ${expected}`, (t) => {
    t.is(outcome(() => planManifest(release, info)), expected);
  });
}

const with_ = (path: string, info: SignedTarget | undefined) => new Map(honest).set(path, info);
const artifactCases: [string, Parameters<typeof planArtifacts>[1], Parameters<typeof planArtifacts>[2], ErrorCode | 'ok'][] = [
  ['manifest and targets agree', manifest, honest, 'ok'],
  ['the manifest names another release', { ...manifest, version: '2.0.1' }, honest, 'untrusted_metadata'],
  ['the manifest names another bundle', { ...manifest, bundle: 'other' }, honest, 'untrusted_metadata'],
  ['an artifact missing from the signed targets', manifest, with_('pos-app/2.0.0/artifacts/conf.tar', undefined), 'target_missing'],
  ['a signed length that differs from the manifest', manifest, with_('pos-app/2.0.0/artifacts/app.bin', signed(11, hex('a'))), 'untrusted_metadata'],
  ['a signed hash that differs from the manifest', manifest, with_('pos-app/2.0.0/artifacts/app.bin', signed(10, hex('d'))), 'untrusted_metadata'],
  ['a signed artifact with no SHA-256', manifest, with_('pos-app/2.0.0/artifacts/app.bin', signed(10)), 'untrusted_metadata'],
];
for (const [name, m, targets, expected] of artifactCases) {
  test(`planArtifacts: ${name} → ${expected}`, (t) => {
    t.is(outcome(() => planArtifacts(release, m, targets)), expected);
  });
}

test('planArtifacts takes length and hash from the signed targets', (t) => {
  t.deepEqual(planArtifacts(release, manifest, honest), [
    { name: 'app.bin', type: 'file', length: 10, sha256: hex('a') },
    { name: 'conf.tar', type: 'archive', length: 20, sha256: hex('b') },
  ]);
});

test('requireSignedTarget names the target it cannot find', (t) => {
  t.throws(() => requireSignedTarget('pos-app/2.0.0/manifest.json', undefined), { instanceOf: UpdateError, message: /pos-app\/2\.0\.0\/manifest\.json/ });
});

const a: PlannedArtifact = { name: 'a', type: 'file', length: 100, sha256: hex('a') };
const b: PlannedArtifact = { name: 'b', type: 'file', length: 50, sha256: hex('b') };
const aTwice: PlannedArtifact = { name: 'a2', type: 'file', length: 100, sha256: hex('a') };

test('uniqueBlobs fetches bytes two artifacts share once, in manifest order', (t) => {
  t.deepEqual(uniqueBlobs([a, b, aTwice]).map((x) => x.name), ['a', 'b']);
});

const spaceCases: [string, Parameters<typeof planSpace>[0], { download: number; staging: number; needed: number }][] = [
  ['nothing held, nothing staged', { pending: [a, b], artifacts: [a, b], held: new Map(), staged: false, reserveBytes: 7 }, { download: 150, staging: 150, needed: 307 }],
  ['half of one blob held (a .part file)', { pending: [a, b], artifacts: [a, b], held: new Map([[a.sha256, 40]]), staged: false, reserveBytes: 0 }, { download: 110, staging: 150, needed: 260 }],
  ['everything downloaded', { pending: [a, b], artifacts: [a, b], held: new Map([[a.sha256, 100], [b.sha256, 50]]), staged: false, reserveBytes: 0 }, { download: 0, staging: 150, needed: 150 }],
  ['a cache file longer than the signed length costs nothing', { pending: [a], artifacts: [a], held: new Map([[a.sha256, 500]]), staged: false, reserveBytes: 0 }, { download: 0, staging: 100, needed: 100 }],
  ['before staging: no download pending, the slot to write', { pending: [], artifacts: [a, b], held: new Map(), staged: false, reserveBytes: 5 }, { download: 0, staging: 150, needed: 155 }],
  ['the slot is staged already: only the reserve', { pending: [], artifacts: [a, b], held: new Map(), staged: true, reserveBytes: 5 }, { download: 0, staging: 0, needed: 5 }],
  ['shared bytes staged per artifact', { pending: uniqueBlobs([a, aTwice]), artifacts: [a, aTwice], held: new Map(), staged: false, reserveBytes: 0 }, { download: 100, staging: 200, needed: 300 }],
];
for (const [name, input, expected] of spaceCases) {
  test(`planSpace: ${name}`, (t) => {
    t.like(planSpace(input), expected);
  });
}
