import test from 'ava';
import { compareFiles } from '../../cli/verify.ts';
import { diffArtifacts } from '../../cli/diff.ts';
import { parseReleaseArg } from '../../cli/release.ts';
import type { Artifact } from '../../protocol/api.ts';
import { computeNextVersion } from '../../server/bundles/next-version.ts';
import { parseControl, resolvePackage } from '../../server/bundles/packages.ts';
import { pageHeaders } from '../../server/http/pagination.ts';

test('next version: semver bumps from the highest existing version, pre-releases included', (t) => {
  const table: [string[], 'major' | 'minor' | 'patch' | 'prerelease', string | undefined, string][] = [
    [[], 'major', undefined, '1.0.0'],
    [[], 'minor', undefined, '0.1.0'],
    [[], 'patch', undefined, '0.0.1'],
    [[], 'prerelease', undefined, '0.0.1-rc.0'],
    [['1.0.0', '1.1.0', '1.0.5'], 'minor', undefined, '1.2.0'],
    [['1.0.0', '1.1.0', '1.0.5'], 'patch', undefined, '1.1.1'],
    [['1.9.0', '1.10.0'], 'patch', undefined, '1.10.1'],
    [['1.2.0-rc.1', '1.1.0'], 'minor', undefined, '1.2.0'],
    [['1.2.0-rc.1'], 'prerelease', undefined, '1.2.0-rc.2'],
    [['1.2.0-beta.3'], 'prerelease', undefined, '1.2.0-beta.4'],
    [['1.2.0-beta.3'], 'prerelease', 'rc', '1.2.0-rc.0'],
    [['1.2.0'], 'prerelease', 'rc', '1.2.1-rc.0'],
    [['1.2.0-rc.1', '1.2.0'], 'patch', undefined, '1.2.1'],
    [['2.0.0-alpha.1'], 'major', undefined, '2.0.0'],
    // A preid with major, minor or patch: a pre-release of that bump (semver's premajor, preminor, prepatch).
    [['1.2.0'], 'minor', 'rc', '1.3.0-rc.0'],
    [['1.2.0'], 'major', 'beta', '2.0.0-beta.0'],
    [['1.2.0'], 'patch', 'rc', '1.2.1-rc.0'],
  ];
  for (const [existing, bump, preid, expected] of table) t.is(computeNextVersion(existing, bump, preid).version, expected, `${existing.join(',')} + ${bump}${preid ? ` (${preid})` : ''}`);
  t.throws(() => computeNextVersion(['1.2.0-rc.1'], 'prerelease', 'beta'), { message: /not above 1\.2\.0-rc\.1/ });
});

test('pagination headers follow GitLab', (t) => {
  const url = '/api/v1/bundles?search=a';
  const first = pageHeaders({ page: 1, perPage: 20, offset: 0 }, 45, url);
  t.like(first, { 'X-Total': '45', 'X-Total-Pages': '3', 'X-Page': '1', 'X-Per-Page': '20', 'X-Next-Page': '2', 'X-Prev-Page': '' });
  // Relative links: the Host header never reaches them (issue 14 item 17).
  t.is(first.Link, '</api/v1/bundles?search=a&page=1&per_page=20>; rel="first", </api/v1/bundles?search=a&page=2&per_page=20>; rel="next", </api/v1/bundles?search=a&page=3&per_page=20>; rel="last"');
  t.like(pageHeaders({ page: 3, perPage: 20, offset: 40 }, 45, url), { 'X-Next-Page': '', 'X-Prev-Page': '2' });
  t.like(pageHeaders({ page: 1, perPage: 20, offset: 0 }, 0, url), { 'X-Total': '0', 'X-Total-Pages': '1', 'X-Next-Page': '' });
  t.like(pageHeaders({ page: 9, perPage: 20, offset: 160 }, 45, url), { 'X-Prev-Page': '3', 'X-Next-Page': '' }, 'past the end, prev points at the last page');
});

