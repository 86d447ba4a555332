import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import { deviceRecord, hashTree, provisionDevice, readJournalFile, runDaemon } from '../helpers/device.ts';
import { startFaultProxy } from '../helpers/proxy.ts';
import { deploy, expectedTree, publishRelease, type TestArtifact } from '../helpers/release.ts';
import { adminToken, makeTempDir, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { spawn } from 'node:child_process';
import { convoyBin } from '../helpers/device.ts';
import { sha256Hex } from '../helpers/release.ts';

/*
 * A device that lists several servers (device.json `servers`, an edge first and the origin
 * second): when the first is dead, or dies in the middle of a download, convoyd goes on with the
 * next one, resumes the bytes it has, installs and reports; its journal names who served. Real
 * convoyd, real server, real sockets; the "edge" in front is a TCP forwarder to the same server
 * (the same device API and blobs), which the test takes down.
 */

/** A port nothing listens on (bound, then let go): connections to it are refused. */
async function deadPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Rewrites a provisioned device.json to list `servers` instead of the one server. */
async function listServers(dir: string, servers: Array<{ url: string; mqttUrl?: string }>): Promise<void> {
  const file = path.join(dir, 'device.json');
  const { serverUrl: _s, mqttUrl: _m, ...config } = JSON.parse(await fs.readFile(file, 'utf8'));
  await fs.writeFile(file, JSON.stringify({ ...config, servers }));
}

const fastRetries = { retryBaseMs: 200, retryMaxMs: 1_000, stallTimeoutMs: 5_000 };

async function installed(server: TestServer, id: string, version: string): Promise<void> {
  await waitFor(`${id} to report ${version} installed`, async () => ((await deviceRecord(server, id))?.installed?.version === version ? true : undefined), 120_000);
}

test('the first server and broker are dead (closed ports): convoyd uses the next, installs and reports; the journal names the server that served', async (t) => {
  await withServer(t, async (server) => {
    const artifacts: TestArtifact[] = [{ name: 'app.bin', type: 'file', bytes: randomBytes(64 * 1024) }];
    await publishRelease(server, 'app', '1.0.0', artifacts);
    const dir = await provisionDevice(server, 'fo-1', 'shop', { update: fastRetries, tuning: { timeoutSeconds: 5 } });
    const dead = await deadPort();
    await listServers(dir, [
      { url: `http://127.0.0.1:${dead}`, mqttUrl: `mqtt://127.0.0.1:${dead}` },
      { url: server.url, mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}` },
    ]);
    const device = runDaemon('fo-1', dir);
    try {
      await deploy(server, 'app', '1.0.0', 'shop');
      await installed(server, 'fo-1', '1.0.0');
      t.deepEqual(await hashTree(path.join(dir, 'current')), expectedTree(artifacts));
      const journal = await readJournalFile(dir);
      t.deepEqual(journal.update.servedBy, [server.url], 'metadata and bytes came from the second server only');
      const logs = device.logs.join('');
      t.regex(logs, /server unavailable; trying the next/);
      t.regex(logs, /trying the next broker/);
      t.true(logs.includes(`"connected to the broker","url":"mqtt://127.0.0.1:${server.mqttPort}"`));
    } finally {
      await device.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

test('the first server dies in the middle of a download: convoyd resumes the same blob from the next server at the bytes it has, and installs it', async (t) => {
  await withServer(t, async (server) => {
    const size = 4 * 1024 * 1024;
    const artifacts: TestArtifact[] = [{ name: 'big.bin', type: 'file', bytes: randomBytes(size) }];
    await publishRelease(server, 'app', '2.0.0', artifacts);
    // The "edge": every byte of the device API through it, until it goes away.
    const edge = await startFaultProxy(server.httpPort);
    const dir = await provisionDevice(server, 'fo-2', 'shop', { update: { ...fastRetries, bandwidthLimit: 1024 * 1024 }, tuning: { timeoutSeconds: 5 } });
    await listServers(dir, [{ url: edge.url('http') }, { url: server.url, mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}` }]);
    const device = runDaemon('fo-2', dir);
    try {
      await deploy(server, 'app', '2.0.0', 'shop');
      // A quarter of the blob has come through the edge: it dies (its port refuses from now on).
      await waitFor('a quarter of the blob through the edge', () => (edge.bytesDown > size / 4 ? true : undefined), 120_000, 20);
      await edge.down();
      const throughEdge = edge.bytesDown;
      t.true(throughEdge < size, 'the edge died before the blob was through');
      await installed(server, 'fo-2', '2.0.0');
      t.deepEqual(await hashTree(path.join(dir, 'current')), expectedTree(artifacts));

      const journal = await readJournalFile(dir);
      t.deepEqual(journal.update.servedBy, [edge.url('http'), server.url], 'the edge served first, then the origin');
      // The origin was asked only for the rest of the blob: a Range from the bytes on disk.
      const resumed = device.logs
        .join('')
        .split('\n')
        .filter((line) => line.includes('"resumed a download"'))
        .map((line) => JSON.parse(line));
      t.is(resumed.length, 1, device.logs.join(''));
      t.is(resumed[0].server, server.url);
      t.true(resumed[0].from > 0 && resumed[0].from + resumed[0].received === size, JSON.stringify(resumed[0]));
    } finally {
      await device.stop();
      await edge.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});


test('two real servers: the first (a second `convoy serve` on a copy of the origin, as an edge) is killed with -9 mid-download; convoyd resumes from the origin and installs', async (t) => {
  await withServer(t, async (server) => {
    // Large enough that the killed server cannot have pushed it all into the loopback's socket
    // buffers (several MiB) before it died: the rest must come from the origin.
    const size = 16 * 1024 * 1024;
    const artifacts: TestArtifact[] = [{ name: 'big.bin', type: 'file', bytes: randomBytes(size) }];
    await publishRelease(server, 'app', '3.0.0', artifacts);
    const dir = await provisionDevice(server, 'fo-3', 'shop', { update: { ...fastRetries, bandwidthLimit: 2 * 1024 * 1024 }, tuning: { timeoutSeconds: 5 } });
    await deploy(server, 'app', '3.0.0', 'shop');
    // The second server, a real process: the same device API, signed metadata and blobs (its data
    // dir copied from the origin's; on PostgreSQL it shares the origin's database).
    const copy = await makeTempDir('convoy-edge-');
    await fs.cp(server.dataDir, copy, { recursive: true });
    const [httpPort, mqttPort] = [await deadPort(), await deadPort()];
    const edgeUrl = `http://127.0.0.1:${httpPort}`;
    const edge = spawn(process.execPath, [convoyBin, 'serve'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CONVOY_DATA_DIR: copy, CONVOY_HOST: '127.0.0.1', CONVOY_HTTP_PORT: String(httpPort), CONVOY_MQTT_PORT: String(mqttPort), CONVOY_ADMIN_TOKEN: adminToken, ...(server.databaseUrl ? { CONVOY_DATABASE_URL: server.databaseUrl } : {}) },
    });
    const edgeErr: string[] = [];
    edge.stderr!.on('data', (chunk: Buffer) => edgeErr.push(chunk.toString('utf8')));
    const exited = new Promise((resolve) => edge.once('exit', resolve));
    try {
      await waitFor('the second server to serve', async () => ((await fetch(`${edgeUrl}/api/v1/groups/shop/release`, { headers: { authorization: `Bearer ${adminToken}` } })).status === 200 ? true : undefined), 120_000, 200).catch((error) => {
        throw new Error(`${(error as Error).message}\n${edgeErr.join('').slice(-2000)}`);
      });
      await listServers(dir, [{ url: edgeUrl }, { url: server.url, mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}` }]);
      const device = runDaemon('fo-3', dir);
      try {
        const part = path.join(dir, 'downloads', `${sha256Hex(artifacts[0]!.bytes)}.part`);
        await waitFor('the first MiB of the blob from the first server', async () => (((await fs.stat(part).catch(() => undefined))?.size ?? 0) >= 1024 * 1024 ? true : undefined), 120_000, 20);
        edge.kill('SIGKILL');
        await exited;
        await installed(server, 'fo-3', '3.0.0');
        t.deepEqual(await hashTree(path.join(dir, 'current')), expectedTree(artifacts));
        const journal = await readJournalFile(dir);
        t.deepEqual(journal.update.servedBy, [edgeUrl, server.url], 'the first server served, then the origin');
        const resumed = device.logs.join('').split('\n').filter((line) => line.includes('"resumed a download"')).map((line) => JSON.parse(line));
        t.is(resumed.length, 1);
        t.is(resumed[0].server, server.url);
        t.true(resumed[0].from > 0 && resumed[0].from + resumed[0].received === size, JSON.stringify(resumed[0]));
      } finally {
        await device.stop();
      }
    } finally {
      if (edge.exitCode === null && edge.signalCode === null) {
        edge.kill('SIGKILL');
        await exited;
      }
      await fs.rm(copy, { recursive: true, force: true });
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
