import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { deviceRecord, hashTree, provisionDevice, readJournalFile, runDaemon, type TestDevice } from '../helpers/device.ts';
import { archiveArtifact, deploy, expectedTree, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * kill -9 of real convoyd processes at random instants of an update (CI: 51 kills; the on-demand
 * script scripts/faults/kill-many sets CONVOY_FAULT_KILLS=500). After each kill the daemon is
 * started again on the same directory, and once it settles the device must run exactly the old
 * or the new release (every file's hash checked) and report that same release to the server.
 */
const kills = Number(process.env.CONVOY_FAULT_KILLS ?? 51);
const deviceCount = Number(process.env.CONVOY_FAULT_DEVICES ?? 3);
const terminal = new Set(['committed', 'rolled-back', 'failed']);
const reported: Record<string, string> = { committed: 'installed', 'rolled-back': 'rolled-back', failed: 'failed' };

/** Where kills are aimed, in turn: null is "anywhere in the update". */
const aims: { state: string | null; withinMs: number }[] = [
  { state: null, withinMs: 0 },
  { state: 'downloading', withinMs: 400 },
  { state: null, withinMs: 0 },
  { state: 'staging', withinMs: 25 },
  { state: null, withinMs: 0 },
  { state: 'switching', withinMs: 4 },
  { state: null, withinMs: 0 },
  { state: 'testing', withinMs: 350 },
];

const healthScript = Buffer.from('#!/bin/sh\n# The release checks itself: long enough for kills to land while testing.\nsleep 0.4\nexit 0\n');

async function makeRelease(label: string): Promise<TestArtifact[]> {
  return [
    await archiveArtifact('app', { 'bin/pos': randomBytes(40 * 1024), 'etc/pos.conf': Buffer.from(`release=${label}\n`), 'share/ui.js': randomBytes(200 * 1024) }),
    { name: 'data.bin', type: 'file', bytes: randomBytes(500 * 1024) },
    { name: 'health.sh', type: 'file', bytes: healthScript },
  ];
}

interface Settled {
  journal: any;
  record: any;
}

/** Waits until the daemon's journal ends deployment `deploymentId` and the server shows the same. */
async function settle(server: TestServer, device: { id: string; dir: string }, deploymentId: number): Promise<Settled> {
  const journal = await waitFor(
    `${device.id} to finish deployment ${deploymentId}`,
    async () => {
      const j = await readJournalFile(device.dir);
      return j?.update?.deploymentId === deploymentId && terminal.has(j.update.state) ? j : undefined;
    },
    90_000,
  );
  const record = await waitFor(
    `${device.id} to report deployment ${deploymentId}`,
    async () => {
      const r = await deviceRecord(server, device.id);
      return r?.state === reported[journal.update.state] && r.installed?.version === journal.installed?.version ? r : undefined;
    },
    30_000,
  );
  return { journal, record };
}

test(`kill -9 at ${kills} random instants of updates: the device always runs one release intact and says which`, async (t) => {
  t.timeout(Math.max(180_000, (kills / deviceCount) * 20_000));
  await withServer(t, async (server) => {
    const releases: Record<string, TestArtifact[]> = { '1.0.0': await makeRelease('1'), '2.0.0': await makeRelease('2') };
    for (const [version, artifacts] of Object.entries(releases)) await publishRelease(server, 'pos-app', version, artifacts);
    // The devices flip between the two releases; going back to 1.0.0 is a downgrade, which a device
    // refuses unless the signed targets allow it (#3's anti-downgrade), so allow it once.
    const allowed = await server.api('PUT', '/api/v1/bundles/pos-app/versions/1.0.0/rollback', { json: { allowed: true } });
    if (allowed.status !== 200) throw new Error(`allowing the rollback answered ${allowed.status}: ${allowed.raw}`);
    const expected = Object.fromEntries(Object.entries(releases).map(([v, a]) => [v, expectedTree(a)]));
    const hits: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    const running: TestDevice[] = [];

    const runDevice = async (index: number, count: number) => {
      const id = `till-${index}`;
      const group = `shop-${index}`;
      const dir = await provisionDevice(server, id, group, {
        update: {
          bandwidthLimit: 1_500_000,
          retryBaseMs: 200,
          retryMaxMs: 2_000,
          stallTimeoutMs: 5_000,
          keepSlots: 1,
          healthCheck: { command: ['sh', 'current/health.sh'], timeoutMs: 10_000, retries: 0, intervalMs: 0 },
        },
      });
      let daemon = runDaemon(id, dir);
      running.push(daemon);
      try {
        await waitFor(`${id} to connect`, async () => ((await deviceRecord(server, id))?.state ? true : undefined));
        let settled = await settle(server, { id, dir }, await deploy(server, 'pos-app', '1.0.0', group));
        t.is(settled.journal.installed.version, '1.0.0');
        // An undisturbed update measures how long one takes here (deploy to the journal's last
        // write); kills land uniformly over that span, so over every step whatever the speed.
        const started = Date.now();
        const measured = await deploy(server, 'pos-app', '2.0.0', group);
        await waitFor(`${id} to finish the measured update`, async () => ((await readJournalFile(dir))?.update?.deploymentId === measured && terminal.has((await readJournalFile(dir)).update.state) ? true : undefined), 90_000);
        const span = Date.now() - started;
        settled = await settle(server, { id, dir }, measured);
        t.is(settled.journal.installed.version, '2.0.0');
        for (let i = 0; i < count; i++) {
          const target = settled.journal.installed?.version === '1.0.0' ? '2.0.0' : '1.0.0';
          const deploymentId = await deploy(server, 'pos-app', target, group);
          // Every other kill lands at a uniformly random instant of the update; the others wait
          // for a given step to begin (the short ones, staging and switching, would be rare
          // otherwise), then a random part of its usual length.
          const aim = aims[i % aims.length]!;
          const begun = Date.now();
          if (aim.state) {
            await waitFor(`${id} to reach ${aim.state}`, async () => {
              const j = await readJournalFile(dir);
              return j?.update?.deploymentId === deploymentId && (j.update.state === aim.state || terminal.has(j.update.state)) ? true : undefined;
            }, 90_000, 2);
          }
          await new Promise((resolve) => setTimeout(resolve, Math.random() * (aim.state ? aim.withinMs : span)));
          const delay = Date.now() - begun;
          const atKill = await readJournalFile(dir);
          await daemon.kill();
          const state = atKill?.update?.deploymentId === deploymentId ? atKill.update.state : 'before-notice';
          hits[state] = (hits[state] ?? 0) + 1;
          if (process.env.CONVOY_FAULT_DEBUG) t.log(`${id}: kill after ${Math.round(delay)} of ${Math.round(span)} ms in ${state}`);
          running.splice(running.indexOf(daemon), 1);
          daemon = runDaemon(id, dir);
          running.push(daemon);

          settled = await settle(server, { id, dir }, deploymentId);
          const { journal, record } = settled;
          outcomes[journal.update.state] = (outcomes[journal.update.state] ?? 0) + 1;
          const where = `${id} kill ${i + 1} (in ${state}, towards ${target})`;
          // A kill while testing rolls back (the release was not proven healthy); anything
          // earlier resumes; nothing ends in a failure.
          t.not(journal.update.state, 'failed', `${where}: ${JSON.stringify(journal.update.error)}`);
          const version = journal.installed.version as string;
          t.deepEqual(await hashTree(path.join(dir, 'current')), expected[version], `${where}: current holds exactly ${version}`);
          t.is(record.installed.version, version, `${where}: reports the release it runs`);
          if (journal.update.state === 'rolled-back') t.is(record.error?.code, 'health_check_failed');
          // No half-staged slot is left behind: the installed one and keepSlots (1) previous
          // (pruned just after the final journal write).
          const slots = await waitFor(`${where}: old slots pruned`, async () => {
            const list = (await fs.readdir(path.join(dir, 'slots'))).sort();
            return list.length <= 2 ? list : undefined;
          }, 10_000).catch(async () => (await fs.readdir(path.join(dir, 'slots'))).sort());
          t.true(slots.length <= 2 && slots.includes(journal.installed.slot), `${where}: slots ${slots.join(', ')}`);
        }
      } catch (error) {
        t.log(`--- ${id}\n${daemon.logs.join('').slice(-6000)}`);
        throw error;
      } finally {
        if (process.env.CONVOY_FAULT_DEBUG) t.log(daemon.logs.join(''));
        await daemon.stop();
        await fs.rm(dir, { recursive: true, force: true });
      }
    };

    try {
      const base = Math.floor(kills / deviceCount);
      await Promise.all(Array.from({ length: deviceCount }, (_, i) => runDevice(i + 1, base + (i < kills % deviceCount ? 1 : 0))));
    } finally {
      await Promise.all(running.map((d) => d.stop()));
    }
    t.log(`kills by state at the kill: ${JSON.stringify(hits)}; outcomes: ${JSON.stringify(outcomes)}`);
    const total = Object.values(hits).reduce((a, b) => a + b, 0);
    t.is(total, kills);
    if (kills >= 50) {
      // The kills must have landed inside the update, not only before or after it.
      t.true((hits.downloading ?? 0) > 0, 'some kills landed while downloading');
      t.true((hits.testing ?? 0) > 0, 'some kills landed while testing');
      t.true((hits.staging ?? 0) + (hits.switching ?? 0) > 0, 'some kills landed while staging or switching');
    }
  });
});
