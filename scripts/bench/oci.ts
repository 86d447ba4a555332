/**
 * `npm run bench:oci -- [--size 1G] [--layers 4] [--runs 1]`: Convoy's registry against the
 * reference registry (Debian's `docker-registry`, CNCF distribution), measured in the same run.
 *
 * Builds an OCI image layout of --size bytes in --layers gzip layers (random content, so nothing
 * deduplicates or compresses), then for each run starts both registries on fresh data dirs and
 * times `skopeo copy` pushing the image into each and pulling it back out of each. Prints the
 * times, Convoy/reference ratios (the issue's target: at most 1.2) and each server's peak RSS
 * (VmHWM; target for Convoy: under 150 MB).
 *
 * Needs skopeo and docker-registry (`apt-get install -y skopeo docker-registry`). Not run by CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { freePort } from '../../test/helpers/ports.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const token = `bench-${randomBytes(16).toString('hex')}`;
const say = (line: string) => process.stdout.write(`${line}\n`);

function parseArgs(argv: string[]): { size: number; layers: number; runs: number; keep: boolean; nodeOptions: string } {
  const options = { size: 1024 ** 3, layers: 4, runs: 1, keep: false, nodeOptions: '' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--size') options.size = parseSize(value());
    else if (arg === '--layers') options.layers = Number(value());
    else if (arg === '--runs') options.runs = Number(value());
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--node-options') options.nodeOptions = value();
    else throw new Error(`unknown option ${arg} (usage: --size 1G --layers 4 --runs 1 [--node-options "--max-semi-space-size=1"] [--keep])`);
  }
  if (!Number.isInteger(options.layers) || options.layers < 1) throw new Error('--layers must be a positive whole number');
  if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error('--runs must be a positive whole number');
  return options;
}

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text);
  if (!match) throw new Error(`--size: "${text}" is not a size such as 256M or 1G`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.round(Number(match[1]) * unit);
}

const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Writes one gzip layer of `size` random bytes (stored deflate: valid gzip, no CPU spent compressing). */
async function writeLayer(blobDir: string, size: number): Promise<{ digest: string; size: number; diffId: string }> {
  const temp = path.join(blobDir, `.layer-${randomBytes(4).toString('hex')}`);
  const raw = createHash('sha256');
  const compressed = createHash('sha256');
  let compressedSize = 0;
  let left = size;
  const source = Readable.from(
    (function* () {
      while (left > 0) {
        const chunk = randomBytes(Math.min(left, 1024 * 1024));
        left -= chunk.length;
        raw.update(chunk);
        yield chunk;
      }
    })(),
  );
  const gzip = createGzip({ level: 0 });
  gzip.on('data', (chunk: Buffer) => {
    compressed.update(chunk);
    compressedSize += chunk.length;
  });
  await pipeline(source, gzip, createWriteStream(temp));
  const hex = compressed.digest('hex');
  await fs.rename(temp, path.join(blobDir, hex));
  return { digest: `sha256:${hex}`, size: compressedSize, diffId: `sha256:${raw.digest('hex')}` };
}

async function writeImage(dir: string, size: number, layerCount: number): Promise<string> {
  const blobDir = path.join(dir, 'blobs', 'sha256');
  await fs.mkdir(blobDir, { recursive: true });
  const layers = [];
  for (let i = 0; i < layerCount; i++) layers.push(await writeLayer(blobDir, Math.floor(size / layerCount) + (i === 0 ? size % layerCount : 0)));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  await fs.writeFile(path.join(blobDir, sha256Hex(config)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256Hex(config)}`, size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  await fs.writeFile(path.join(blobDir, sha256Hex(manifest)), manifest);
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha256Hex(manifest)}`, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }),
  );
  return `sha256:${sha256Hex(manifest)}`;
}

