import test from 'ava';
import type { BundleManifest } from '../../protocol/manifest.ts';
import type { DestinationRef, ReplicationFilter } from '../../protocol/replication.ts';
import { matchesVersions, planVersion, planWithdrawal, registryRepository, type ImageGraph } from '../../server/replication/planner.ts';

/* The pure planner, by table: what goes where, in which order, and what is skipped. */

const d = (n: number) => `sha256:${String(n).padStart(64, '0')}`;
const edge: DestinationRef = { type: 'edge', name: 'shop-eu' };
const site: DestinationRef = { type: 'registry', name: 'site' };

const manifest: BundleManifest = {
  schema: 'convoy.bundle.manifest/v1',
  bundle: 'pos',
  version: '2.1.0',
  approvedAt: '2026-12-01T00:00:00.000Z',
  artifacts: [
    { name: 'app', type: 'image', digest: d(1), size: 500 },
    { name: 'config.json', type: 'file', digest: d(2), size: 20 },
    { name: 'agent', type: 'package', digest: d(3), size: 3000, package: { format: 'deb', name: 'agent', version: '1.0', architecture: 'amd64' } },
  ],
};
const images = new Map<string, ImageGraph>([[d(1), { mediaType: 'application/vnd.oci.image.manifest.v1+json', children: [], blobs: [{ digest: d(10), size: 100 }, { digest: d(11), size: 90_000 }] }]]);
const base = {
  manifest,
  manifestBlob: { digest: d(99), size: 700 },
  images,
  metadata: [{ name: '1.root.json', size: 3 }, { name: '4.targets.json', size: 5 }, { name: 'timestamp.json', size: 2 }],
  holds: () => false,
};
const refs = (tasks: ReturnType<typeof planVersion>) => tasks.map((t) => `${t.destination.name} ${t.kind} ${t.ref} ${t.status}`);

test('versions: a semver range, pre-releases only when named (semver §11)', (t) => {
  const cases: [ReplicationFilter, string, boolean][] = [
    [{}, '2.1.0-rc.1', true],
    [{ versions: '>=2.0.0' }, '2.1.0', true],
    [{ versions: '>=2.0.0' }, '1.9.9', false],
    [{ versions: '>=2.0.0' }, '2.1.0-rc.1', false],
    [{ versions: '>=2.1.0-rc.0' }, '2.1.0-rc.1', true],
    [{ versions: '^1.4' }, '1.9.0', true],
  ];
  for (const [filter, version, expected] of cases) t.is(matchesVersions(filter, version), expected, `${filter.versions ?? '(all)'} ${version}`);
});

test('an edge gets every selected blob, the signed manifest, then the TUF metadata last', (t) => {
  t.deepEqual(refs(planVersion({ ...base, filter: {}, destinations: [edge] })), [
    `shop-eu blob ${d(10)} pending`,
    `shop-eu blob ${d(11)} pending`,
    `shop-eu blob ${d(1)} pending`,
    `shop-eu blob ${d(2)} pending`,
    `shop-eu blob ${d(3)} pending`,
    `shop-eu blob ${d(99)} pending`,
    'shop-eu metadata 1.root.json pending',
    'shop-eu metadata 4.targets.json pending',
    'shop-eu metadata timestamp.json pending',
  ]);
});

test('filters by type and name; what the destination holds is skipped, never sent', (t) => {
  const plan = planVersion({ ...base, filter: { types: ['image', 'file'], names: ['app'] }, destinations: [edge], holds: (_dest, digest) => digest === d(11) });
  t.deepEqual(refs(plan).slice(0, 4), [`shop-eu blob ${d(10)} pending`, `shop-eu blob ${d(11)} skipped`, `shop-eu blob ${d(1)} pending`, `shop-eu blob ${d(99)} pending`]);
  t.deepEqual(planVersion({ ...base, filter: { versions: '<2.0.0' }, destinations: [edge, site] }), [], 'a version outside the range plans nothing');
});

test('a registry gets images only: blobs, child manifests by digest, then the tag; per repository', (t) => {
  const index = new Map<string, ImageGraph>([[d(1), { mediaType: 'application/vnd.oci.image.index.v1+json', children: [{ digest: d(20), size: 400, mediaType: 'application/vnd.oci.image.manifest.v1+json' }], blobs: [{ digest: d(10), size: 100 }] }]]);
  const plan = planVersion({ ...base, images: index, filter: {}, destinations: [site], namespaces: new Map([['site', 'mirror']]), holds: (_dest, digest, repository) => repository === 'mirror/pos/app' && digest === d(10) });
  t.deepEqual(refs(plan), [`site blob mirror/pos/app@${d(10)} skipped`, `site manifest mirror/pos/app@${d(20)} pending`, 'site manifest mirror/pos/app:2.1.0 pending']);
  t.is(plan.at(-1)!.mediaType, 'application/vnd.oci.image.index.v1+json');
  t.is(plan.at(-1)!.digest, d(1));
  t.is(registryRepository(null, 'pos', 'App'), 'pos/app');
});

test('withdrawing a revoked version: an edge drops its signed manifest, then takes the re-signed metadata, timestamp last; a registry loses its tags', (t) => {
  const tasks = planWithdrawal({ filter: {}, destinations: [edge, site], manifest, inUse: new Set(), manifestDigest: d(99), metadata: base.metadata });
  t.deepEqual(refs(tasks), [
    `shop-eu delete ${d(99)} pending`,
    'shop-eu metadata 1.root.json pending',
    'shop-eu metadata 4.targets.json pending',
    'shop-eu metadata timestamp.json pending',
    'site delete pos/app:2.1.0 pending',
  ]);
  // A version the filter never sent is not withdrawn anywhere.
  t.deepEqual(planWithdrawal({ filter: { versions: '<2.0.0' }, destinations: [edge], manifest, inUse: new Set(), manifestDigest: d(99), metadata: base.metadata }), []);
});
