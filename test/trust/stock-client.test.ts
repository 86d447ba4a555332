import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { Updater } from 'tuf-js';
import { artifactTargetPath, manifestTargetPath } from '../../protocol/targets.ts';
import { makeTempDir, pushArtifact, withServer } from '../helpers/server.ts';

test('a stock tuf-js client with default settings reads the repository the server writes', async (t) => {
  await withServer(
    t,
    async (server) => {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
      const bytes = Buffer.from('signed payload\n');
      await pushArtifact(server, 'pos-app', '1.0.0', 'app.txt', bytes);
      const approved = await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve');
      const root = await server.api('GET', '/tuf/1.root.json', { token: null });
      t.is(root.status, 200);

      const dir = await makeTempDir();
      try {
        await fs.mkdir(path.join(dir, 'metadata'));
        await fs.mkdir(path.join(dir, 'targets'));
        await fs.writeFile(path.join(dir, 'metadata', 'root.json'), root.raw);
        const updater = new Updater({
          metadataDir: path.join(dir, 'metadata'),
          metadataBaseUrl: `${server.url}/tuf`,
          targetDir: path.join(dir, 'targets'),
          targetBaseUrl: `${server.url}/tuf/targets`,
        });
        await updater.refresh();
        const artifact = await updater.getTargetInfo(artifactTargetPath('pos-app', '1.0.0', 'app.txt'));
        t.truthy(artifact);
        const file = await updater.downloadTarget(artifact!, path.join(dir, 'targets', 'app.txt'));
        t.true((await fs.readFile(file)).equals(bytes));
        const manifestInfo = await updater.getTargetInfo(manifestTargetPath('pos-app', '1.0.0'));
        const manifestFile = await updater.downloadTarget(manifestInfo!, path.join(dir, 'targets', 'manifest.json'));
        const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8'));
        t.is(`sha256:${manifestInfo!.hashes.sha256}`, approved.body.manifestDigest);
        t.deepEqual(manifest.artifacts.map((a: { name: string }) => a.name), ['app.txt']);
        t.is(await updater.getTargetInfo('pos-app/9.9.9/manifest.json'), undefined, 'an unapproved release is not a target');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    },
    { anonymousTufRead: true },
  );
});

test('after a restart the server keeps signing with the same keys and versions keep increasing', async (t) => {
  await withServer(t, async (server) => {
    const before = await server.api('GET', '/tuf/timestamp.json');
    await server.restart();
    const root = await server.api('GET', '/tuf/root.json');
    t.is(root.body.signed.version, 1);
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    await pushArtifact(server, 'pos-app', '1.0.0', 'a', Buffer.from('a'));
    await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve');
    const after = await server.api('GET', '/tuf/timestamp.json');
    t.is(after.body.signed.version, before.body.signed.version + 1);
    t.is(after.body.signatures[0].keyid, before.body.signatures[0].keyid);
    t.is((await server.api('GET', '/tuf/..%2Fkeys%2Froot.pem')).status, 404, 'only metadata names are served');
  });
});
