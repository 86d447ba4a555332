import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { convoyBin } from '../helpers/device.ts';
import { publishRelease } from '../helpers/release.ts';
import { adminToken, makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * docs/rollouts.md run as written (issue #10, "done when"): the shell blocks marked
 * `<!-- walk: … -->` are run by bash in the repository with `convoy` on the PATH; the fleet
 * blocks are the real `npm run fleet-sim` processes, left running as the guide says. Only the
 * marker file `porto-mirror-broken` moves to a temp dir (not the repository). Between blocks the
 * test waits for what the guide says the operator sees next, as a user would watch.
 */

const exec = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const doc = path.join(repo, 'docs/rollouts.md');

async function block(name: string): Promise<string> {
  const text = await fs.readFile(doc, 'utf8');
  const match = new RegExp(`<!-- walk: ${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``).exec(text);
  if (!match) throw new Error(`docs/rollouts.md has no "walk: ${name}" block`);
  return match[1]!;
}

interface Deployment {
  state: string;
  reason: string | null;
  counts: Record<string, number>;
  devices: { id: string; state: string }[];
}

async function deployment(server: TestServer, id: number): Promise<Deployment> {
  const res = await server.api('GET', `/api/v1/deployments/${id}`);
  if (res.status !== 200) throw new Error(`GET deployment ${id}: ${res.status} ${res.raw}`);
  return res.body as Deployment;
}

/** Installed version per device of a static group, from the API (what `device list` prints). */
async function versions(server: TestServer, group: string): Promise<Map<string, string | null>> {
  const res = await server.api('GET', `/api/v1/devices?group=${group}&per_page=100`);
  return new Map((res.body as { id: string; installed: { version: string } | null }[]).map((d) => [d.id, d.installed?.version ?? null]));
}

test('docs/rollouts.md, as written: inventory, a dynamic group, a phased deployment pausing itself, retry and resume, an abort that leaves every till intact', async (t) => {
  const work = await makeTempDir('convoy-rollouts-walk-');
  const bin = path.join(work, 'bin');
  await fs.mkdir(bin);
  await fs.writeFile(path.join(bin, 'convoy'), `#!/bin/sh\nexec "${process.execPath}" "${convoyBin}" "$@"\n`, { mode: 0o755 });
  const fleets: ChildProcess[] = [];
  // Each fleet block runs in its own process group (bash, npm, node): Ctrl-C reaches all of it.
  const stopFleets = () =>
    Promise.all(
      fleets
        .filter((f) => f.exitCode === null && f.signalCode === null)
        .map((f) => {
          const exited = new Promise((resolve) => f.once('exit', resolve));
          process.kill(-f.pid!, 'SIGINT');
          const timer = setTimeout(() => process.kill(-f.pid!, 'SIGKILL'), 5_000);
          return exited.then(() => clearTimeout(timer));
        }),
    );
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));

  await withServer(t, async (server) => {
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, CONVOY_URL: server.url, CONVOY_TOKEN: adminToken };
    const local = (script: string) => script.replaceAll('porto-mirror-broken', path.join(work, 'porto-mirror-broken'));
    const run = async (name: string) => {
      try {
        return (await exec('bash', ['-euo', 'pipefail', '-c', local(await block(name))], { cwd: repo, env, timeout: 90_000 })).stdout;
      } catch (error) {
        const e = error as { stdout: string; stderr: string };
        throw new Error(`walk: ${name} failed\n${e.stdout}\n${e.stderr}`);
      }
    };
    /** A fleet block: its last line runs until stopped; resolves once its devices are connected. */
    const startFleetBlock = async (name: string) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', local(await block(name))], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      fleets.push(child);
      const output: string[] = [];
      child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          output.push(chunk.toString('utf8'));
          if (output.join('').includes('simulated devices connected')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`walk: ${name} exited with ${code}: ${output.join('')}`)));
      });
    };

    try {
      await publishRelease(server, 'pos-app', '1.0.0', [{ name: 'app.txt', type: 'file', bytes: Buffer.from('1.0.0\n') }]);
      await publishRelease(server, 'pos-app', '1.1.0', [{ name: 'app.txt', type: 'file', bytes: Buffer.from('1.1.0\n') }]);
      for (const name of ['fleet-lisbon', 'fleet-porto', 'fleet-berlin']) await startFleetBlock(name);

      // Groups and inventory: the preview and the dynamic group hold Lisbon and Porto, not Berlin.
      await waitFor('every device to report its inventory', async () => {
        const res = await server.api('GET', `/api/v1/devices?filter=${encodeURIComponent('model = "pos-x2" or model = "pos-x1"')}&per_page=100`);
        return res.body.length === 35 ? true : undefined;
      });
      const groups = await run('groups');
      for (const shop of ['shop-lisbon', 'shop-porto', 'shop-berlin']) t.regex(groups, new RegExp(shop));
      t.regex(groups, /lis-00020/);
      t.regex(groups, /por-00010/);
      const eu = await server.api('GET', `/api/v1/devices?group=eu-tills&per_page=100`);
      t.is(eu.body.length, 30, 'the dynamic group holds the 30 eu-west pos-x2 tills');
      t.false(JSON.stringify(eu.body).includes('ber-'), 'Berlin’s pos-x1 tills are not in it');

      // The phased deployment pauses itself on Porto's failures.
      const deployed = await run('deploy');
      t.regex(deployed, /eu-tills/);
      const paused = await waitFor('deployment 1 to pause itself', async () => {
        const d = await deployment(server, 1);
        return d.state === 'paused' ? d : undefined;
      });
      t.regex(paused.reason ?? '', /failed, over the limit of 2 devices/);
      t.true(paused.counts.pending! > 0, 'the last phase was not released');
      t.is((await server.api('GET', '/api/v1/deployments/1')).body.retry.attempts, 1, '--retries 0: one attempt, no automatic retry');
      const shown = await run('paused');
      t.regex(shown, /paused/);
      t.regex(shown, /por-\d{5}/, 'the failed Porto tills are listed');

      // Fix, retry, resume: every till of the group installs 1.0.0.
      await run('retry');
      await waitFor('deployment 1 to complete with 30 installed', async () => {
        const d = await deployment(server, 1);
        return d.state === 'completed' && d.counts.installed === 30 ? true : undefined;
      });
      t.regex(await run('completed'), /completed/);
      for (const shop of ['shop-lisbon', 'shop-porto']) t.deepEqual([...new Set((await versions(server, shop)).values())], ['1.0.0'], shop);
      t.deepEqual([...new Set((await versions(server, 'shop-berlin')).values())], [null], 'Berlin was never targeted');

      // Abort mid-flight: the first half of Lisbon on 1.1.0, the rest on 1.0.0, nobody in between.
      await run('abort-deploy');
      await waitFor('the first half of Lisbon to install 1.1.0', async () => ((await deployment(server, 2)).counts.installed === 10 ? true : undefined));
      const aborted = await run('abort');
      t.regex(aborted, /aborted/);
      t.is((await deployment(server, 2)).state, 'aborted');
      // Give any stray notice time to act: nothing may move after the abort.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const lisbon = await versions(server, 'shop-lisbon');
      t.is([...lisbon.values()].filter((v) => v === '1.1.0').length, 10);
      t.is([...lisbon.values()].filter((v) => v === '1.0.0').length, 10);
      const states = (await server.api('GET', '/api/v1/devices?group=shop-lisbon&per_page=100')).body as { id: string; state: string }[];
      t.deepEqual([...new Set(states.map((d) => d.state))].filter((s) => s === 'failed'), [], 'no till failed or was told to go back');
    } finally {
      await stopFleets();
    }
  });
});
