import { randomBytes } from 'node:crypto';
import test from 'ava';
import { adminToken, withServer, type TestServer } from '../helpers/server.ts';
import { makeImage, ociIndexType, ociManifestType, sha256 } from './layout.ts';

/*
 * The distribution API on the wire, request by request, as a registry client speaks it: the
 * parts skopeo does not exercise (chunks, wrong offsets, mounts, indexes, tags, referrers,
 * errors).
 */

const basic = `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`;

async function v2(server: TestServer, method: string, urlPath: string, options: { body?: Buffer | string; headers?: Record<string, string>; auth?: string | null } = {}) {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? basic : options.auth;
  if (auth !== null) headers.authorization = auth;
  const response = await fetch(`${server.url}${urlPath}`, { method, headers, body: options.body ?? null, redirect: 'manual' });
  const raw = Buffer.from(await response.arrayBuffer());
  let body: any;
  if ((response.headers.get('content-type') ?? '').includes('json') && raw.length > 0) body = JSON.parse(raw.toString('utf8'));
  return { status: response.status, headers: response.headers, body, raw };
}

async function uploadBlob(server: TestServer, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const put = await v2(server, 'POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`monolithic upload answered ${put.status}: ${put.raw}`);
  return digest;
}

async function pushImage(server: TestServer, repository: string, reference: string, sizes = [1000, 2000]) {
  const image = makeImage(sizes);
  for (const blob of [image.config, ...image.layers]) await uploadBlob(server, repository, blob);
  const put = await v2(server, 'PUT', `/v2/${repository}/manifests/${reference}`, { body: image.manifest, headers: { 'content-type': ociManifestType } });
  return { image, put, digest: sha256(image.manifest) };
}

function errorCode(response: { body: any }): string | undefined {
  return response.body?.errors?.[0]?.code;
}

async function withBundle(t: import('ava').ExecutionContext, run: (server: TestServer) => Promise<void>) {
  await withServer(t, async (server) => {
    if ((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status !== 201) throw new Error('bundle create failed');
    await run(server);
  });
}

test('GET /v2/ challenges for HTTP Basic and accepts the access token as the password', async (t) => {
  await withBundle(t, async (server) => {
    const anonymous = await v2(server, 'GET', '/v2/', { auth: null });
    t.is(anonymous.status, 401);
    t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="convoy"/);
    t.is(errorCode(anonymous), 'UNAUTHORIZED');
    t.deepEqual(Object.keys(anonymous.body.errors[0]).sort(), ['code', 'detail', 'message']);

    const ok = await v2(server, 'GET', '/v2/');
    t.is(ok.status, 200);
    t.is(ok.headers.get('docker-distribution-api-version'), 'registry/2.0');

    const wrongUser = await v2(server, 'GET', '/v2/', { auth: `Basic ${Buffer.from(`mallory:${adminToken}`).toString('base64')}` });
    t.is(wrongUser.status, 401);
    const wrongToken = await v2(server, 'GET', '/v2/shop/app/tags/list', { auth: `Basic ${Buffer.from('admin:not-the-token-0123456789').toString('base64')}` });
    t.is(wrongToken.status, 401);
    t.is(errorCode(wrongToken), 'UNAUTHORIZED');

    // A device token may install, not use the registry.
    const device = await server.api('POST', '/api/v1/devices', { json: { id: 'till-1', group: 'shop' } });
    const asDevice = await v2(server, 'GET', '/v2/shop/app/tags/list', { auth: `Bearer ${device.body.token}` });
    t.is(asDevice.status, 403);
    t.is(errorCode(asDevice), 'DENIED');
  });
});

test('a chunked upload: PATCH with Content-Range, 416 on a wrong offset, PUT ?digest= verifies', async (t) => {
  await withBundle(t, async (server) => {
    const bytes = randomBytes(300_000);
    const digest = sha256(bytes);
    const started = await v2(server, 'POST', '/v2/shop/app/blobs/uploads/');
    t.is(started.status, 202);
    const location = started.headers.get('location')!;
    t.regex(location, /^\/v2\/shop\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    t.is(started.headers.get('range'), '0-0');

    const first = await v2(server, 'PATCH', location, { body: bytes.subarray(0, 100_000), headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99999' } });
    t.is(first.status, 202);
    t.is(first.headers.get('range'), '0-99999');

    const wrong = await v2(server, 'PATCH', location, { body: bytes.subarray(50_000, 150_000), headers: { 'content-type': 'application/octet-stream', 'content-range': '50000-149999' } });
    t.is(wrong.status, 416);
    t.is(errorCode(wrong), 'RANGE_INVALID');

    const status = await v2(server, 'GET', location);
    t.is(status.status, 204);
    t.is(status.headers.get('range'), '0-99999');

    const second = await v2(server, 'PATCH', location, { body: bytes.subarray(100_000, 200_000), headers: { 'content-type': 'application/octet-stream', 'content-range': '100000-199999' } });
    t.is(second.headers.get('range'), '0-199999');

    const done = await v2(server, 'PUT', `${location}?digest=${digest}`, { body: bytes.subarray(200_000), headers: { 'content-type': 'application/octet-stream' } });
    t.is(done.status, 201);
    t.is(done.headers.get('docker-content-digest'), digest);
    t.is(done.headers.get('location'), `/v2/shop/app/blobs/${digest}`);
    t.is((await v2(server, 'GET', location)).status, 404, 'the session is gone once finished');

    const head = await v2(server, 'HEAD', `/v2/shop/app/blobs/${digest}`);
    t.is(head.status, 200);
    t.is(head.headers.get('content-length'), String(bytes.length));
    t.is(head.headers.get('docker-content-digest'), digest);
    const whole = await v2(server, 'GET', `/v2/shop/app/blobs/${digest}`);
    t.true(whole.raw.equals(bytes));
    const part = await v2(server, 'GET', `/v2/shop/app/blobs/${digest}`, { headers: { range: 'bytes=10-19' } });
    t.is(part.status, 206);
    t.true(part.raw.equals(bytes.subarray(10, 20)));
    t.is((await v2(server, 'GET', `/v2/shop/app/blobs/${digest}`, { headers: { range: 'bytes=400000-' } })).status, 416);

    // A one-request PATCH (no Content-Range) as skopeo sends, then a wrong digest: refused, nothing stored.
    const other = await v2(server, 'POST', '/v2/shop/app/blobs/uploads/');
    const otherLocation = other.headers.get('location')!;
    t.is((await v2(server, 'PATCH', otherLocation, { body: Buffer.from('hello'), headers: { 'content-type': 'application/octet-stream' } })).status, 202);
    const lie = sha256(Buffer.from('something else'));
    const mismatch = await v2(server, 'PUT', `${otherLocation}?digest=${lie}`);
    t.is(mismatch.status, 400);
    t.is(errorCode(mismatch), 'DIGEST_INVALID');
    t.is(errorCode(await v2(server, 'HEAD', `/v2/shop/app/blobs/${lie}`)), undefined, 'HEAD carries no body');
    t.is((await v2(server, 'HEAD', `/v2/shop/app/blobs/${lie}`)).status, 404);
    t.is(errorCode(await v2(server, 'GET', `/v2/shop/app/blobs/${lie}`)), 'BLOB_UNKNOWN');

    // Cancelled sessions are gone; unknown ones are BLOB_UPLOAD_UNKNOWN.
    const cancelled = await v2(server, 'POST', '/v2/shop/app/blobs/uploads/');
    t.is((await v2(server, 'DELETE', cancelled.headers.get('location')!)).status, 204);
    t.is(errorCode(await v2(server, 'PATCH', cancelled.headers.get('location')!, { body: 'x' })), 'BLOB_UPLOAD_UNKNOWN');
    t.is(errorCode(await v2(server, 'GET', '/v2/shop/app/blobs/uploads/not-a-session')), 'BLOB_UPLOAD_UNKNOWN');
    t.is(errorCode(await v2(server, 'GET', '/v2/shop/app/blobs/sha256:abc')), 'DIGEST_INVALID');
  });
});

test('cross-repository mount links a blob without sending it; a blob is invisible to other repositories until then', async (t) => {
  await withBundle(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'depot' } })).status, 201);
    const bytes = randomBytes(10_000);
    const digest = await uploadBlob(server, 'shop/base', bytes);
    t.is((await v2(server, 'HEAD', `/v2/depot/app/blobs/${digest}`)).status, 404, 'not in depot/app yet');

    const mounted = await v2(server, 'POST', `/v2/depot/app/blobs/uploads/?mount=${digest}&from=shop/base`);
    t.is(mounted.status, 201);
    t.is(mounted.headers.get('location'), `/v2/depot/app/blobs/${digest}`);
    t.is(mounted.headers.get('docker-content-digest'), digest);
    t.true((await v2(server, 'GET', `/v2/depot/app/blobs/${digest}`)).raw.equals(bytes));

    // Mounting what the source does not hold starts an ordinary upload instead (spec: 202).
    const missing = sha256(randomBytes(10));
    const fallback = await v2(server, 'POST', `/v2/depot/app/blobs/uploads/?mount=${missing}&from=shop/base`);
    t.is(fallback.status, 202);
    t.regex(fallback.headers.get('location') ?? '', /\/blobs\/uploads\//);
  });
});

