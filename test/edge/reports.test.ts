import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import test from 'ava';
import { deviceRecord, provisionDevice, readCurrent, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { addEdge, copyRoot, finishedRun, runsOf, startCountingProxy, startTestEdge } from './helpers.ts';

/*
 * A device entirely behind an edge (HTTP and MQTT both at the edge): its release notice comes
 * through the edge, its reports reach the origin through the edge, and while the uplink is cut
 * they are stored at the edge and reach the origin once it is back, each once.
 */

/** The origin's log lines of status reports from one device, by sequence number. */
function reportsSeen(origin: TestServer, device: string): Map<number, number> {
  const seen = new Map<number, number>();
  for (const line of origin.logs) {
    if (!line.includes('"msg":"device status"') || !line.includes(`"device":"${device}"`)) continue;
    const seq = Number(/"seq":(\d+)/.exec(line)?.[1]);
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
  }
  return seen;
}

test('a device behind an edge installs and reports through it; reports sent while the uplink is down reach the origin once it is back, each once', async (t) => {
  const work = await makeTempDir('convoy-edge-reports-');
  await withServer(t, async (origin) => {
    const proxy = await startCountingProxy(origin.httpPort);
    const edge = await startTestEdge({ upstreamUrl: proxy.url, token: await addEdge(origin, 'shop-eu'), rootFile: await copyRoot(origin, work) });
    let daemon: ReturnType<typeof runDaemon> | undefined;
    let dir: string | undefined;
    try {
      t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
      t.is((await origin.api('POST', '/api/v1/bundles/pos/replication-policies', { json: { name: 'shops', destinations: ['shop-eu'], mode: 'pull', trigger: { type: 'approval' } } })).status, 201);
      const bytes = randomBytes(64 * 1024);
      await publishRelease(origin, 'pos', '1.0.0', [{ name: 'app.bin', type: 'file', bytes }]);
      t.is((await finishedRun(origin, 'pos', (await runsOf(origin, 'pos'))[0]!.id)).run.status, 'succeeded');
      await deploy(origin, 'pos', '1.0.0', 'shop-tills');

      // Both of the device's URLs name the edge: the origin is never contacted by the device.
      dir = await provisionDevice(origin, 'till-r', 'shop-tills', { serverUrl: edge.url, mqttUrl: `mqtt://127.0.0.1:${edge.mqttPort}` });
      daemon = runDaemon('till-r', dir);
      await waitFor('till-r on 1.0.0, as the origin knows it', async () => ((await deviceRecord(origin, 'till-r'))?.installed?.version === '1.0.0' ? true : undefined));
      t.deepEqual((await readCurrent(dir)).get('app.bin'), bytes);
      await daemon.stop();
      // Every report of that first run forwarded (the last ones may still be on their way when it
      // stops), so the origin's log is complete before the link goes down.
      let last = -1;
      await waitFor('the first run’s reports forwarded and recorded', async () => {
        const count = reportsSeen(origin, 'till-r').size;
        const settled = count === last && (await edge.reports.pending()) === 0;
        last = count;
        return settled ? true : undefined;
      }, 30_000, 500);

      // The uplink goes down; the device restarts and reports (its credential verdict is cached at the edge).
      proxy.down = true;
      const before = new Set(reportsSeen(origin, 'till-r').keys());
      daemon = runDaemon('till-r', dir);
      await waitFor('a report stored at the edge', async () => ((await edge.reports.pending()) > 0 ? true : undefined));
      await daemon.stop();
      const stored = await edge.reports.pending();
      t.deepEqual(new Set(reportsSeen(origin, 'till-r').keys()), before, 'nothing reached the origin while the link was down');

      proxy.down = false;
      await waitFor('the stored reports forwarded', async () => ((await edge.reports.pending()) === 0 ? true : undefined));
      await waitFor('the origin to record them', async () => ([...reportsSeen(origin, 'till-r').keys()].some((seq) => !before.has(seq)) ? true : undefined));
      const after = reportsSeen(origin, 'till-r');
      t.true(stored > 0);
      for (const [seq, count] of after) t.is(count, 1, `report ${seq} was recorded once`);
    } finally {
      await daemon?.stop();
      await edge.close();
      await proxy.close();
      if (dir) await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
