import test from 'ava';
import { OciError } from '../../server/oci/errors.ts';
import { mediaTypes, pageTags, parseContentRange, parseManifest, parseReference, parseRepository, versionOfTag } from '../../server/oci/media.ts';

/* The registry's pure core, table-driven. */

const code = (run: () => unknown): string | undefined => {
  try {
    run();
    return undefined;
  } catch (error) {
    return error instanceof OciError ? error.code : `not an OciError: ${String(error)}`;
  }
};

test('repository names are exactly <bundle>/<image> in the OCI component grammar', (t) => {
  t.like(parseRepository('shop/pos-app'), { bundle: 'shop', image: 'pos-app' });
  t.like(parseRepository('a.b/c__d'), { bundle: 'a.b', image: 'c__d' });
  for (const bad of ['shop', 'a/b/c', 'Shop/app', 'shop/App', 'shop/..', 'shop/-app', 'shop/app-', '/app', 'shop/', 'sh op/app', `${'a'.repeat(65)}/x`, 'shop/a%2fb']) {
    t.is(code(() => parseRepository(bad)), 'NAME_INVALID', bad);
  }
});

test('references are digests or tags; tags must be strict semver to join a release', (t) => {
  const digest = `sha256:${'a'.repeat(64)}`;
  t.deepEqual(parseReference(digest), { type: 'digest', digest });
  t.deepEqual(parseReference('1.2.3-rc.1'), { type: 'tag', tag: '1.2.3-rc.1' });
  t.is(code(() => parseReference('sha512:abc')), 'DIGEST_INVALID');
  t.is(code(() => parseReference(`sha256:${'A'.repeat(64)}`)), 'DIGEST_INVALID');
  t.is(code(() => parseReference('.hidden')), 'MANIFEST_INVALID');
  t.is(versionOfTag('2.0.0'), '2.0.0');
  for (const bad of ['latest', 'v1.0.0', '1.0', '01.0.0', '1.0.0+build']) t.is(code(() => versionOfTag(bad)), 'TAG_INVALID', bad);
});

test('Content-Range on PATCH: <start>-<end>, inclusive', (t) => {
  t.deepEqual(parseContentRange('0-99'), { start: 0, end: 99 });
  t.deepEqual(parseContentRange('bytes 100-199'), { start: 100, end: 199 });
  for (const bad of ['', '5-4', '-1', '1-', 'abc', '0-99/100', `0-${'9'.repeat(20)}`]) t.is(parseContentRange(bad), undefined, bad);
});

test('tag pages: lexical order, after last, at most n', (t) => {
  const tags = ['2.0.0', '1.0.0', '1.10.0', '1.2.0'];
  t.deepEqual(pageTags(tags, undefined, undefined), { tags: ['1.0.0', '1.10.0', '1.2.0', '2.0.0'], more: false });
  t.deepEqual(pageTags(tags, 2, undefined), { tags: ['1.0.0', '1.10.0'], more: true });
  t.deepEqual(pageTags(tags, 2, '1.10.0'), { tags: ['1.2.0', '2.0.0'], more: false });
  t.deepEqual(pageTags(tags, 0, undefined), { tags: [], more: true });
});

test('manifests: media type from the body or Content-Type, refs extracted, bad shapes refused', (t) => {
  const d = (n: string) => ({ mediaType: 'x', digest: `sha256:${n.repeat(64)}`, size: 1 });
  const image = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: d('a'), layers: [d('b')], subject: d('c') })), mediaTypes.ociManifest);
  t.like(image, { mediaType: mediaTypes.ociManifest, kind: 'image', subject: d('c').digest, artifactType: 'x' });
  t.deepEqual(image.blobs.map((b) => b.digest), [d('a').digest, d('b').digest]);
  const list = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.dockerList, manifests: [d('e')] })), undefined);
  t.like(list, { kind: 'index', mediaType: mediaTypes.dockerList });
  t.deepEqual(list.manifests.map((m) => m.digest), [d('e').digest]);

  const cases: [string, unknown, string | undefined][] = [
    ['not JSON', 'nope', mediaTypes.ociManifest],
    ['no media type anywhere', { schemaVersion: 2, config: d('a'), layers: [] }, undefined],
    ['schema 1', { schemaVersion: 1, name: 'x' }, 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
    ['body and header disagree', { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] }, mediaTypes.ociManifest],
    ['missing layers', { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: d('a') }, undefined],
    ['sha512 layer', { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: d('a'), layers: [{ ...d('b'), digest: `sha512:${'b'.repeat(128)}` }] }, undefined],
    ['negative size', { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { ...d('a'), size: -1 }, layers: [] }, undefined],
  ];
  for (const [what, body, contentType] of cases) {
    t.is(code(() => parseManifest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), contentType)), 'MANIFEST_INVALID', what);
  }
});