test('manifests by tag and digest: the tag is the version, refs must exist, media types are kept', async (t) => {
  await withBundle(t, async (server) => {
    const { put, digest, image } = await pushImage(server, 'shop/app', '1.0.0');
    t.is(put.status, 201);
    t.is(put.headers.get('docker-content-digest'), digest);
    t.is(put.headers.get('location'), `/v2/shop/app/manifests/${digest}`);

    for (const reference of ['1.0.0', digest]) {
      const got = await v2(server, 'GET', `/v2/shop/app/manifests/${reference}`, { headers: { accept: ociManifestType } });
      t.is(got.status, 200);
      t.is(got.headers.get('content-type'), ociManifestType);
      t.is(got.headers.get('docker-content-digest'), digest);
      t.true(got.raw.equals(image.manifest));
      const head = await v2(server, 'HEAD', `/v2/shop/app/manifests/${reference}`);
      t.is(head.status, 200);
      t.is(head.headers.get('content-length'), String(image.manifest.length));
      t.is(head.headers.get('docker-content-digest'), digest);
    }
    t.like((await server.api('GET', '/api/v1/bundles/shop/versions/1.0.0/artifacts/app')).body, { type: 'image', digest });

    // A manifest naming a blob never pushed to this repository.
    const orphan = makeImage([10]);
    const unknown = await v2(server, 'PUT', '/v2/shop/app/manifests/1.0.1', { body: orphan.manifest, headers: { 'content-type': ociManifestType } });
    t.is(unknown.status, 404);
    t.is(errorCode(unknown), 'MANIFEST_BLOB_UNKNOWN');
    t.is((await server.api('GET', '/api/v1/bundles/shop/versions/1.0.1')).status, 404, 'no draft was created');

    const notJson = await v2(server, 'PUT', '/v2/shop/app/manifests/1.0.1', { body: 'nope', headers: { 'content-type': ociManifestType } });
    t.is(errorCode(notJson), 'MANIFEST_INVALID');
    const schema1 = await v2(server, 'PUT', '/v2/shop/app/manifests/1.0.1', { body: JSON.stringify({ schemaVersion: 1 }), headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' } });
    t.is(errorCode(schema1), 'MANIFEST_INVALID');
    const latest = await v2(server, 'PUT', '/v2/shop/app/manifests/latest', { body: image.manifest, headers: { 'content-type': ociManifestType } });
    t.is(latest.status, 400);
    t.is(errorCode(latest), 'TAG_INVALID');
    t.regex(latest.body.errors[0].message, /semver/);
    const wrongDigest = await v2(server, 'PUT', `/v2/shop/app/manifests/${sha256(Buffer.from('x'))}`, { body: image.manifest, headers: { 'content-type': ociManifestType } });
    t.is(errorCode(wrongDigest), 'DIGEST_INVALID');

    t.is(errorCode(await v2(server, 'GET', '/v2/shop/app/manifests/9.9.9')), 'MANIFEST_UNKNOWN');
    t.is(errorCode(await v2(server, 'GET', '/v2/nobundle/app/manifests/1.0.0')), 'NAME_UNKNOWN');
    t.is(errorCode(await v2(server, 'GET', '/v2/a/b/c/manifests/1.0.0')), 'NAME_INVALID');
    t.is(errorCode(await v2(server, 'GET', '/v2/Shop/app/manifests/1.0.0')), 'NAME_INVALID');
    t.is(errorCode(await v2(server, 'DELETE', `/v2/shop/app/manifests/${digest}`)), 'UNSUPPORTED');

    // Approved: the push is refused with 409 and the OCI error shape, naming the reason.
    t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
    const again = await pushImage(server, 'shop/app', '1.0.0', [5]);
    t.is(again.put.status, 409);
    t.is(errorCode(again.put), 'DENIED');
    t.is(again.put.body.errors[0].detail.convoyCode, 'version_immutable');
    t.regex(again.put.body.errors[0].message, /shop@1\.0\.0 is approved and can no longer change/);
  });
});

test('an image index: children pushed by digest, the index by tag becomes the image', async (t) => {
  await withBundle(t, async (server) => {
    const children = [];
    for (const arch of ['amd64', 'arm64']) {
      const image = makeImage([100 + arch.length]);
      for (const blob of [image.config, ...image.layers]) await uploadBlob(server, 'shop/multi', blob);
      const digest = sha256(image.manifest);
      const put = await v2(server, 'PUT', `/v2/shop/multi/manifests/${digest}`, { body: image.manifest, headers: { 'content-type': ociManifestType } });
      t.is(put.status, 201);
      children.push({ mediaType: ociManifestType, digest, size: image.manifest.length, platform: { architecture: arch, os: 'linux' } });
    }
    t.is((await server.api('GET', '/api/v1/bundles/shop/versions')).body.length, 0, 'pushes by digest do not touch any version');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociIndexType, manifests: children }));
    const put = await v2(server, 'PUT', '/v2/shop/multi/manifests/3.0.0-rc.1', { body: index, headers: { 'content-type': ociIndexType } });
    t.is(put.status, 201);
    const got = await v2(server, 'GET', '/v2/shop/multi/manifests/3.0.0-rc.1');
    t.is(got.headers.get('content-type'), ociIndexType);
    t.true(got.raw.equals(index));
    t.like((await server.api('GET', '/api/v1/bundles/shop/versions/3.0.0-rc.1/artifacts/multi')).body, { type: 'image', digest: sha256(index) });

    const missingChild = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociIndexType, manifests: [{ ...children[0], digest: sha256(Buffer.from('nope')) }] }));
    t.is(errorCode(await v2(server, 'PUT', '/v2/shop/multi/manifests/3.0.1', { body: missingChild, headers: { 'content-type': ociIndexType } })), 'MANIFEST_BLOB_UNKNOWN');
  });
});

