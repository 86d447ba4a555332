import test from 'ava';
import { adminToken, withServer, type TestServer } from '../helpers/server.ts';
import { makeImage, ociManifestType, sha256 } from './layout.ts';

/*
 * Issue #14 item 11: registry data goes with its bundle (a new bundle of the same name starts
 * empty and serves nothing of the old one to its new members), and an upload session belongs to
 * the user who started it, not to everyone who may push to the repository.
 */
const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

async function v2(server: TestServer, method: string, urlPath: string, auth: string, options: { body?: Buffer; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${server.url}${urlPath}`, { method, headers: { authorization: auth, ...options.headers }, body: options.body ?? null, redirect: 'manual' });
  const raw = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body: raw.length && (response.headers.get('content-type') ?? '').includes('json') ? JSON.parse(raw.toString('utf8')) : undefined };
}

async function member(server: TestServer, bundle: string, user: string, role: string): Promise<string> {
  await server.api('POST', '/api/v1/users', { json: { name: user } });
  const members = await server.api('POST', `/api/v1/bundles/${bundle}/members`, { json: { user, role } });
  if (members.status !== 201 && members.status !== 200 && members.status !== 409) throw new Error(`member add answered ${members.status}: ${members.raw}`);
  const created = await server.api('POST', '/api/v1/tokens', { json: { name: `${user} token`, scopes: ['read', 'write'], user } });
  return created.body.token as string;
}

test('deleting a bundle deletes its registry data: a new bundle of the same name serves none of it', async (t) => {
  await withServer(t, async (server) => {
    const admin = basic('admin', adminToken);
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const image = makeImage([1500]);
    for (const blob of [image.config, ...image.layers]) {
      t.is((await v2(server, 'POST', `/v2/pos/app/blobs/uploads/?digest=${sha256(blob)}`, admin, { body: blob, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
    }
    const digest = sha256(image.manifest);
    t.is((await v2(server, 'PUT', '/v2/pos/app/manifests/1.0.0', admin, { body: image.manifest, headers: { 'content-type': ociManifestType } })).status, 201);
    t.is((await v2(server, 'HEAD', `/v2/pos/app/manifests/${digest}`, admin)).status, 200);

    t.is((await server.api('DELETE', '/api/v1/bundles/pos')).status, 204);
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const eve = basic('eve', await member(server, 'pos', 'eve', 'reporter'));
    t.is((await v2(server, 'GET', `/v2/pos/app/manifests/${digest}`, eve)).status, 404, 'the old manifest is gone');
    t.is((await v2(server, 'GET', `/v2/pos/app/manifests/${digest}`, admin)).status, 404, 'for everyone');
    for (const blob of [image.config, ...image.layers]) t.is((await v2(server, 'GET', `/v2/pos/app/blobs/${sha256(blob)}`, eve)).status, 404, 'and its blobs');
    // Pushing the same image again works as for any new bundle.
    for (const blob of [image.config, ...image.layers]) {
      t.is((await v2(server, 'POST', `/v2/pos/app/blobs/uploads/?digest=${sha256(blob)}`, admin, { body: blob, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
    }
    t.is((await v2(server, 'PUT', '/v2/pos/app/manifests/1.0.0', admin, { body: image.manifest, headers: { 'content-type': ociManifestType } })).status, 201);
    t.is((await v2(server, 'GET', `/v2/pos/app/manifests/${digest}`, eve)).status, 200);
  });
});

test('an upload session belongs to the user who started it', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const alice = basic('alice', await member(server, 'pos', 'alice', 'developer'));
    const mallory = basic('mallory', await member(server, 'pos', 'mallory', 'developer'));
    const started = await v2(server, 'POST', '/v2/pos/app/blobs/uploads/', alice);
    t.is(started.status, 202);
    const location = started.headers.get('location')!;
    const bytes = Buffer.from('alice layer bytes');
    for (const method of ['GET', 'PATCH', 'DELETE']) {
      const foreign = await v2(server, method, location, mallory, method === 'PATCH' ? { body: Buffer.from('evil'), headers: { 'content-type': 'application/octet-stream' } } : {});
      t.is(foreign.status, 404, `${method} by another user`);
      t.is(foreign.body?.errors?.[0]?.code, 'BLOB_UPLOAD_UNKNOWN');
    }
    const finishedByOther = await v2(server, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${sha256(bytes)}`, mallory, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    t.is(finishedByOther.status, 404, 'PUT by another user');
    const finished = await v2(server, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${sha256(bytes)}`, alice, { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    t.is(finished.status, 201, 'its owner finishes it');
  });
});
