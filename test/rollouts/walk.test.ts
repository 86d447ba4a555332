import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { publishRelease } from '../helpers/release.ts';
import { adminToken, makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { runShell, startShell, walkBin, walkBlock, type LongShell } from '../helpers/walk.ts';

/*
 * docs/rollouts.md run as written (issue #10, "done when"): the shell blocks marked
 * `<!-- walk: … -->` are run by bash in the repository with `convoy` on the PATH; the fleet
 * blocks are the real `npm run fleet-sim` processes, left running as the guide says. Only the
 * marker file `porto-mirror-broken` moves to a temp dir (not the repository). Between blocks the
 * test waits for what the guide says the operator sees next, as a user would watch.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const block = (name: string) => walkBlock(path.join(repo, 'docs/rollouts.md'), name);

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
  const bin = await walkBin(work);
  const fleets: LongShell[] = [];
  const stopFleets = () => Promise.all(fleets.map((fleet) => fleet.stop()));
  t.teardown(() => fs.rm(work, { recursive: true, force: true }));

  await withServer(t, async (server) => {
    const env = { PATH: `${bin}:${process.env.PATH}`, CONVOY_URL: server.url, CONVOY_TOKEN: adminToken };
    const local = (script: string) => script.replaceAll('porto-mirror-broken', path.join(work, 'porto-mirror-broken'));
    const run = async (name: string) => {
      const result = await runShell(local(await block(name)), { cwd: repo, env, timeoutMs: 90_000 });
      if (result.code !== 0) throw new Error(`walk: ${name} failed\n${result.stdout}\n${result.stderr}`);
      return result.stdout;
    };
    /** A fleet block: its last line runs until stopped (Ctrl-C); resolves once its devices are connected. */
    const startFleetBlock = async (name: string) => {
      fleets.push(await startShell(local(await block(name)), { cwd: repo, env, ready: 'simulated devices connected' }));
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