test('tag listing pages with n and last and a Link header', async (t) => {
  await withBundle(t, async (server) => {
    const versions = ['1.0.0', '1.1.0', '2.0.0', '1.0.1'];
    for (const version of versions) t.is((await pushImage(server, 'shop/app', version, [10])).put.status, 201);
    // Another image in one of the versions is not a tag of shop/app.
    t.is((await pushImage(server, 'shop/other', '9.0.0', [10])).put.status, 201);

    const all = await v2(server, 'GET', '/v2/shop/app/tags/list');
    t.deepEqual(all.body, { name: 'shop/app', tags: ['1.0.0', '1.0.1', '1.1.0', '2.0.0'] });
    t.is(all.headers.get('link'), null);

    const first = await v2(server, 'GET', '/v2/shop/app/tags/list?n=2');
    t.deepEqual(first.body.tags, ['1.0.0', '1.0.1']);
    t.is(first.headers.get('link'), '</v2/shop/app/tags/list?n=2&last=1.0.1>; rel="next"');
    const second = await v2(server, 'GET', '/v2/shop/app/tags/list?n=2&last=1.0.1');
    t.deepEqual(second.body.tags, ['1.1.0', '2.0.0']);
    t.is(second.headers.get('link'), null);
    t.deepEqual((await v2(server, 'GET', '/v2/shop/app/tags/list?n=0')).body.tags, []);
    t.deepEqual((await v2(server, 'GET', '/v2/shop/none/tags/list')).body, { name: 'shop/none', tags: [] });
  });
});

