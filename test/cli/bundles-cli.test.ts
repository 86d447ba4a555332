import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, pushArtifact, withServer, type TestServer } from '../helpers/server.ts';
import { makeDeb } from '../bundles/fixtures.ts';
import { convoy } from '../helpers/cli.ts';

async function download(server: TestServer, release: string, dir: string): Promise<void> {
  const [bundle, version] = release.split('@');
  await fs.mkdir(dir, { recursive: true });
  const artifacts = (await server.api('GET', `/api/v1/bundles/${bundle}/versions/${version}/artifacts`)).body as { name: string; digest: string }[];
  for (const a of artifacts) await fs.writeFile(path.join(dir, a.name), (await server.api('GET', `/api/v1/blobs/${a.digest}`)).raw);
}

test('a CI job: the next version into the variable, pushes tagged with it, approve, copy, diff', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      t.is((await convoy(server.url, ['bundle', 'create', 'pos'])).code, 0);
      const next = await convoy(server.url, ['version', 'next', 'pos', '--bump', 'minor', '--dotenv']);
      t.is(next.stdout, 'CONVOY_RELEASE_VERSION=0.1.0\n', next.stderr);
      const env = { CONVOY_RELEASE_VERSION: next.stdout.trim().split('=')[1]! };

      const app = path.join(work, 'app.bin');
      await fs.writeFile(app, 'app v1');
      const conf = path.join(work, 'conf.ini');
      await fs.writeFile(conf, 'a=1');
      const deb = await makeDeb(work, { name: 'pos-agent', version: '2.0-1', architecture: 'amd64' }, 'xz');
      t.is((await convoy(server.url, ['artifact', 'push', app, '--bundle', 'pos', '--type', 'image'], { env: env })).code, 0);
      t.is((await convoy(server.url, ['artifact', 'push', conf, '--bundle', 'pos'], { env: env })).code, 0);
      const pushedDeb = await convoy(server.url, ['artifact', 'push', deb, '--bundle', 'pos', '--name', 'agent.deb', '--format', 'deb'], { env: env });
      t.is(pushedDeb.code, 0, pushedDeb.stderr);
      t.regex(pushedDeb.stdout, /added package agent\.deb to pos@0\.1\.0 \(deb pos-agent 2\.0-1 amd64\)/);
      const listed = JSON.parse((await convoy(server.url, ['artifact', 'list', 'pos', '--format', 'deb', '--json'], { env: env })).stdout);
      t.deepEqual(listed.map((a: { name: string }) => a.name), ['agent.deb']);
      const updated = await convoy(server.url, ['artifact', 'update', 'pos', 'conf.ini', '--format', 'generic', '--package-name', 'pos-conf', '--package-version', '1', '--arch', 'all'], { env: env });
      t.is(updated.code, 0, updated.stderr);
      t.regex((await convoy(server.url, ['artifact', 'show', 'pos', 'conf.ini'], { env: env })).stdout, /generic pos-conf 1 all/);
      t.is((await convoy(server.url, ['bundle', 'approve', 'pos'], { env: env })).code, 0);
      const late = await convoy(server.url, ['artifact', 'push', app, '--bundle', 'pos'], { env: env });
      t.is(late.code, 1);
      t.regex(late.stderr, /\(version_immutable\)/);

      t.is((await convoy(server.url, ['bundle', 'copy', 'pos@0.1.0', '--to', '0.1.1'])).code, 0);
      await fs.writeFile(app, 'app v2');
      t.is((await convoy(server.url, ['artifact', 'push', app, '--bundle', 'pos', '--version', '0.1.1', '--type', 'image'], { env: env })).code, 0, 'an explicit --version wins over the variable');
      t.is((await convoy(server.url, ['artifact', 'delete', 'pos@0.1.1', 'agent.deb'])).code, 0);
      const extra = path.join(work, 'notes.txt');
      await fs.writeFile(extra, 'new');
      t.is((await convoy(server.url, ['artifact', 'push', extra, '--bundle', 'pos', '--version', '0.1.1'])).code, 0);
      const diff = await convoy(server.url, ['bundle', 'diff', 'pos@0.1.0', 'pos@0.1.1']);
      t.is(diff.code, 0, diff.stderr);
      const lines = diff.stdout.trim().split('\n');
      t.is(lines.length, 3, diff.stdout);
      t.regex(lines[0]!, /^\+ notes\.txt  file  3  sha256:/);
      t.regex(lines[1]!, /^- agent\.deb  package/);
      t.regex(lines[2]!, /^~ app\.bin  sha256:[0-9a-f]{12} → sha256:[0-9a-f]{12}$/);
      t.deepEqual(JSON.parse((await convoy(server.url, ['bundle', 'diff', 'pos@0.1.0', 'pos@0.1.1', '--json'])).stdout).changed.map((c: { name: string; fields: string[] }) => [c.name, c.fields]), [['app.bin', ['digest']]]);

      const noVersion = await convoy(server.url, ['artifact', 'list', 'pos']);
      t.is(noVersion.code, 1);
      t.regex(noVersion.stderr, /no version for pos: write pos@VERSION or set CONVOY_RELEASE_VERSION/);
      const badVar = await convoy(server.url, ['artifact', 'list', 'pos'], { env: { CONVOY_RELEASE_VERSION: 'v1' } });
      t.regex(badVar.stderr, /CONVOY_RELEASE_VERSION="v1" is not a version/);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('a consumer verifies the files they hold against the signed metadata, naming every mismatch', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
      await pushArtifact(server, 'pos', '0.1.0', 'app.bin', Buffer.from('app v1'), 'image');
      await pushArtifact(server, 'pos', '0.1.0', 'conf.ini', Buffer.from('a=1'));
      await pushArtifact(server, 'pos', '0.1.0', 'agent.deb', Buffer.from('a package'));
      await server.api('POST', '/api/v1/bundles/pos/versions/0.1.0/approve');
      await pushArtifact(server, 'pos', '0.1.1', 'app.bin', Buffer.from('app v2'));
      const env = { CONVOY_RELEASE_VERSION: '0.1.0' };
      // The consumer: the pinned root was obtained once, out of band.
      const root = path.join(work, 'root.json');
      await fs.writeFile(root, (await server.api('GET', '/tuf/1.root.json')).raw);
      const held = path.join(work, 'held');
      await download(server, 'pos@0.1.0', held);
      const good = await convoy(server.url, ['bundle', 'verify', 'pos', '--dir', held, '--root', root], { env: env });
      t.is(good.code, 0, good.stderr);
      t.is(good.stdout, 'verified 3 files of pos@0.1.0 against the signed metadata\n');
      await fs.writeFile(path.join(held, 'app.bin'), 'app v1 tampered');
      await fs.writeFile(path.join(held, 'conf.ini'), 'a=2');
      await fs.rm(path.join(held, 'agent.deb'));
      await fs.writeFile(path.join(held, 'stray.txt'), 'stray');
      const bad = await convoy(server.url, ['bundle', 'verify', 'pos@0.1.0', '--dir', held, '--root', root]);
      t.is(bad.code, 1);
      t.deepEqual(bad.stdout.trim().split('\n').map((l) => l.split(':')[0]!.replace(/\s+/g, ' ')), ['missing agent.deb', 'changed app.bin', 'changed conf.ini', 'extra stray.txt']);
      t.regex(bad.stdout, /changed\s+app\.bin: 15 bytes, signed as 6/);
      t.regex(bad.stdout, /changed\s+conf\.ini: hashes to sha256:[0-9a-f]{64}, signed as sha256:[0-9a-f]{64}/);
      t.regex(bad.stderr, /4 mismatches against the signed pos@0\.1\.0 \(verify_failed\)/);
      const draft = await convoy(server.url, ['bundle', 'verify', 'pos@0.1.1', '--dir', held, '--root', root]);
      t.is(draft.code, 1);
      t.regex(draft.stderr, /not in the signed metadata/);

      // A root the server's metadata does not chain to: nothing is believed.
      await withServer(t, async (other) => {
        const foreign = path.join(work, 'foreign-root.json');
        await fs.writeFile(foreign, (await other.api('GET', '/tuf/1.root.json')).raw);
        const refused = await convoy(server.url, ['bundle', 'verify', 'pos@0.1.0', '--dir', held, '--root', foreign]);
        t.is(refused.code, 1);
        t.regex(refused.stderr, /does not verify against the pinned root.*\(untrusted_metadata\)/);
      });

    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
