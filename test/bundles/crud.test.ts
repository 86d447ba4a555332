import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { pushArtifact, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

async function putBlob(server: TestServer, bytes: Buffer): Promise<string> {
  const digest = sha256Digest(bytes);
  const answer = await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes });
  if (answer.status !== 201 && answer.status !== 200) throw new Error(`blob upload answered ${answer.status}`);
  return digest;
}

const upload = (server: TestServer, urlPath: string, bytes: Buffer) => server.api('PUT', urlPath, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });

test('the one-request upload creates the draft, adds or replaces, and answers 409 once approved', async (t) => {
  await withServer(t, async (server) => {
    t.is((await upload(server, '/api/v1/bundles/pos/versions/1.0.0/files/app.bin', Buffer.from('x'))).status, 404, 'the bundle must exist');
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const first = await upload(server, '/api/v1/bundles/pos/versions/1.0.0/files/app.bin', Buffer.from('one'));
    t.is(first.status, 201);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0')).body.status, 'draft');
    const replaced = await upload(server, '/api/v1/bundles/pos/versions/1.0.0/files/app.bin', Buffer.from('two'));
    t.is(replaced.status, 200);
    t.is(replaced.body.digest, sha256Digest(Buffer.from('two')));
    const mismatch = await upload(server, `/api/v1/bundles/pos/versions/1.0.0/files/app.bin?digest=${sha256Digest(Buffer.from('other'))}`, Buffer.from('three'));
    t.is(mismatch.status, 400);
    t.is(mismatch.body.error.code, 'digest_mismatch');
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts/app.bin')).body.digest, sha256Digest(Buffer.from('two')), 'a refused upload changes nothing');
    t.is((await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve')).status, 200);
    const late = await upload(server, '/api/v1/bundles/pos/versions/1.0.0/files/app.bin', Buffer.from('four'));
    t.is(late.status, 409);
    t.is(late.body.error.code, 'version_immutable');
    for (const edit of [
      await server.api('PATCH', '/api/v1/bundles/pos/versions/1.0.0/artifacts/app.bin', { json: { type: 'image' } }),
      await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/artifacts', { json: { artifacts: [{ name: 'b', type: 'file', digest: first.body.digest, size: 3 }] } }),
    ]) {
      t.is(edit.status, 409);
      t.is(edit.body.error.code, 'version_immutable');
    }
    t.is((await upload(server, '/api/v1/bundles/pos/versions/1.0.0/files/..%2Fescape', Buffer.from('x'))).body.error.code, 'invalid_name');
  });
});

test('many artifacts in one request: all of them or none; a failed batch leaves no draft behind', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const a = await putBlob(server, Buffer.from('aaa'));
    const b = await putBlob(server, Buffer.from('bbbb'));
    const url = '/api/v1/bundles/pos/versions/2.0.0/artifacts';
    const missing = sha256Digest(Buffer.from('never uploaded'));
    const partial = await server.api('POST', url, { json: { artifacts: [{ name: 'a', type: 'file', digest: a, size: 3 }, { name: 'c', type: 'file', digest: missing, size: 14 }] } });
    t.is(partial.status, 400);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/2.0.0')).status, 404, 'no draft was left by the refused batch');
    const duplicate = await server.api('POST', url, { json: { artifacts: [{ name: 'a', type: 'file', digest: a, size: 3 }, { name: 'a', type: 'file', digest: b, size: 4 }] } });
    t.is(duplicate.status, 400);
    t.regex(duplicate.body.error.message, /unique/);
    const added = await server.api('POST', url, { json: { artifacts: [{ name: 'a', type: 'file', digest: a, size: 3 }, { name: 'b', type: 'image', digest: b, size: 4 }] } });
    t.is(added.status, 201);
    t.deepEqual(added.body.map((x: { name: string; type: string }) => [x.name, x.type]), [['a', 'file'], ['b', 'image']]);
  });
});