test('referrers: an empty index when none, then the manifests whose subject is the digest', async (t) => {
  await withBundle(t, async (server) => {
    const { digest, image } = await pushImage(server, 'shop/app', '1.0.0');
    const none = await v2(server, 'GET', `/v2/shop/app/referrers/${digest}`);
    t.is(none.status, 200);
    t.is(none.headers.get('content-type'), ociIndexType);
    t.deepEqual(none.body, { schemaVersion: 2, mediaType: ociIndexType, manifests: [] });

    // A signature-like artifact: empty config, one layer, subject = the image.
    const emptyConfig = Buffer.from('{}');
    const payload = Buffer.from('signature bytes');
    await uploadBlob(server, 'shop/app', emptyConfig);
    await uploadBlob(server, 'shop/app', payload);
    const artifactType = 'application/vnd.example.signature.v1';
    const referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: ociManifestType,
        artifactType,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(emptyConfig), size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: sha256(payload), size: payload.length }],
        subject: { mediaType: ociManifestType, digest, size: image.manifest.length },
        annotations: { 'org.example.signer': 'ci' },
      }),
    );
    const put = await v2(server, 'PUT', `/v2/shop/app/manifests/${sha256(referrer)}`, { body: referrer, headers: { 'content-type': ociManifestType } });
    t.is(put.status, 201);
    t.is(put.headers.get('oci-subject'), digest);

    const listed = await v2(server, 'GET', `/v2/shop/app/referrers/${digest}`);
    t.deepEqual(listed.body.manifests, [{ mediaType: ociManifestType, digest: sha256(referrer), size: referrer.length, artifactType, annotations: { 'org.example.signer': 'ci' } }]);
    const filtered = await v2(server, 'GET', `/v2/shop/app/referrers/${digest}?artifactType=application/vnd.other`);
    t.is(filtered.headers.get('oci-filters-applied'), 'artifactType');
    t.deepEqual(filtered.body.manifests, []);
    t.is(errorCode(await v2(server, 'GET', '/v2/shop/app/referrers/latest')), 'DIGEST_INVALID');
  });
});

