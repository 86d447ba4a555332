import test from 'ava';
import { makeImage, ociManifestType, sha256 } from '../oci/layout.ts';
import { adminToken, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Issue #14 item 9: one rule per action, whatever the path. Downloading content (blob and
 * manifest bytes) needs Reporter through the REST blob route and through /v2 alike; a Guest sees
 * the bundle (its versions, its tags) but downloads nothing, on either path.
 */
async function fetchWith(server: TestServer, method: string, urlPath: string, authorization: string, body?: Buffer, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}${urlPath}`, { method, headers: { authorization, ...headers }, body: body ?? null });
  await response.arrayBuffer();
  return response.status;
}

test('a Guest downloads nothing through /v2 or the REST blob route; a Reporter downloads through both', async (t) => {
  await withServer(t, async (server) => {
    t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
    const admin = `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`;
    const image = makeImage([1200]);
    for (const blob of [image.config, ...image.layers]) t.is(await fetchWith(server, 'POST', `/v2/pos/app/blobs/uploads/?digest=${sha256(blob)}`, admin, blob, { 'content-type': 'application/octet-stream' }), 201);
    t.is(await fetchWith(server, 'PUT', '/v2/pos/app/manifests/1.0.0', admin, image.manifest, { 'content-type': ociManifestType }), 201);
    const layer = sha256(image.layers[0]!);
    const manifest = sha256(image.manifest);

    const auth: Record<string, { bearer: string; basic: string }> = {};
    for (const [user, role] of [['gina', 'guest'], ['rita', 'reporter']] as const) {
      await server.api('POST', '/api/v1/users', { json: { name: user } });
      t.is((await server.api('POST', '/api/v1/bundles/pos/members', { json: { user, role } })).status, 201);
      const token = (await server.api('POST', '/api/v1/tokens', { json: { name: user, scopes: ['read'], user } })).body.token as string;
      auth[user] = { bearer: `Bearer ${token}`, basic: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}` };
    }
    const rows = [];
    for (const user of ['gina', 'rita']) {
      rows.push({
        user,
        rest: await fetchWith(server, 'GET', `/api/v1/blobs/${layer}`, auth[user]!.bearer),
        v2Blob: await fetchWith(server, 'GET', `/v2/pos/app/blobs/${layer}`, auth[user]!.basic),
        v2BlobHead: await fetchWith(server, 'HEAD', `/v2/pos/app/blobs/${layer}`, auth[user]!.basic),
        v2Manifest: await fetchWith(server, 'GET', `/v2/pos/app/manifests/${manifest}`, auth[user]!.basic, undefined, { accept: ociManifestType }),
        v2Tag: await fetchWith(server, 'GET', '/v2/pos/app/manifests/1.0.0', auth[user]!.basic, undefined, { accept: ociManifestType }),
        tags: await fetchWith(server, 'GET', '/v2/pos/app/tags/list', auth[user]!.basic),
        versions: await fetchWith(server, 'GET', '/api/v1/bundles/pos/versions', auth[user]!.bearer),
      });
    }
    t.deepEqual(rows, [
      { user: 'gina', rest: 403, v2Blob: 403, v2BlobHead: 403, v2Manifest: 403, v2Tag: 403, tags: 200, versions: 200 },
      { user: 'rita', rest: 200, v2Blob: 200, v2BlobHead: 200, v2Manifest: 200, v2Tag: 200, tags: 200, versions: 200 },
    ]);
  });
});
