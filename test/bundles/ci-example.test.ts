import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, withServer } from '../helpers/server.ts';
import { makeDeb, makeNpmTarball } from './fixtures.ts';

const exec = promisify(execFile);
const examples = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/examples');

async function sh(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('sh', [path.join(examples, script), ...args], { env, cwd });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('the CI examples work: next version into the variable (curl alone, or the CLI), packages published with curl', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
      await server.api('POST', '/api/v1/bundles/pos-app/versions', { json: { version: '1.2.0' } });
      // A PATH without the convoy CLI: the scripts fall back to curl.
      const env: NodeJS.ProcessEnv = { PATH: '/usr/local/bin:/usr/bin:/bin', CONVOY_URL: server.url, CONVOY_TOKEN: adminToken, CONVOY_BUNDLE: 'pos-app' };
      const viaCurl = await sh('convoy-next-version.sh', ['minor'], env, work);
      t.is(viaCurl.stdout, 'CONVOY_RELEASE_VERSION=1.3.0\n', viaCurl.stderr);
      t.is((await sh('convoy-next-version.sh', ['prerelease', 'rc'], env, work)).stdout, 'CONVOY_RELEASE_VERSION=1.2.1-rc.0\n');
      // With the CLI on PATH, the same line comes from `convoy version next --dotenv`.
      const bin = path.join(work, 'bin');
      await fs.mkdir(bin);
      await fs.writeFile(path.join(bin, 'convoy'), `#!/bin/sh\nexec "${process.execPath}" "${convoyBin}" "$@"\n`, { mode: 0o755 });
      const viaCli = await sh('convoy-next-version.sh', ['major'], { ...env, PATH: `${bin}:${env.PATH}` }, work);
      t.is(viaCli.stdout, 'CONVOY_RELEASE_VERSION=2.0.0\n', viaCli.stderr);

      const dist = path.join(work, 'dist');
      await fs.mkdir(dist);
      const deb = await makeDeb(dist, { name: 'pos-agent', version: '1.3.0', architecture: 'amd64' });
      await fs.rename(deb, path.join(dist, 'pos-agent.deb'));
      const tgz = await makeNpmTarball(dist, { name: 'prices', version: '1.3.0' });
      await fs.rename(tgz, path.join(dist, 'prices.tgz'));
      await fs.writeFile(path.join(dist, 'notes.txt'), 'release notes');
      const release = { ...env, CONVOY_RELEASE_VERSION: viaCurl.stdout.trim().split('=')[1]!, CONVOY_PACKAGES: 'dist/pos-agent.deb dist/prices.tgz dist/notes.txt' };
      const published = await sh('convoy-publish.sh', [], release, work);
      t.is(published.code, 0, published.stderr);
      t.is(published.stdout, '201 dist/pos-agent.deb\n201 dist/prices.tgz\n201 dist/notes.txt\n');
      const listed = (await server.api('GET', '/api/v1/bundles/pos-app/versions/1.3.0/artifacts')).body as { name: string; package: { format: string; name: string; version: string } | null }[];
      t.deepEqual(listed.map((a) => [a.name, a.package && `${a.package.format} ${a.package.name} ${a.package.version}`]), [
        ['notes.txt', null],
        ['pos-agent.deb', 'deb pos-agent 1.3.0'],
        ['prices.tgz', 'npm prices 1.3.0'],
      ]);
      t.is((await sh('convoy-publish.sh', [], release, work)).stdout, '200 dist/pos-agent.deb\n200 dist/prices.tgz\n200 dist/notes.txt\n', 'a re-run replaces');
      await server.api('POST', '/api/v1/bundles/pos-app/versions/1.3.0/approve');
      const late = await sh('convoy-publish.sh', [], release, work);
      t.not(late.code, 0);
      t.regex(late.stdout + late.stderr, /version_immutable/);
      t.regex((await sh('convoy-publish.sh', [], { ...env }, work)).stderr, /CONVOY_RELEASE_VERSION/);

      // The workflow files call exactly these scripts.
      for (const file of ['gitlab-ci.yml', 'github-actions.yml']) {
        const text = await fs.readFile(path.join(examples, file), 'utf8');
        t.regex(text, /sh ci\/convoy-next-version\.sh/, file);
        t.regex(text, /sh ci\/convoy-publish\.sh/, file);
      }
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
