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
const repoRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const examples = path.join(repoRoot, 'docs/examples');

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

/** The lines of the README's first `sh` block after `heading`, as a reader would copy them. */
async function readmeBlock(heading: string): Promise<string[]> {
  const readme = await fs.readFile(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(heading));
  const block = /```sh\n([^]*?)```/.exec(section);
  if (!block) throw new Error(`no sh block after ${heading}`);
  return block[1]!.trim().split('\n');
}

async function run(line: string, env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec('sh', ['-c', line], { env, cwd });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('the README\'s CI recipe, as written: its user and token run the CI scripts; a refusal shows the server\'s error', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
      const bin = path.join(work, 'bin');
      await fs.mkdir(bin);
      await fs.writeFile(path.join(bin, 'convoy'), `#!/bin/sh\nexec "${process.execPath}" "${convoyBin}" "$@"\n`, { mode: 0o755 });
      const admin: NodeJS.ProcessEnv = { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, CONVOY_URL: server.url, CONVOY_TOKEN: adminToken };
      let ciToken = '';
      for (const line of await readmeBlock('## Users, roles and tokens')) {
        const result = await run(line, admin, work);
        t.is(result.code, 0, `${line}: ${result.stderr}`);
        if (line.includes('token create')) ciToken = result.stdout.trim();
      }
      t.regex(ciToken, /^cvy_/);

      // CI holds only the recipe's token; the scripts as shipped, with the CLI and with curl alone.
      const ci: NodeJS.ProcessEnv = { PATH: '/usr/local/bin:/usr/bin:/bin', CONVOY_URL: server.url, CONVOY_TOKEN: ciToken, CONVOY_BUNDLE: 'pos-app' };
      const viaCurl = await sh('convoy-next-version.sh', ['minor'], ci, work);
      t.is(viaCurl.stdout, 'CONVOY_RELEASE_VERSION=0.1.0\n', viaCurl.stderr);
      const viaCli = await sh('convoy-next-version.sh', ['minor', 'rc'], { ...ci, PATH: `${bin}:${ci.PATH}` }, work);
      t.is(viaCli.stdout, 'CONVOY_RELEASE_VERSION=0.1.0-rc.0\n', viaCli.stderr);
      await fs.writeFile(path.join(work, 'notes.txt'), 'release notes');
      const published = await sh('convoy-publish.sh', [], { ...ci, CONVOY_RELEASE_VERSION: '0.1.0', CONVOY_PACKAGES: 'notes.txt' }, work);
      t.is(published.stdout, '201 notes.txt\n', published.stderr);

      // The curl fallback keeps the server's error body: the job log says why it failed.
      const refused = await sh('convoy-next-version.sh', ['minor'], { ...ci, CONVOY_BUNDLE: 'no-such-bundle' }, work);
      t.not(refused.code, 0);
      t.regex(refused.stderr, /convoy-next-version: .*"code":"(not_found|forbidden)"/);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