test('listings are paginated the GitLab way and filtered', async (t) => {
  await withServer(t, async (server) => {
    for (let i = 0; i < 5; i++) await server.api('POST', '/api/v1/bundles', { json: { name: `app-${i}` } });
    await server.api('POST', '/api/v1/bundles', { json: { name: 'other' } });
    const page2 = await server.api('GET', '/api/v1/bundles?per_page=2&page=2');
    t.deepEqual(page2.body.map((b: { name: string }) => b.name), ['app-2', 'app-3']);
    const h = (name: string) => page2.headers.get(name);
    t.is(h('x-total'), '6');
    t.is(h('x-total-pages'), '3');
    t.is(h('x-page'), '2');
    t.is(h('x-per-page'), '2');
    t.is(h('x-next-page'), '3');
    t.is(h('x-prev-page'), '1');
    t.regex(h('link')!, /<\/api\/v1\/bundles\?per_page=2&page=3>; rel="next"/, 'relative links (issue 14 item 17)');
    t.regex(h('link')!, /rel="first".*rel="prev".*rel="next".*rel="last"/);
    const last = await server.api('GET', '/api/v1/bundles?per_page=2&page=3');
    t.is(last.headers.get('x-next-page'), '');
    t.is((await server.api('GET', '/api/v1/bundles?per_page=1000')).headers.get('x-per-page'), '100', 'per_page is capped at 100');
    t.deepEqual((await server.api('GET', '/api/v1/bundles?search=oth')).body.map((b: { name: string }) => b.name), ['other']);
    for (const bad of ['page=0', 'page=abc', 'per_page=-1', 'colour=red', 'page=1&page=2']) {
      const refused = await server.api('GET', `/api/v1/bundles?${bad}`);
      t.is(refused.status, 400, bad);
      t.is(refused.body.error.code, 'invalid_request');
    }
    await pushArtifact(server, 'other', '1.0.0', 'x', Buffer.from('x'));
    await server.api('POST', '/api/v1/bundles/other/versions/1.0.0/approve');
    await pushArtifact(server, 'other', '1.1.0', 'x', Buffer.from('y'));
    t.deepEqual((await server.api('GET', '/api/v1/bundles/other/versions?status=draft')).body.map((v: { version: string }) => v.version), ['1.1.0']);
  });
});

test('copying a version makes a draft with the same artifacts; the copy is edited alone', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    await pushArtifact(server, 'pos', '1.0.0', 'app', Buffer.from('app v1'));
    await pushArtifact(server, 'pos', '1.0.0', 'conf', Buffer.from('conf v1'));
    await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve');
    const copy = await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.1', copyFrom: '1.0.0' } });
    t.is(copy.status, 201);
    t.is(copy.body.status, 'draft');
    const list = async (v: string) => (await server.api('GET', `/api/v1/bundles/pos/versions/${v}/artifacts`)).body.map((a: { name: string; digest: string }) => `${a.name}=${a.digest.slice(7, 15)}`);
    t.deepEqual(await list('1.0.1'), await list('1.0.0'));
    await pushArtifact(server, 'pos', '1.0.1', 'app', Buffer.from('app v2'));
    t.not((await list('1.0.1'))[0], (await list('1.0.0'))[0]);
    t.is((await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.2', copyFrom: '9.9.9' } })).status, 404);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.2')).status, 404, 'a failed copy leaves nothing');
    t.is((await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.1', copyFrom: '1.0.0' } })).status, 409);
  });
});

test('the next version follows semver from the versions a bundle has', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const next = async (query: string) => (await server.api('GET', `/api/v1/bundles/pos/versions/next?${query}`)).body;
    t.deepEqual(await next('bump=minor'), { bundle: 'pos', previous: null, version: '0.1.0', bump: 'minor' });
    for (const v of ['1.0.0', '1.2.0-rc.1', '1.1.5']) await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: v } });
    t.is((await next('bump=minor')).version, '1.2.0');
    t.is((await next('bump=prerelease')).version, '1.2.0-rc.2');
    t.is((await next('bump=major')).version, '2.0.0');
    t.is((await next('bump=patch')).version, '1.2.0');
    const backwards = await server.api('GET', '/api/v1/bundles/pos/versions/next?bump=prerelease&preid=beta');
    t.is(backwards.status, 400);
    t.regex(backwards.body.error.message, /not above 1\.2\.0-rc\.1/);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/next?bump=huge')).status, 400);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/next')).status, 400);
    t.is((await server.api('GET', '/api/v1/bundles/nope/versions/next?bump=minor')).status, 404);
  });
});

