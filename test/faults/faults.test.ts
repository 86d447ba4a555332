import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { DeviceConfigInput } from '../../protocol/device-config.ts';
import { deviceRecord, hashTree, provisionDevice, readJournalFile, runDaemon, type TestDevice } from '../helpers/device.ts';
import { startFaultProxy } from '../helpers/proxy.ts';
import { archiveArtifact, deploy, expectedTree, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Faults other than kill -9, each on real daemon processes, a real server and real sockets: a
 * link that drops every few hundred KiB, a flipped byte, a half-open connection, a full disk, a
 * failing and a hanging health check, the update lock, a broker that goes away, torn TUF
 * metadata. After each, the device runs the old or the new release intact and says which.
 */

const fastRetries = { retryBaseMs: 100, retryMaxMs: 1_000, stallTimeoutMs: 1_000 };

async function release(label: string, health = 'exit 0'): Promise<TestArtifact[]> {
  return [
    await archiveArtifact('app', { 'bin/pos': randomBytes(64 * 1024), 'etc/pos.conf': Buffer.from(`release=${label}\n`) }),
    { name: 'data.bin', type: 'file', bytes: randomBytes(1024 * 1024) },
    { name: 'health.sh', type: 'file', bytes: Buffer.from(`#!/bin/sh\n${health}\n`) },
  ];
}

interface Harness {
  server: TestServer;
  id: string;
  group: string;
  dir: string;
  daemon: TestDevice;
  restart(env?: Record<string, string>): Promise<void>;
  /** Deploys and waits until the journal ends that deployment; returns the journal. */
  deployAndSettle(version: string, timeoutMs?: number): Promise<any>;
  expectRunning(version: string, releases: Record<string, TestArtifact[]>): Promise<void>;
}

async function withDevice(
  t: ExecutionContext,
  server: TestServer,
  options: { update?: DeviceConfigInput['update']; serverUrl?: string; mqttUrl?: string; env?: Record<string, string> },
  run: (h: Harness) => Promise<void>,
): Promise<void> {
  const id = 'till-1';
  const group = 'shop';
  const dir = await provisionDevice(server, id, group, {
    serverUrl: options.serverUrl,
    mqttUrl: options.mqttUrl,
    update: { ...fastRetries, healthCheck: { command: ['sh', 'current/health.sh'], timeoutMs: 2_000, retries: 1, intervalMs: 100 }, ...options.update },
  });
  const h: Harness = {
    server,
    id,
    group,
    dir,
    daemon: runDaemon(id, dir, options.env),
    async restart(env) {
      await h.daemon.stop();
      h.daemon = runDaemon(id, dir, env ?? options.env);
    },
    async deployAndSettle(version, timeoutMs = 120_000) {
      const deploymentId = await deploy(server, 'pos-app', version, group);
      return waitFor(
        `deployment of ${version} to end`,
        async () => {
          const j = await readJournalFile(dir);
          return j?.update?.deploymentId === deploymentId && ['committed', 'rolled-back', 'failed'].includes(j.update.state) ? j : undefined;
        },
        timeoutMs,
      );
    },
    async expectRunning(version, releases) {
      t.deepEqual(await hashTree(path.join(dir, 'current')), expectedTree(releases[version]!), `current holds exactly ${version}`);
      const record = await waitFor(`the server to show ${version}`, async () => {
        const r = await deviceRecord(server, id);
        return r?.installed?.version === version ? r : undefined;
      });
      t.is(record.installed.version, version);
    },
  };
  try {
    await run(h);
  } catch (error) {
    t.log(h.daemon.logs.join('').slice(-5000));
    throw error;
  } finally {
    await h.daemon.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('a link that drops every 200 KiB: the download resumes where it ended, nothing is fetched twice', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1') };
    await publishRelease(server, 'pos-app', '1.0.0', releases['1.0.0']);
    const proxy = await startFaultProxy(server.httpPort, { cutEvery: 200 * 1024 });
    try {
      await withDevice(t, server, { serverUrl: proxy.url('http') }, async (h) => {
        const journal = await h.deployAndSettle('1.0.0');
        t.is(journal.update.state, 'committed');
        await h.expectRunning('1.0.0', releases);
        t.true(proxy.cuts >= 5, `${proxy.cuts} cuts`);
        t.true(h.daemon.logs.join('').includes('resumed a download'));
        // Everything that crossed the link, over what had to: resumes re-send nothing.
        const payload = releases['1.0.0'].reduce((sum, a) => sum + a.bytes.length, 0);
        t.true(proxy.bytesDown < payload * 1.15, `${proxy.bytesDown} bytes for ${payload}`);
      });
    } finally {
      await proxy.close();
    }
  });
});

