import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { pushArtifact, sha256Digest, withServer } from '../helpers/server.ts';

test('every route but TUF/blob reads by devices requires a token; a bad token is 401 with the error shape', async (t) => {
  await withServer(t, async (server) => {
    for (const [method, url] of [['GET', '/api/v1/bundles'], ['POST', '/api/v1/bundles'], ['GET', '/api/v1/devices'], ['GET', '/tuf/timestamp.json'], ['GET', `/api/v1/blobs/sha256:${'0'.repeat(64)}`]] as const) {
      const none = await server.api(method, url, { token: null });
      t.is(none.status, 401, `${method} ${url} without a token`);
      t.is(none.body.error.code, 'unauthenticated');
      t.is(none.headers.get('www-authenticate'), 'Bearer realm="convoy"');
      const wrong = await server.api(method, url, { token: 'cvy_not-a-real-token-at-all' });
      t.is(wrong.status, 401, `${method} ${url} with a wrong token`);
    }
  });
});

test('bundle and version names are validated: bad semver, traversal, control characters, duplicates', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const duplicate = await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    t.is(duplicate.status, 409);
    t.is(duplicate.body.error.code, 'already_exists');
    for (const name of ['../etc', 'Pos', 'a/b', 'pos\n', '', 'x'.repeat(65), '.hidden']) {
      const bad = await server.api('POST', '/api/v1/bundles', { json: { name } });
      t.is(bad.status, 400, JSON.stringify(name));
      t.is(bad.body.error.code, 'invalid_request');
      t.regex(bad.body.error.message, /name/);
    }
    for (const version of ['1.0', 'v1.0.0', '01.0.0', '1.0.0-', 'latest']) {
      const bad = await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version } });
      t.is(bad.status, 400, version);
      t.regex(bad.body.error.message, /version: must be a semantic version/);
    }
    t.is((await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.0-rc.1' } })).status, 201);
    t.is((await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '1.0.0-rc.1' } })).status, 409);
    const badUrl = await server.api('GET', '/api/v1/bundles/pos/versions/not-semver');
    t.is(badUrl.status, 400);
    t.is(badUrl.body.error.code, 'invalid_version');
    const traversal = await server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0-rc.1/artifacts/..%2F..%2Fetc', { json: { type: 'file', digest: sha256Digest(Buffer.from('x')), size: 1 } });
    t.is(traversal.status, 400);
    t.is(traversal.body.error.code, 'invalid_name');
    t.is((await server.api('GET', '/api/v1/bundles/nope')).status, 404);
  });
});

test('request bodies: unknown fields, wrong content type, bad JSON and oversized bodies are refused', async (t) => {
  await withServer(t, async (server) => {
    const unknown = await server.api('POST', '/api/v1/bundles', { json: { name: 'pos', owner: 'me' } });
    t.is(unknown.status, 400);
    t.regex(unknown.body.error.message, /owner/);
    const text = await server.api('POST', '/api/v1/bundles', { body: 'name=pos', headers: { 'content-type': 'text/plain' } });
    t.is(text.status, 415);
    t.is(text.body.error.code, 'unsupported_media_type');
    const broken = await server.api('POST', '/api/v1/bundles', { json: '{"name": ' });
    t.is(broken.status, 400);
    t.regex(broken.body.error.message, /not JSON/);
    const huge = await server.api('POST', '/api/v1/bundles', { json: { name: 'pos', description: 'x'.repeat(2 * 1024 * 1024) } });
    t.is(huge.status, 413);
    t.is(huge.body.error.code, 'payload_too_large');
    t.deepEqual((await server.api('GET', '/api/v1/bundles')).body, []);
  });
});