test('verify compares by name, size and hash, and names extra files', (t) => {
  const expected = [{ name: 'a', size: 1, sha256: 'aa' }, { name: 'b', size: 2, sha256: 'bb' }, { name: 'c', size: 3, sha256: 'cc' }, { name: 'd', size: 4, sha256: 'dd' }];
  const held = [{ name: 'a', size: 1, sha256: 'aa' }, { name: 'b', size: 9, sha256: 'bb' }, { name: 'c', size: 3, sha256: 'xx' }, { name: 'z', size: 1, sha256: 'zz' }];
  t.deepEqual(compareFiles(expected, held), [
    { type: 'size', name: 'b', expected: 2, actual: 9 },
    { type: 'digest', name: 'c', expected: 'sha256:cc', actual: 'sha256:xx' },
    { type: 'missing', name: 'd' },
    { type: 'extra', name: 'z' },
  ]);
  t.deepEqual(compareFiles(expected, expected), []);
});

test('diff lists added, removed and changed artifacts by name', (t) => {
  const a = (name: string, digest: string, extra: Partial<Artifact> = {}): Artifact => ({ name, type: 'file', digest: `sha256:${digest.repeat(64)}`, size: 1, package: null, updatedAt: '2026-01-01T00:00:00.000Z', ...extra });
  const diff = diffArtifacts([a('same', '1'), a('gone', '2'), a('bytes', '3'), a('meta', '4')], [a('same', '1'), a('new', '5'), a('bytes', '6'), a('meta', '4', { type: 'image' })]);
  t.deepEqual(diff.added.map((x) => x.name), ['new']);
  t.deepEqual(diff.removed.map((x) => x.name), ['gone']);
  t.deepEqual(diff.changed.map((c) => [c.name, c.fields]), [['bytes', ['digest']], ['meta', ['type']]]);
});

test('package metadata: control files parse, the file wins, contradictions and gaps are refused', (t) => {
  t.deepEqual(parseControl('Package: pos\nVersion: 1:2.0-1\nArchitecture: arm64\nDescription: x\n more\n'), { name: 'pos', version: '1:2.0-1', architecture: 'arm64' });
  t.deepEqual(resolvePackage({ format: 'deb' }, { name: 'pos', version: '1', architecture: 'all' }), { format: 'deb', name: 'pos', version: '1', architecture: 'all' });
  t.deepEqual(resolvePackage({ format: 'npm', architecture: 'all' }, { name: 'x', version: '1.0.0', architecture: 'all' }).name, 'x');
  t.throws(() => resolvePackage({ format: 'deb', name: 'other' }, { name: 'pos', version: '1', architecture: 'all' }), { message: /contradicts/ });
  t.throws(() => resolvePackage({ format: 'generic', name: 'fw' }, {}), { message: /version, architecture missing/ });
  t.throws(() => resolvePackage({ format: 'deb' }, { name: 'pos', version: 'has space', architecture: 'all' }), { message: /invalid/ });
});

test('a release argument falls back to CONVOY_RELEASE_VERSION', (t) => {
  t.deepEqual(parseReleaseArg('pos@1.0.0', {}), { bundle: 'pos', version: '1.0.0' });
  t.deepEqual(parseReleaseArg('pos', { CONVOY_RELEASE_VERSION: '2.1.0-rc.1' }), { bundle: 'pos', version: '2.1.0-rc.1' });
  t.deepEqual(parseReleaseArg('pos@1.0.0', { CONVOY_RELEASE_VERSION: '2.0.0' }), { bundle: 'pos', version: '1.0.0' }, 'explicit wins');
  t.throws(() => parseReleaseArg('pos', {}), { message: /CONVOY_RELEASE_VERSION/ });
  t.throws(() => parseReleaseArg('pos', { CONVOY_RELEASE_VERSION: '1.0' }), { message: /not a version/ });
});