async function waitForHttp(url: string, child: ChildProcess, logs: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${logs.join('').slice(-2000)}`);
    try {
      await fetch(url);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Peak resident set size of a running process, in bytes (Linux VmHWM). */
async function peakRss(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(match[1]) * 1024;
}

interface Registry {
  name: string;
  host: string;
  repository: string;
  creds: string[];
  pid: number;
  stop(): Promise<void>;
}

function spawnLogged(command: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; logs: string[] } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
  return { child, logs };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function startConvoy(dataDir: string, nodeOptions: string): Promise<Registry> {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const { child, logs } = spawnLogged(process.execPath, [path.join(root, 'bin/convoy.js'), 'serve'], {
    ...process.env,
    NODE_OPTIONS: nodeOptions,
    CONVOY_DATA_DIR: dataDir,
    CONVOY_HTTP_PORT: String(httpPort),
    CONVOY_MQTT_PORT: String(mqttPort),
    CONVOY_HOST: '127.0.0.1',
    CONVOY_ADMIN_TOKEN: token,
    CONVOY_LOG_LEVEL: 'warn',
  });
  const url = `http://127.0.0.1:${httpPort}`;
  await waitForHttp(`${url}/v2/`, child, logs);
  const created = await fetch(`${url}/api/v1/bundles`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
  if (created.status !== 201) throw new Error(`bundle create answered ${created.status}`);
  return { name: 'convoy', host: `127.0.0.1:${httpPort}`, repository: 'bench/image', creds: ['admin', token], pid: child.pid!, stop: () => stopChild(child) };
}

async function startReference(dataDir: string): Promise<Registry> {
  const port = await freePort();
  const config = path.join(dataDir, 'config.yml');
  await fs.mkdir(dataDir, { recursive: true });
  await fs.writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dataDir, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const { child, logs } = spawnLogged('docker-registry', ['serve', config], process.env);
  await waitForHttp(`http://127.0.0.1:${port}/v2/`, child, logs);
  return { name: 'docker-registry', host: `127.0.0.1:${port}`, repository: 'bench/image', creds: [], pid: child.pid!, stop: () => stopChild(child) };
}

async function timed(args: string[]): Promise<number> {
  // Write back what the previous step left dirty first: otherwise whoever goes second pays
  // for the first one's page cache (Convoy fsyncs each blob; docker-registry does not).
  await execText('sync', []);
  const started = process.hrtime.bigint();
  const { child, logs } = spawnLogged('skopeo', ['--insecure-policy', ...args], process.env);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`skopeo ${args[0]} failed (${code}):\n${logs.join('').slice(-2000)}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function push(registry: Registry, layout: string): Promise<number> {
  const creds = registry.creds.length ? ['--dest-creds', registry.creds.join(':')] : [];
  return timed(['copy', '--dest-tls-verify=false', ...creds, `oci:${layout}:bench`, `docker://${registry.host}/${registry.repository}:1.0.0`]);
}

async function pull(registry: Registry, destination: string): Promise<number> {
  const creds = registry.creds.length ? ['--src-creds', registry.creds.join(':')] : [];
  const seconds = await timed(['copy', '--src-tls-verify=false', ...creds, `docker://${registry.host}/${registry.repository}:1.0.0`, `oci:${destination}:1.0.0`]);
  return seconds;
}

async function execText(command: string, args: string[]): Promise<string> {
  const { child, logs } = spawnLogged(command, args, process.env);
  await new Promise((resolve) => child.once('exit', resolve));
  return logs.join('');
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-bench-oci-'));
  say(`OCI benchmark: ${mib(options.size)} image in ${options.layers} layers, ${options.runs} run(s), work dir ${work}`);
  say(`convoy runs as \`node bin/convoy.js serve\`${options.nodeOptions ? ` with NODE_OPTIONS="${options.nodeOptions}"` : ' (default Node options)'}; skopeo ${(await execText('skopeo', ['--version'])).trim()}`);
  try {
    const layout = path.join(work, 'image');
    const started = Date.now();
    const digest = await writeImage(layout, options.size, options.layers);
    say(`image built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${digest}`);

    const results: Record<'convoy' | 'reference', { push: number[]; pull: number[]; rss: number[] }> = {
      convoy: { push: [], pull: [], rss: [] },
      reference: { push: [], pull: [], rss: [] },
    };
    for (let run = 1; run <= options.runs; run++) {
      // Fresh servers and data dirs each run: nothing is already stored, nothing can be mounted.
      const convoy = await startConvoy(path.join(work, `convoy-${run}`), options.nodeOptions);
      const reference = await startReference(path.join(work, `reference-${run}`));
      try {
        // Alternate who goes first so page-cache warmth does not favour one side.
        const order: [keyof typeof results, Registry][] = run % 2 === 1 ? [['reference', reference], ['convoy', convoy]] : [['convoy', convoy], ['reference', reference]];
        const idle = await peakRss(convoy.pid);
        for (const [key, registry] of order) results[key].push.push(await push(registry, layout));
        const afterPush = await peakRss(convoy.pid);
        for (const [key, registry] of order) {
          const destination = path.join(work, `pulled-${key}-${run}`);
          results[key].pull.push(await pull(registry, destination));
          const pulled = JSON.parse(await fs.readFile(path.join(destination, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
          if (pulled.manifests[0]?.digest !== digest) throw new Error(`${registry.name} returned manifest ${pulled.manifests[0]?.digest}, pushed ${digest}`);
          await fs.rm(destination, { recursive: true, force: true });
        }
        results.convoy.rss.push(await peakRss(convoy.pid));
        say(`run ${run}: convoy peak RSS at start ${mib(idle)}, after the pushes ${mib(afterPush)}, after the pulls ${mib(results.convoy.rss.at(-1)!)}`);
        results.reference.rss.push(await peakRss(reference.pid));
        say(
          `run ${run}: push convoy ${results.convoy.push.at(-1)!.toFixed(2)} s, reference ${results.reference.push.at(-1)!.toFixed(2)} s; ` +
            `pull convoy ${results.convoy.pull.at(-1)!.toFixed(2)} s, reference ${results.reference.pull.at(-1)!.toFixed(2)} s`,
        );
      } finally {
        await convoy.stop();
        await reference.stop();
        if (!options.keep) {
          await fs.rm(path.join(work, `convoy-${run}`), { recursive: true, force: true });
          await fs.rm(path.join(work, `reference-${run}`), { recursive: true, force: true });
        }
      }
    }

    const row = (what: string, convoy: number, reference: number, unit: (v: number) => string, target: string) =>
      say(`${what.padEnd(10)} ${unit(convoy).padStart(12)} ${unit(reference).padStart(16)} ${(convoy / reference).toFixed(2).padStart(8)}   ${target}`);
    const seconds = (v: number) => `${v.toFixed(2)} s`;
    say('');
    say(`${'median'.padEnd(10)} ${'convoy'.padStart(12)} ${'docker-registry'.padStart(16)} ${'ratio'.padStart(8)}   target`);
    row('push', median(results.convoy.push), median(results.reference.push), seconds, 'ratio <= 1.2');
    row('pull', median(results.convoy.pull), median(results.reference.pull), seconds, 'ratio <= 1.2');
    row('peak RSS', Math.max(...results.convoy.rss), Math.max(...results.reference.rss), mib, 'convoy < 150 MiB');
    const pushMbps = options.size / 1024 ** 2 / median(results.convoy.push);
    const pullMbps = options.size / 1024 ** 2 / median(results.convoy.pull);
    say(`convoy throughput: push ${pushMbps.toFixed(0)} MiB/s, pull ${pullMbps.toFixed(0)} MiB/s (skopeo on the same machine)`);
  } finally {
    if (!options.keep) await fs.rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:oci failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