test('a flipped byte in transit is caught by the signed hash and fetched again', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1') };
    await publishRelease(server, 'pos-app', '1.0.0', releases['1.0.0']);
    const proxy = await startFaultProxy(server.httpPort, { corruptAt: 300 * 1024 });
    try {
      await withDevice(t, server, { serverUrl: proxy.url('http') }, async (h) => {
        const journal = await h.deployAndSettle('1.0.0');
        t.true(proxy.corrupted);
        t.is(journal.update.state, 'committed');
        t.true(h.daemon.logs.join('').includes('do not match the signed hash'));
        await h.expectRunning('1.0.0', releases);
      });
    } finally {
      await proxy.close();
    }
  });
});

test('a half-open connection (bytes stop, socket stays open) is detected and the download resumes', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1') };
    await publishRelease(server, 'pos-app', '1.0.0', releases['1.0.0']);
    const proxy = await startFaultProxy(server.httpPort, { stallAt: 400 * 1024 });
    try {
      await withDevice(t, server, { serverUrl: proxy.url('http') }, async (h) => {
        const journal = await h.deployAndSettle('1.0.0');
        t.true(proxy.stalled);
        t.is(journal.update.state, 'committed');
        t.regex(h.daemon.logs.join(''), /stalled connection/);
        await h.expectRunning('1.0.0', releases);
      });
    } finally {
      await proxy.close();
    }
  });
});

test('a full disk: nothing is fetched, the device keeps its release and keeps saying why; once space is back it updates', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1'), '2.0.0': await release('2') };
    for (const [v, a] of Object.entries(releases)) await publishRelease(server, 'pos-app', v, a);
    await withDevice(t, server, {}, async (h) => {
      t.is((await h.deployAndSettle('1.0.0')).update.state, 'committed');
      // The data file system "has" less free space than the reserve the device must keep.
      const configFile = path.join(h.dir, 'device.json');
      const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
      await fs.writeFile(configFile, JSON.stringify({ ...config, update: { ...config.update, reserveBytes: 2 ** 50 } }));
      await h.restart();
      await deploy(server, 'pos-app', '2.0.0', h.group);
      const record = await waitFor('the device to report the full disk', async () => {
        const r = await deviceRecord(server, h.id);
        return r?.error?.code === 'insufficient_space' ? r : undefined;
      });
      t.is(record.state, 'downloading');
      t.deepEqual(record.target, { bundle: 'pos-app', version: '2.0.0' });
      t.regex(record.error.message, /bytes free/);
      await h.expectRunning('1.0.0', releases);
      // Only the signed manifest (a few hundred bytes) was fetched, no artifact.
      const downloaded = await fs.readdir(path.join(h.dir, 'downloads')).catch(() => [] as string[]);
      let bytes = 0;
      for (const name of downloaded) bytes += (await fs.stat(path.join(h.dir, 'downloads', name))).size;
      t.true(bytes < 10_000, `${bytes} bytes downloaded`);
      // Space comes back: the same update goes on.
      await fs.writeFile(configFile, JSON.stringify(config));
      await h.restart();
      await waitFor('2.0.0 to be installed', async () => ((await readJournalFile(h.dir))?.update?.state === 'committed' ? true : undefined));
      await h.expectRunning('2.0.0', releases);
    });
  });
});