test('a pull the client abandons half-way does not disturb the next one', async (t) => {
  await withBundle(t, async (server) => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = await uploadBlob(server, 'shop/app', bytes);
    const controller = new AbortController();
    const response = await fetch(`${server.url}/v2/shop/app/blobs/${digest}`, { headers: { authorization: basic }, signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    const again = await v2(server, 'GET', `/v2/shop/app/blobs/${digest}`);
    t.is(again.status, 200);
    t.true(again.raw.equals(bytes));
  });
});

test('the bundle role ladder decides who may pull and push images', async (t) => {
  await withBundle(t, async (server) => {
    const { digest } = await pushImage(server, 'shop/pos', '1.0.0');
    const tokens: Record<string, string> = {};
    for (const [user, role] of [['rita', 'reporter'], ['dev', 'developer']] as const) {
      await server.api('POST', '/api/v1/users', { json: { name: user } });
      t.is((await server.api('POST', '/api/v1/bundles/shop/members', { json: { user, role } })).status, 201);
      tokens[user] = (await server.api('POST', '/api/v1/tokens', { json: { name: `${user} ci`, scopes: ['read', 'write'], user } })).body.token;
    }
    await server.api('POST', '/api/v1/users', { json: { name: 'stranger' } });
    tokens.stranger = (await server.api('POST', '/api/v1/tokens', { json: { name: 'stranger', scopes: ['read', 'write'], user: 'stranger' } })).body.token;
    const as = (user: string) => `Basic ${Buffer.from(`${user}:${tokens[user]}`).toString('base64')}`;

    const reporterPull = await v2(server, 'GET', `/v2/shop/pos/manifests/${digest}`, { auth: as('rita'), headers: { accept: ociManifestType } });
    t.is(reporterPull.status, 200, 'a reporter may pull');
    const reporterPush = await v2(server, 'POST', '/v2/shop/pos/blobs/uploads/', { auth: as('rita') });
    t.is(reporterPush.status, 403, 'a reporter may not push');
    t.is(errorCode(reporterPush), 'DENIED');
    const developerPush = await v2(server, 'POST', '/v2/shop/pos/blobs/uploads/', { auth: as('dev') });
    t.is(developerPush.status, 202, 'a developer may start an upload');
    const strangerPull = await v2(server, 'GET', `/v2/shop/pos/manifests/${digest}`, { auth: as('stranger'), headers: { accept: ociManifestType } });
    t.true([403, 404].includes(strangerPull.status), 'a non-member cannot pull');
    const impostor = await v2(server, 'GET', '/v2/', { auth: `Basic ${Buffer.from(`admin:${tokens.rita}`).toString('base64')}` });
    t.is(impostor.status, 401, "a token does not sign in under another user's name");
  });
});

test('the blob collector keeps what a tagged image needs and removes a blob no manifest names', async (t) => {
  await withBundle(t, async (server) => {
    const { image, put, digest } = await pushImage(server, 'shop/app', '1.0.0');
    t.is(put.status, 201);
    const stray = await uploadBlob(server, 'shop/app', randomBytes(500));
    const report = await server.collectGarbage({ graceMs: 0 });
    t.true(report.deleted.includes(stray), 'a blob no manifest names is collected');
    t.false(report.deleted.includes(digest), 'the manifest a version names is kept');
    const manifest = await v2(server, 'GET', `/v2/shop/app/manifests/1.0.0`, { headers: { accept: ociManifestType } });
    t.is(manifest.status, 200);
    t.deepEqual(manifest.raw, image.manifest);
    for (const blob of [image.config, ...image.layers]) {
      const pulled = await v2(server, 'GET', `/v2/shop/app/blobs/${sha256(blob)}`);
      t.is(pulled.status, 200, 'config and layers stay pullable');
      t.deepEqual(pulled.raw, blob);
    }
  });
});
