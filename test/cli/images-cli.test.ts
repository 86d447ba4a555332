import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { adminToken, makeTempDir, pushArtifact, withServer } from '../helpers/server.ts';
import { layoutDigest, skopeo, writeLayout } from '../oci/layout.ts';

// #9 §2.5: a consumer pulls a release's image and files and verifies them, images blob by blob.

test('artifact pull fetches a file and an image (as an OCI layout); bundle verify checks both, and a skopeo pull, blob by blob', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } });
      const image = await writeLayout(path.join(work, 'src'), 'build', [64 * 1024, 1024]);
      const registry = `127.0.0.1:${server.httpPort}`;
      await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://${registry}/shop/pos-app:1.0.0`]);
      await pushArtifact(server, 'shop', '1.0.0', 'conf.ini', Buffer.from('a=1'));
      t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
      const root = path.join(work, 'root.json');
      await fs.writeFile(root, (await server.api('GET', '/tuf/1.root.json')).raw);

      const held = path.join(work, 'held');
      const pulledImage = await convoy(server.url, ['artifact', 'pull', 'shop@1.0.0', 'pos-app', '--out', path.join(held, 'pos-app')]);
      t.is(pulledImage.code, 0, pulledImage.stderr);
      t.regex(pulledImage.stdout, /pulled image pos-app of shop@1\.0\.0 into .* \(OCI layout, 4 blobs, tag 1\.0\.0\)/);
      t.is(await layoutDigest(path.join(held, 'pos-app'), '1.0.0'), image.manifestDigest);
      const pulledFile = await convoy(server.url, ['artifact', 'pull', 'shop@1.0.0', 'conf.ini', '--out', path.join(held, 'conf.ini')]);
      t.is(pulledFile.code, 0, pulledFile.stderr);
      t.is(await fs.readFile(path.join(held, 'conf.ini'), 'utf8'), 'a=1');

      const good = await convoy(server.url, ['bundle', 'verify', 'shop@1.0.0', '--dir', held, '--root', root]);
      t.is(good.code, 0, good.stdout + good.stderr);
      t.is(good.stdout, 'verified 2 files of shop@1.0.0 against the signed metadata\n');

      // What skopeo writes is verified the same way.
      const viaSkopeo = path.join(work, 'skopeo');
      await fs.mkdir(viaSkopeo);
      await skopeo(['copy', '--src-tls-verify=false', '--src-creds', `admin:${adminToken}`, `docker://${registry}/shop/pos-app:1.0.0`, `oci:${path.join(viaSkopeo, 'pos-app')}:1.0.0`]);
      await fs.copyFile(path.join(held, 'conf.ini'), path.join(viaSkopeo, 'conf.ini'));
      const skopeoGood = await convoy(server.url, ['bundle', 'verify', 'shop@1.0.0', '--dir', viaSkopeo, '--root', root]);
      t.is(skopeoGood.code, 0, skopeoGood.stdout + skopeoGood.stderr);

      // One changed byte in a layer: named, with the blob.
      const [layer] = [...image.blobs.keys()].filter((d) => image.blobs.get(d)!.length > 2000);
      const layerFile = path.join(held, 'pos-app', 'blobs', 'sha256', layer!.slice(7));
      const bytes = await fs.readFile(layerFile);
      bytes[100] = bytes[100]! ^ 0xff;
      await fs.writeFile(layerFile, bytes);
      const bad = await convoy(server.url, ['bundle', 'verify', 'shop@1.0.0', '--dir', held, '--root', root]);
      t.is(bad.code, 1);
      t.regex(bad.stdout, new RegExp(`^changed\\s+pos-app: blob ${layer}: hashes to sha256:[0-9a-f]{64}\\n$`));
      await fs.rm(layerFile);
      t.regex((await convoy(server.url, ['bundle', 'verify', 'shop@1.0.0', '--dir', held, '--root', root])).stdout, /pos-app: blob sha256:[0-9a-f]{64} is not in the layout/);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