test('a failing health check rolls back to the previous release, runs the rollback hooks, reports why', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1'), '2.0.0': await release('2', 'echo "pos app does not answer" >&2; exit 3') };
    for (const [v, a] of Object.entries(releases)) await publishRelease(server, 'pos-app', v, a);
    const hooks = await fs.mkdtemp(path.join((await import('node:os')).tmpdir(), 'convoy-hooks-'));
    for (const point of ['Download_Enter', 'Install_Enter', 'Install_Leave', 'Commit_Enter', 'Rollback_Enter_10_log', 'Rollback_Leave']) {
      await fs.writeFile(path.join(hooks, point), `#!/bin/sh\necho "${point} $CONVOY_VERSION" >> "${hooks}/ran.log"\n`, { mode: 0o755 });
    }
    try {
      await withDevice(t, server, { update: { hooksDir: hooks } }, async (h) => {
        t.is((await h.deployAndSettle('1.0.0')).update.state, 'committed');
        await fs.writeFile(path.join(hooks, 'ran.log'), '');
        const journal = await h.deployAndSettle('2.0.0');
        t.is(journal.update.state, 'rolled-back');
        t.is(journal.update.error.code, 'health_check_failed');
        t.regex(journal.update.error.message, /exited with 3: pos app does not answer/);
        await h.expectRunning('1.0.0', releases);
        const record = await waitFor('rolled-back report', async () => {
          const r = await deviceRecord(server, h.id);
          return r?.state === 'rolled-back' ? r : undefined;
        });
        t.is(record.error.code, 'health_check_failed');
        t.deepEqual(record.target, { bundle: 'pos-app', version: '2.0.0' });
        const ran = (await fs.readFile(path.join(hooks, 'ran.log'), 'utf8')).trim().split('\n');
        t.deepEqual(ran, ['Download_Enter 2.0.0', 'Install_Enter 2.0.0', 'Install_Leave 2.0.0', 'Rollback_Enter_10_log 2.0.0', 'Rollback_Leave 2.0.0']);
        // The same deployment is not retried after a restart; a new one of the same version is.
        await h.restart();
        await new Promise((resolve) => setTimeout(resolve, 1500));
        t.is((await readJournalFile(h.dir)).update.state, 'rolled-back');
      });
    } finally {
      await fs.rm(hooks, { recursive: true, force: true });
    }
  });
});

test('a hanging health check times out (its processes killed) and rolls back', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1'), '2.0.0': await release('2', 'sleep 600') };
    for (const [v, a] of Object.entries(releases)) await publishRelease(server, 'pos-app', v, a);
    await withDevice(t, server, { update: { healthCheck: { command: ['sh', 'current/health.sh'], timeoutMs: 500, retries: 1, intervalMs: 50 } } }, async (h) => {
      t.is((await h.deployAndSettle('1.0.0')).update.state, 'committed');
      const journal = await h.deployAndSettle('2.0.0');
      t.is(journal.update.state, 'rolled-back');
      t.regex(journal.update.error.message, /did not finish within 500 ms \(after 2 attempts\)/);
      await h.expectRunning('1.0.0', releases);
    });
  });
});

test('the update lock defers the switch until the POS application releases it', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1') };
    await publishRelease(server, 'pos-app', '1.0.0', releases['1.0.0']);
    await withDevice(t, server, {}, async (h) => {
      // The test process plays the POS application in a sale: its pid in the lock file.
      await fs.writeFile(path.join(h.dir, 'update.lock'), `${process.pid}\n`);
      await deploy(server, 'pos-app', '1.0.0', h.group);
      const record = await waitFor('the device to wait for the lock', async () => {
        const r = await deviceRecord(server, h.id);
        return r?.state === 'waiting' ? r : undefined;
      });
      t.is(record.installed, null);
      // The daemon's log reaches this process through a pipe, the report through MQTT and the
      // server: either may arrive first, so the log line is waited for, not read once.
      await waitFor('the log to say who holds the lock', () => (h.daemon.logs.join('').includes(`update lock is held by process ${process.pid}`) ? true : undefined));
      t.is((await readJournalFile(h.dir)).update.state, 'switching');
      await t.throwsAsync(fs.readlink(path.join(h.dir, 'current')));
      await fs.rm(path.join(h.dir, 'update.lock'));
      await waitFor('the switch', async () => ((await readJournalFile(h.dir))?.update?.state === 'committed' ? true : undefined));
      await h.expectRunning('1.0.0', releases);
    });
  });
});