test('a blob whose bytes do not match its digest is refused and nothing is stored', async (t) => {
  await withServer(t, async (server) => {
    const bytes = randomBytes(50_000);
    const claimed = sha256Digest(Buffer.from('something else'));
    const refused = await server.api('PUT', `/api/v1/blobs/${claimed}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    t.is(refused.status, 400);
    t.is(refused.body.error.code, 'digest_mismatch');
    t.is((await server.api('GET', `/api/v1/blobs/${claimed}`)).status, 404);
    t.is((await server.api('GET', `/api/v1/blobs/${sha256Digest(bytes)}`)).status, 404);
    const leftovers = await fs.readdir(path.join(server.dataDir, 'blobs', 'uploads'));
    t.deepEqual(leftovers, [], 'no partial upload left behind');
    const badDigest = await server.api('PUT', '/api/v1/blobs/sha256:XYZ', { body: bytes });
    t.is(badDigest.status, 400);
    t.is(badDigest.body.error.code, 'invalid_digest');
  });
});

test('blobs are served with ranges, If-Range and a strong ETag', async (t) => {
  await withServer(t, async (server) => {
    const bytes = randomBytes(10_000);
    const digest = sha256Digest(bytes);
    t.is((await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes })).status, 201);
    t.is((await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes })).status, 200, 'the same bytes again are accepted');
    const whole = await server.api('GET', `/api/v1/blobs/${digest}`);
    t.is(whole.status, 200);
    t.true(whole.raw.equals(bytes));
    t.is(whole.headers.get('etag'), `"${digest}"`);
    const part = await server.api('GET', `/api/v1/blobs/${digest}`, { headers: { range: 'bytes=9000-' } });
    t.is(part.status, 206);
    t.is(part.headers.get('content-range'), 'bytes 9000-9999/10000');
    t.true(part.raw.equals(bytes.subarray(9000)));
    const suffix = await server.api('GET', `/api/v1/blobs/${digest}`, { headers: { range: 'bytes=-10' } });
    t.true(suffix.raw.equals(bytes.subarray(9990)));
    const stale = await server.api('GET', `/api/v1/blobs/${digest}`, { headers: { range: 'bytes=9000-', 'if-range': '"sha256:other"' } });
    t.is(stale.status, 200, 'a stale If-Range gets the whole blob');
    t.is(stale.raw.length, 10_000);
    const beyond = await server.api('GET', `/api/v1/blobs/${digest}`, { headers: { range: 'bytes=20000-' } });
    t.is(beyond.status, 416);
    t.is(beyond.headers.get('content-range'), 'bytes */10000');
  });
});

test('an approved version is frozen: every edit answers 409 version_immutable', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const empty = await server.api('POST', '/api/v1/bundles/pos/versions', { json: { version: '0.9.0' } });
    t.is(empty.status, 201);
    const refusedEmpty = await server.api('POST', '/api/v1/bundles/pos/versions/0.9.0/approve');
    t.is(refusedEmpty.status, 409);
    t.is(refusedEmpty.body.error.code, 'version_empty');

    const digest = await pushArtifact(server, 'pos', '1.0.0', 'app', Buffer.from('v1'));
    const approved = await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve');
    t.is(approved.status, 200);
    t.is(approved.body.status, 'approved');
    t.regex(approved.body.manifestDigest, /^sha256:[0-9a-f]{64}$/);

    const other = Buffer.from('v2');
    await server.api('PUT', `/api/v1/blobs/${sha256Digest(other)}`, { body: other });
    const edits = [
      await server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/artifacts/app', { json: { type: 'file', digest: sha256Digest(other), size: 2 } }),
      await server.api('PUT', '/api/v1/bundles/pos/versions/1.0.0/artifacts/new', { json: { type: 'file', digest, size: 2 } }),
      await server.api('DELETE', '/api/v1/bundles/pos/versions/1.0.0/artifacts/app'),
      await server.api('DELETE', '/api/v1/bundles/pos/versions/1.0.0'),
      await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve'),
      await server.api('DELETE', '/api/v1/bundles/pos'),
    ];
    for (const edit of edits) {
      t.is(edit.status, 409);
      t.is(edit.body.error.code, 'version_immutable');
    }
    const artifacts = await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts');
    t.deepEqual(artifacts.body.map((a: { name: string; digest: string }) => [a.name, a.digest]), [['app', digest]]);

    const missingBlob = await server.api('PUT', '/api/v1/bundles/pos/versions/0.9.0/artifacts/x', { json: { type: 'file', digest: sha256Digest(Buffer.from('never uploaded')), size: 14 } });
    t.is(missingBlob.status, 400);
    t.regex(missingBlob.body.error.message, /upload it first/);
    const wrongSize = await server.api('PUT', '/api/v1/bundles/pos/versions/0.9.0/artifacts/x', { json: { type: 'file', digest, size: 3 } });
    t.is(wrongSize.body.error.code, 'size_mismatch');
    const notApproved = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos', version: '0.9.0', group: 'shop' } });
    t.is(notApproved.status, 409);
    t.is(notApproved.body.error.code, 'version_not_approved');
  });
});

test('a draft can be edited and deleted; deleting it keeps blobs another version references', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const shared = Buffer.from('shared bytes');
    await pushArtifact(server, 'pos', '1.0.0', 'lib', shared);
    await server.api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve');
    await pushArtifact(server, 'pos', '1.1.0', 'lib', shared);
    await pushArtifact(server, 'pos', '1.1.0', 'extra', Buffer.from('extra'));
    t.is((await server.api('DELETE', '/api/v1/bundles/pos/versions/1.1.0/artifacts/extra')).status, 204);
    t.is((await server.api('DELETE', '/api/v1/bundles/pos/versions/1.1.0/artifacts/extra')).status, 404);
    t.is((await server.api('DELETE', '/api/v1/bundles/pos/versions/1.1.0')).status, 204);
    t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.1.0')).status, 404);
    const blob = await server.api('GET', `/api/v1/blobs/${sha256Digest(shared)}`);
    t.is(blob.status, 200);
    t.true(blob.raw.equals(shared));
  });
});
