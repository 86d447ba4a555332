/**
 * `npm run bench:replicate -- [--to edges|registries] [--size 1G] [--artifacts 10]`: replication
 * of one bundle version to two destinations, against rsync of the same bytes in the same run;
 * then the bytes a run sends when one artifact of ten changed.
 *
 * `--to edges` (the default, issue #12 item 7): two Convoy edges in edge mode, each its own
 * process (`convoy serve --mode edge`) with its own data dir, pulling from the origin over HTTP on
 * loopback (pull mode), every blob hashed and fsynced before it is visible, the TUF metadata
 * verified. Each artifact is a file of random bytes (nothing compresses or deduplicates). The
 * peer is `rsync -a` of the same files to two fresh directories on the same disk.
 *
 * `--to registries`: two CNCF distribution registries (Debian's `docker-registry`) as registry
 * endpoints; each artifact is an image of one layer; the peer rsyncs the image layouts' blobs.
 * Convoy sends over HTTP on loopback (HEAD, POST, PUT per blob) from its blob store.
 *
 * BENCH_DEBUG=1 (edges): each task's duration, the CPU seconds of the origin and of each edge
 * during the run, and per edge where its time went (wake-up, first byte, speed per blob, sha256,
 * fsync, rename, reports, metadata), from the edges' debug log. BENCH_PROFILE=DIR: each edge
 * writes a V8 CPU profile there (run this script with node --cpu-prof for the origin's).
 *
 * Needs rsync (and skopeo and docker-registry for --to registries). Not run by CI.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startServer } from '../../server/app.ts';
import { defaultServerConfig } from '../../server/config.ts';
import { createLogger } from '../../protocol/log.ts';

const run = promisify(execFile);
const say = (line: string) => process.stdout.write(`${line}\n`);
const token = `bench-${randomBytes(16).toString('hex')}`;
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text);
  if (!match) throw new Error(`--size: "${text}" is not a size such as 256M or 1G`);
  return Math.round(Number(match[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']);
}

function options(argv: string[]): { size: number; artifacts: number; to: 'edges' | 'registries' } {
  const result = { size: 1024 ** 3, artifacts: 10, to: 'edges' as 'edges' | 'registries' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--size') result.size = parseSize(argv[++i] ?? '');
    else if (argv[i] === '--artifacts') result.artifacts = Number(argv[++i]);
    else if (argv[i] === '--to' && (argv[i + 1] === 'edges' || argv[i + 1] === 'registries')) result.to = argv[++i] as 'edges' | 'registries';
    else throw new Error(`unknown option ${argv[i]} (usage: --to edges|registries --size 1G --artifacts 10)`);
  }
  return result;
}

/** An OCI layout with one image of one layer of `size` random bytes, written in 64 MiB pieces. */
async function writeImage(dir: string, size: number): Promise<{ digest: string }> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await fs.mkdir(blobs, { recursive: true });
  const hash = createHash('sha256');
  const tmp = path.join(dir, 'layer.tmp');
  const handle = await fs.open(tmp, 'w');
  for (let left = size; left > 0; left -= 64 << 20) {
    const piece = randomBytes(Math.min(left, 64 << 20));
    hash.update(piece);
    await handle.write(piece);
  }
  await handle.close();
  const layer = `sha256:${hash.digest('hex')}`;
  await fs.rename(tmp, path.join(blobs, layer.slice(7)));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] } }));
  await fs.writeFile(path.join(blobs, sha256(config).slice(7)), config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size }] }));
  await fs.writeFile(path.join(blobs, sha256(manifest).slice(7)), manifest);
  await fs.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'build' } }] }));
  return { digest: sha256(manifest) };
}