// The verifying step trusts a blob the same process just downloaded and verified (it is not read
// a second time); after a restart nothing is trusted: a blob torn or flipped while the daemon was
// down is caught before anything is staged from it, and fetched again.
test('a download corrupted on disk while the daemon was down (restart in verifying) is caught and fetched again', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1') };
    await publishRelease(server, 'pos-app', '1.0.0', releases['1.0.0']);
    await withDevice(t, server, {}, async (h) => {
      // Held at the switch by the update lock: everything is downloaded and verified by then.
      await fs.writeFile(path.join(h.dir, 'update.lock'), `${process.pid}\n`);
      await deploy(server, 'pos-app', '1.0.0', h.group);
      await waitFor('the switch to wait for the lock', async () => ((await readJournalFile(h.dir))?.update?.state === 'switching' ? true : undefined));
      await h.daemon.kill();
      // The power went while verifying: the journal says so, and a byte of data.bin flipped.
      const journal = await readJournalFile(h.dir);
      journal.update.state = 'verifying';
      await fs.writeFile(path.join(h.dir, 'journal.json'), JSON.stringify(journal));
      const data = journal.update.artifacts.find((a: { name: string }) => a.name === 'data.bin');
      const file = path.join(h.dir, 'downloads', data.sha256);
      const bytes = await fs.readFile(file);
      bytes[1000] = bytes[1000]! ^ 0xff;
      await fs.writeFile(file, bytes);
      await fs.rm(path.join(h.dir, 'update.lock'));
      await h.restart();
      const done = await waitFor('the update to end', async () => {
        const j = await readJournalFile(h.dir);
        return ['committed', 'rolled-back', 'failed'].includes(j?.update?.state) ? j : undefined;
      });
      t.is(done.update.state, 'committed');
      // verifying found the flipped byte and sent the update back to downloading, once.
      t.regex(h.daemon.logs.join(''), /"msg":"update state","from":"verifying","to":"downloading"/);
      t.is(done.update.digestFailures, 1);
      await h.expectRunning('1.0.0', releases);
    });
  });
});

test('the broker goes away mid-update: the update finishes, a release deployed meanwhile is polled, reports arrive when it is back', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1'), '2.0.0': await release('2') };
    for (const [v, a] of Object.entries(releases)) await publishRelease(server, 'pos-app', v, a);
    const broker = await startFaultProxy(server.mqttPort);
    try {
      await withDevice(t, server, { mqttUrl: broker.url('mqtt'), update: { bandwidthLimit: 1_000_000, pollIntervalMs: 1_000 } }, async (h) => {
        await waitFor('connected', async () => ((await deviceRecord(server, h.id))?.state ? true : undefined));
        const deploymentId = await deploy(server, 'pos-app', '1.0.0', h.group);
        await waitFor('download to start', async () => ((await readJournalFile(h.dir))?.update?.state === 'downloading' ? true : undefined));
        await broker.down();
        await waitFor('1.0.0 committed without a broker', async () => {
          const j = await readJournalFile(h.dir);
          return j?.update?.deploymentId === deploymentId && j.update.state === 'committed' ? true : undefined;
        });
        // Deployed while the broker is away: the device polls the server and still gets it.
        const second = await deploy(server, 'pos-app', '2.0.0', h.group);
        await waitFor('2.0.0 committed through polling', async () => {
          const j = await readJournalFile(h.dir);
          return j?.update?.deploymentId === second && j.update.state === 'committed' ? true : undefined;
        });
        t.not((await deviceRecord(server, h.id)).installed?.version, '2.0.0', 'no report could get through');
        await broker.up();
        await h.expectRunning('2.0.0', releases);
      });
    } finally {
      await broker.close();
    }
  });
});

test('torn TUF metadata (power loss during a refresh) is restored from the last good copy', async (t) => {
  await withServer(t, async (server) => {
    const releases = { '1.0.0': await release('1'), '2.0.0': await release('2') };
    for (const [v, a] of Object.entries(releases)) await publishRelease(server, 'pos-app', v, a);
    await withDevice(t, server, {}, async (h) => {
      t.is((await h.deployAndSettle('1.0.0')).update.state, 'committed');
      await h.daemon.kill();
      for (const name of ['root.json', 'timestamp.json', 'targets.json']) {
        const file = path.join(h.dir, 'tuf', name);
        const bytes = await fs.readFile(file);
        await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
      }
      await h.restart();
      t.is((await h.deployAndSettle('2.0.0')).update.state, 'committed');
      await h.expectRunning('2.0.0', releases);
      t.regex(h.daemon.logs.join(''), /restored torn TUF metadata/);
    });
  });
});