test('the garbage collector removes only unreferenced blobs past their grace period', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const shared = Buffer.from('shared by two versions');
    const sharedDigest = await pushArtifact(server, 'pos', '1.0.0', 'lib', shared);
    const approved = await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve');
    await pushArtifact(server, 'pos', '1.1.0', 'lib', shared);
    const onlyDraft = await pushArtifact(server, 'pos', '1.1.0', 'extra', Buffer.from('only in the draft'));
    const orphan = await putBlob(server, Buffer.from('uploaded, never referenced'));

    t.deepEqual((await server.collectGarbage()).deleted, [], 'within the grace period nothing goes');
    t.is((await server.api('DELETE', '/api/v1/bundles/pos/versions/1.1.0')).status, 204);
    const report = await server.collectGarbage({ graceMs: 0 });
    t.deepEqual(report.deleted.sort(), [onlyDraft, orphan].sort());
    t.is((await server.api('GET', `/api/v1/blobs/${sharedDigest}`)).status, 200, 'the approved version keeps its blob');
    t.is((await server.api('GET', `/api/v1/blobs/${approved.body.manifestDigest}`)).status, 200, 'manifests are referenced');
    t.is((await server.api('GET', `/api/v1/blobs/${orphan}`)).status, 404);
    // A reference to a collected blob is refused, never recorded.
    const stale = await server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/artifacts/x', { json: { type: 'file', digest: orphan, size: 26 } });
    t.is(stale.status, 409, 'approved');
    await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.2.0' } });
    const refused = await server.api('PUT', '/api/v1/bundles/pos/versions/1.2.0/artifacts/x', { json: { type: 'file', digest: orphan, size: 26 } });
    t.is(refused.status, 400);
    t.regex(refused.body.error.message, /upload it first/);
  });
});

test('the garbage collector is safe against uploads in flight and references made while it runs', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.0' } });
    // Uploads and references race the collector (with no grace period at all): every artifact
    // that was added must still have its blob afterwards.
    const blobs = Array.from({ length: 12 }, () => randomBytes(200_000));
    const work = blobs.map(async (bytes, i) => {
      const answer = await upload(server, `/api/v1/bundles/pos/versions/1.0.0/files/f${i}`, bytes);
      return answer.status;
    });
    const sweeps = Array.from({ length: 6 }, () => server.collectGarbage({ graceMs: 0 }));
    const statuses = await Promise.all(work);
    await Promise.all(sweeps);
    await server.collectGarbage({ graceMs: 0 });
    const artifacts = (await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts?per_page=100')).body as { name: string; digest: string }[];
    t.deepEqual(statuses, blobs.map(() => 201), 'a sweep waits for uploads in flight');
    t.is(artifacts.length, blobs.length);
    for (const a of artifacts) t.is((await server.api('HEAD', `/api/v1/blobs/${a.digest}`)).status, 200, `${a.name} keeps its blob`);
    t.deepEqual(await fs.readdir(path.join(server.dataDir, 'blobs', 'uploads')), [], 'no temp files left');
  });
});

test('the bundle listing pages over the bundles one may read: X-Total counts those only', async (t) => {
  await withServer(t, async (server) => {
    for (const name of ['a1', 'a2', 'b1', 'b2', 'b3']) t.is((await server.api('POST', '/api/v1/bundles', { json: { name } })).status, 201);
    t.is((await server.api('POST', '/api/v1/users', { json: { name: 'gail' } })).status, 201);
    for (const bundle of ['a2', 'b3']) t.is((await server.api('POST', `/api/v1/bundles/${bundle}/members`, { json: { user: 'gail', role: 'guest' } })).status, 201);
    const token = (await server.api('POST', '/api/v1/tokens', { json: { name: 'gail', scopes: ['read'], user: 'gail' } })).body.token as string;
    const first = await server.api('GET', '/api/v1/bundles?per_page=1', { token });
    t.is(first.status, 200);
    t.deepEqual(first.body.map((b: { name: string }) => b.name), ['a2']);
    t.is(first.headers.get('x-total'), '2');
    t.is(first.headers.get('x-total-pages'), '2');
    const second = await server.api('GET', '/api/v1/bundles?per_page=1&page=2', { token });
    t.deepEqual(second.body.map((b: { name: string }) => b.name), ['b3']);
    t.is(second.headers.get('x-next-page'), '');
    const searched = await server.api('GET', '/api/v1/bundles?search=b', { token });
    t.deepEqual(searched.body.map((b: { name: string }) => b.name), ['b3']);
    t.is(searched.headers.get('x-total'), '1');
    t.is((await server.api('GET', '/api/v1/bundles')).headers.get('x-total'), '5', 'an admin sees every bundle');
  });
});