async function startRegistry(dir: string): Promise<{ url: string; child: ChildProcess }> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'config.yml'), `version: 0.1\nlog: {level: info}\nstorage: {filesystem: {rootdirectory: ${dir}/data}}\nhttp: {addr: "127.0.0.1:0"}\n`);
  const child = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => reject(new Error(`docker-registry exited: ${seen.slice(-300)}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function main(): Promise<void> {
  const { size, artifacts, to } = options(process.argv.slice(2));
  if (to === 'edges') return toEdges(size, artifacts);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-bench-replicate-'));
  const children: ChildProcess[] = [];
  const server = await startServer(
    { ...defaultServerConfig, dataDir: path.join(work, 'convoy'), host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: token },
    { log: createLogger({ namespace: 'server', level: 'warn', write: (line) => process.stderr.write(line) }) },
  );
  const api = async (method: string, url: string, json?: unknown) => {
    const response = await fetch(`${server.url}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
    const body = (await response.json()) as any;
    if (response.status >= 300) throw new Error(`${method} ${url}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  };
  const push = (dir: string, image: string, version: string) => run('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--dest-creds', `admin:${token}`, `oci:${dir}:build`, `docker://127.0.0.1:${server.httpPort}/shop/${image}:${version}`]);
  const waitRun = async (id: number) => {
    for (;;) {
      const detail = await api('GET', `/api/v1/bundles/shop/replication-runs/${id}`);
      if (detail.run.status !== 'running') return detail;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  try {
    say(`bundle: ${artifacts} images of ${(size / artifacts / 1024 ** 2).toFixed(1)} MiB (total ${(size / 1024 ** 2).toFixed(0)} MiB), two destinations`);
    await api('POST', '/api/v1/bundles', { name: 'shop' });
    const layouts: string[] = [];
    for (let i = 0; i < artifacts; i++) {
      const dir = path.join(work, 'src', `img-${i}`);
      await writeImage(dir, Math.floor(size / artifacts));
      await push(dir, `img-${i}`, '1.0.0');
      layouts.push(dir);
    }
    await api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve');
    const registries = [await startRegistry(path.join(work, 'r1')), await startRegistry(path.join(work, 'r2'))];
    children.push(...registries.map((r) => r.child));
    await api('POST', '/api/v1/registries', { name: 'r1', url: registries[0]!.url });
    await api('POST', '/api/v1/registries', { name: 'r2', url: registries[1]!.url });
    await api('POST', '/api/v1/bundles/shop/replication-policies', { name: 'both', destinations: ['r1', 'r2'] });

    let started = performance.now();
    const first = await waitRun((await api('POST', '/api/v1/bundles/shop/replication-policies/both/runs', { version: '1.0.0' })).run.id);
    const convoyMs = performance.now() - started;
    if (first.run.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(first.tasks.filter((t: any) => t.error))}`);

    started = performance.now();
    for (const target of ['rsync-1', 'rsync-2']) {
      await fs.mkdir(path.join(work, target), { recursive: true });
      await run('rsync', ['-a', ...layouts.map((dir) => `${dir}/blobs`), path.join(work, target)], { maxBuffer: 1 << 20 }).catch(async () => {
        for (const [i, dir] of layouts.entries()) await run('rsync', ['-a', `${dir}/`, path.join(work, target, `img-${i}`)]);
      });
    }
    const rsyncMs = performance.now() - started;
    say(`first replication: convoy ${(convoyMs / 1000).toFixed(2)} s (${first.run.bytes} bytes, ${first.tasks.length} tasks), rsync ${(rsyncMs / 1000).toFixed(2)} s; ratio ${(convoyMs / rsyncMs).toFixed(2)} (target <= 1.3)`);

    // One artifact of ten changes: 1.1.0 is 1.0.0 with img-0 replaced.
    await api('POST', '/api/v1/bundles/shop/versions', { version: '1.1.0', copyFrom: '1.0.0' });
    const changed = path.join(work, 'src', 'img-0-new');
    await writeImage(changed, Math.floor(size / artifacts));
    await push(changed, 'img-0', '1.1.0');
    await api('POST', '/api/v1/bundles/shop/versions/1.1.0/approve');
    const second = await waitRun((await api('POST', '/api/v1/bundles/shop/replication-policies/both/runs', { version: '1.1.0' })).run.id);
    const changedBytes = Math.floor(size / artifacts);
    const manifests = second.tasks.filter((t: any) => t.kind === 'manifest').reduce((sum: number, t: any) => sum + t.bytes, 0);
    const blobBytes = second.run.bytes - manifests;
    say(`one of ${artifacts} changed: ${second.run.bytes} bytes sent to two destinations = ${blobBytes} blob bytes (changed artifact: 2 x ${changedBytes} + its config) + ${manifests} manifest bytes (${second.tasks.filter((t: any) => t.status === 'skipped').length} blob tasks skipped)`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await server.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** A random file of `size` bytes written in 64 MiB pieces; its digest. */
async function writeRandomFile(file: string, size: number): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const hash = createHash('sha256');
  const handle = await fs.open(file, 'w');
  for (let left = size; left > 0; left -= 64 << 20) {
    const piece = randomBytes(Math.min(left, 64 << 20));
    hash.update(piece);
    await handle.write(piece);
  }
  await handle.close();
  return `sha256:${hash.digest('hex')}`;
}

const debug = Boolean(process.env.BENCH_DEBUG);

/** An edge's debug log lines (BENCH_DEBUG=1), parsed, with the time each was written. */
type EdgeEvent = { time: string; msg: string; [field: string]: unknown };

/** An edge as an operator runs it: its own process and data dir, pulling from the origin. */
async function spawnEdge(env: Record<string, string>, events: EdgeEvent[] = []): Promise<ChildProcess> {
  const cli = path.resolve(import.meta.dirname, '../../cli/main.ts');
  // BENCH_PROFILE=DIR: each edge writes a V8 CPU profile there when it stops (the origin is this
  // process: run the bench with node --cpu-prof for its own).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', cli, 'serve', '--mode', 'edge'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CONVOY_HOST: '127.0.0.1', CONVOY_HTTP_PORT: '0', CONVOY_MQTT_PORT: '0', CONVOY_LOG_LEVEL: debug ? 'debug' : 'warn', CONVOY_EDGE_POLL_MS: '50', ...env } });
  let pending = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (!debug) return void process.stderr.write(chunk);
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const event = (() => {
        try {
          return JSON.parse(line) as EdgeEvent;
        } catch {
          return undefined;
        }
      })();
      if (event?.level === 'debug') events.push(event);
      else process.stderr.write(`${line}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString('utf8').includes('serving devices') && resolve());
    child.once('exit', (code) => reject(new Error(`edge exited with ${code}`)));
  });
  return child;
}

/** CPU seconds so far (user, system) of this process and of each child, from /proc (Linux). */
async function cpuSeconds(children: readonly ChildProcess[]): Promise<[number, number][]> {
  const own = process.cpuUsage();
  const ticks = 100; // USER_HZ on Linux
  const others = await Promise.all(
    children.map(async (child): Promise<[number, number]> => {
      const stat = await fs.readFile(`/proc/${child.pid}/stat`, 'utf8').catch(() => '');
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [Number(fields[11]) / ticks, Number(fields[12]) / ticks];
    }),
  );
  return [[own.user / 1e6, own.system / 1e6], ...others];
}

/** `1.84 (user 1.10, system 0.74)`: CPU seconds between two readings of one process. */
function cpuBetween(before: [number, number], after: [number, number]): string {
  const user = after[0] - before[0];
  const system = after[1] - before[1];
  return `${(user + system).toFixed(2)} (user ${user.toFixed(2)}, system ${system.toFixed(2)})`;
}

/** One line on where an edge's time went during the run, from its debug log. */
function summarizeEdge(events: readonly EdgeEvent[], startedAt: number): string {
  const at = (event: EdgeEvent) => Date.parse(event.time) - startedAt;
  const after = events.filter((event) => at(event) >= -5);
  const woke = after.find((event) => event.msg === 'long poll answered' || event.msg === 'tasks received');
  const blobs = after.filter((event) => event.msg === 'blob fetched' && Number(event.bytes) > 1 << 20);
  const sum = (key: string) => blobs.reduce((total, event) => total + Number(event[key] ?? 0), 0);
  const reports = after.filter((event) => event.msg === 'task reported');
  const metadata = after.find((event) => event.msg === 'metadata published');
  const last = after.at(-1);
  return [
    `woke ${woke ? at(woke) : '?'} ms after the run started`,
    `${blobs.length} large blobs: first byte avg ${(sum('firstByteMs') / Math.max(1, blobs.length)).toFixed(0)} ms`,
    `transfer ${blobs.map((event) => event.mbPerSecond).join('/')} MB/s each`,
    `hashing ${sum('hashMs')} ms, final fsync ${sum('syncMs')} ms, rename ${sum('renameMs')} ms in all`,
    `${reports.length} reports ${reports.reduce((total, event) => total + Number(event.reportMs), 0)} ms in all`,
    `last blob at ${blobs.length ? Math.max(...blobs.map(at)) : '?'} ms`,
    `metadata ${metadata ? `${metadata.ms} ms, published at ${at(metadata)} ms` : '?'}`,
    `last event ${last ? at(last) : '?'} ms`,
  ].join('; ');
}

async function toEdges(size: number, artifacts: number): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-bench-edges-'));
  const children: ChildProcess[] = [];
  const server = await startServer(
    { ...defaultServerConfig, dataDir: path.join(work, 'convoy'), host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: token },
    { log: createLogger({ namespace: 'server', level: 'warn', write: (line) => process.stderr.write(line) }) },
  );
  const api = async (method: string, url: string, json?: unknown, body?: Buffer) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    if (body) headers['content-type'] = 'application/octet-stream';
    const response = await fetch(`${server.url}${url}`, { method, headers, body: json !== undefined ? JSON.stringify(json) : (body ?? null) });
    const text = await response.text();
    if (response.status >= 300) throw new Error(`${method} ${url}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const addFile = async (version: string, name: string, file: string, digest: string) => {
    const bytes = await fs.readFile(file);
    await api('PUT', `/api/v1/blobs/${digest}`, undefined, bytes);
    await api('PUT', `/api/v1/bundles/shop/versions/${version}/artifacts/${name}`, { type: 'file', digest, size: bytes.length });
  };
  // Asked every 100 ms: the run's own finishedAt gives the end (same clock), so asking more
  // often would only add the bench's queries to the origin's load while it serves the edges.
  const waitRun = async (id: number) => {
    for (;;) {
      const detail = await api('GET', `/api/v1/bundles/shop/replication-runs/${id}`);
      if (detail.run.status !== 'running') return detail;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  try {
    const each = Math.floor(size / artifacts);
    say(`bundle: ${artifacts} files of ${(each / 1024 ** 2).toFixed(1)} MiB (total ${(size / 1024 ** 2).toFixed(0)} MiB), two Convoy edges (pull mode)`);
    await api('POST', '/api/v1/bundles', { name: 'shop' });
    await api('POST', '/api/v1/bundles/shop/versions', { version: '1.0.0' });
    const files: string[] = [];
    for (let i = 0; i < artifacts; i++) {
      const file = path.join(work, 'src', `part-${i}.bin`);
      await addFile('1.0.0', `part-${i}.bin`, file, await writeRandomFile(file, each));
      files.push(file);
    }
    await api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve');
    const rootFile = path.join(work, 'root.json');
    await fs.writeFile(rootFile, Buffer.from(await (await fetch(`${server.url}/tuf/root.json`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer()));
    const events = new Map<string, EdgeEvent[]>();
    for (const name of ['edge-1', 'edge-2']) {
      const created = await api('POST', '/api/v1/edges', { name });
      events.set(name, []);
      children.push(await spawnEdge({ CONVOY_UPSTREAM_URL: server.url, CONVOY_EDGE_TOKEN: created.token, CONVOY_UPSTREAM_ROOT: rootFile, CONVOY_DATA_DIR: path.join(work, name) }, events.get(name)));
    }
    await api('POST', '/api/v1/bundles/shop/replication-policies', { name: 'both', destinations: ['edge-1', 'edge-2'], mode: 'pull' });

    // The sources and the origin's store were just written: their writeback is the setup's, not
    // the copy's, so neither Convoy nor rsync pays for it.
    await run('sync');
    const cpuBefore = await cpuSeconds(children);
    const profileFrom = process.hrtime.bigint() / 1000n;
    const startedAt = Date.now();
    const first = await waitRun((await api('POST', '/api/v1/bundles/shop/replication-policies/both/runs', { version: '1.0.0' })).run.id);
    const convoyMs = Date.parse(first.run.finishedAt) - startedAt;
    const cpuAfter = await cpuSeconds(children);
    if (first.run.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(first.tasks.filter((t: any) => t.error))}`);
    if (debug) {
      for (const t of first.tasks) say(`  ${t.destination.name} ${t.kind} ${t.ref.slice(0, 20)} ${t.bytes} ${t.durationMs} ms`);
      if (process.env.BENCH_PROFILE) say(`  profile window (µs, as in --cpu-prof): ${profileFrom} ${process.hrtime.bigint() / 1000n}`);
      say(`  CPU seconds during the run: origin (and this script) ${cpuBetween(cpuBefore[0]!, cpuAfter[0]!)}, ${[...events.keys()].map((name, i) => `${name} ${cpuBetween(cpuBefore[i + 1]!, cpuAfter[i + 1]!)}`).join(', ')}; wall ${(convoyMs / 1000).toFixed(2)} s`);
      for (const [name, list] of events) say(`  ${name}: ${summarizeEdge(list, startedAt)}`);
    }

    const started = performance.now();
    for (const target of ['rsync-1', 'rsync-2']) {
      await fs.mkdir(path.join(work, target), { recursive: true });
      await run('rsync', ['-a', ...files, path.join(work, target)]);
    }
    const rsyncMs = performance.now() - started;
    // The edges fsync every blob before it becomes visible (a power cut never leaves a torn blob
    // under a digest name); rsync leaves its bytes in the page cache. The same copy made durable:
    await run('sync');
    const rsyncSyncedMs = performance.now() - started;
    say(`first replication: convoy ${(convoyMs / 1000).toFixed(2)} s (${first.run.bytes} bytes, ${first.tasks.length} tasks), rsync ${(rsyncMs / 1000).toFixed(2)} s (${(rsyncSyncedMs / 1000).toFixed(2)} s with sync); ratio ${(convoyMs / rsyncMs).toFixed(2)} (target <= 1.3), ${(convoyMs / rsyncSyncedMs).toFixed(2)} against rsync + sync; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`);

    // One artifact of ten changes: 1.1.0 is 1.0.0 with part-0 replaced.
    await api('POST', '/api/v1/bundles/shop/versions', { version: '1.1.0', copyFrom: '1.0.0' });
    const changed = path.join(work, 'src', 'part-0-new.bin');
    await addFile('1.1.0', 'part-0.bin', changed, await writeRandomFile(changed, each));
    await api('POST', '/api/v1/bundles/shop/versions/1.1.0/approve');
    const second = await waitRun((await api('POST', '/api/v1/bundles/shop/replication-policies/both/runs', { version: '1.1.0' })).run.id);
    if (second.run.status !== 'succeeded') throw new Error(`second run failed: ${JSON.stringify(second.tasks.filter((t: any) => t.error))}`);
    const metadata = second.tasks.filter((t: any) => t.kind === 'metadata').reduce((sum: number, t: any) => sum + t.bytes, 0);
    const blobBytes = second.run.bytes - metadata;
    say(`one of ${artifacts} changed: ${second.run.bytes} bytes sent to two edges = ${blobBytes} blob bytes (2 x the changed ${each}-byte file + 2 x the new bundle manifest) + ${metadata} TUF metadata bytes (${second.tasks.filter((t: any) => t.status === 'skipped').length} blob tasks skipped)`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await server.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
