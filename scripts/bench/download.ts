/**
 * convoyd's download against its peers, on loopback, in one run:
 *   - convoyd: download + SHA-256 while streaming + fsync + rename (lib/download.ts, the code the
 *     daemon runs), of a blob from a real Convoy server;
 *   - curl -o of the same blob from the same server, then `openssl dgst -sha256` of the file
 *     (the usual shell pair; note that it does not fsync, convoyd does);
 *   - dd if=/dev/zero conv=fsync of the same size: what the disk allows;
 *   - an interruption at 50 %: the transfer is cut, then resumed; bytes crossing the link (counted
 *     by a TCP proxy, headers included) over the blob's size say how much was sent twice.
 * Prints the figures and the ratios. Timings are wall clock on a shared machine: compare the
 * ratios of one run, not absolute numbers across runs.
 *
 *   scripts/bench/download                 # 1 GiB, the figure
 *   scripts/bench/download --size 256MiB   # quick
 *   scripts/bench/download --rounds 3      # best of 3 for each contender
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs, promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../protocol/log.ts';
import { startServer } from '../../server/app.ts';
import { defaultServerConfig } from '../../server/config.ts';
import { startFaultProxy } from '../../test/helpers/proxy.ts';

const run = promisify(execFile);
const fetchOne = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fetch-one.ts');

/** One convoyd download in a process of its own; the time is measured inside it (no start-up). */
async function convoydDownload(args: string[]): Promise<{ seconds: number; received?: number; resumedFrom?: number; error?: string }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fetchOne, ...args]);
  return JSON.parse(stdout);
}
const MiB = 1024 * 1024;

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) throw new Error(`--size: "${text}" is not a size such as 256MiB or 1GiB`);
  const unit = { b: 1, kib: 1024, mib: MiB, gib: 1024 * MiB }[(match[2] ?? 'B').toLowerCase() as 'b']!;
  return Math.round(Number(match[1]) * unit);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - start) / 1000, value };
}

async function main() {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '1GiB' }, rounds: { type: 'string', default: '1' } }, strict: true });
  const size = parseSize(values.size!);
  const rounds = Math.max(1, Number(values.rounds));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-bench-'));
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const log = createLogger({ namespace: 'bench', level: 'error', write: () => {} });
  const server = await startServer({ ...defaultServerConfig, dataDir: path.join(work, 'server'), host: '127.0.0.1', httpPort: 0, mqttPort: 0, adminToken: token }, { log });
  try {
    // The blob: random bytes (incompressible), written once, uploaded streaming.
    const source = path.join(work, 'blob.bin');
    const hash = createHash('sha256');
    const out = await fs.open(source, 'w');
    for (let done = 0; done < size; ) {
      const chunk = randomBytes(Math.min(8 * MiB, size - done));
      hash.update(chunk);
      await out.write(chunk);
      done += chunk.length;
    }
    await out.close();
    const sha256 = hash.digest('hex');
    const url = `${server.url}/api/v1/blobs/sha256:${sha256}`;
    const put = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: Readable.toWeb(createReadStream(source)) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    if (put.status !== 201) throw new Error(`upload answered ${put.status}`);
    // A device token: the benchmark reads as a device does, so the blob is released to its group
    // (devices read only the bundles deployed to them: docs/permissions.md, Read model).
    const api = async (method: string, route: string, body: unknown) => {
      const response = await fetch(`${server.url}${route}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${route} answered ${response.status}: ${text}`);
      return JSON.parse(text) as unknown;
    };
    const device = (await api('POST', '/api/v1/devices', { id: 'bench-1', group: 'bench' })) as { token: string };
    await api('POST', '/api/v1/bundles', { name: 'bench' });
    await api('POST', '/api/v1/bundles/bench/versions', { version: '1.0.0' });
    await api('PUT', '/api/v1/bundles/bench/versions/1.0.0/artifacts/blob.bin', { type: 'file', digest: `sha256:${sha256}`, size });
    await api('POST', '/api/v1/bundles/bench/versions/1.0.0/approve', {});
    await api('POST', '/api/v1/deployments', { bundle: 'bench', version: '1.0.0', group: 'bench' });
    await fs.rm(source);

    const best = { convoyd: Infinity, curl: Infinity, curlOnly: Infinity, dd: Infinity };
    for (let round = 0; round < rounds; round++) {
      const dest = path.join(work, 'convoyd.bin');
      const convoyd = await convoydDownload([url, device.token, dest, String(size), sha256]);
      if (convoyd.error) throw new Error(convoyd.error);
      await fs.rm(dest);
      best.convoyd = Math.min(best.convoyd, convoyd.seconds);

      const curlFile = path.join(work, 'curl.bin');
      const curl = await timed(() => run('curl', ['-sS', '--fail', '-H', `Authorization: Bearer ${device.token}`, '-o', curlFile, url]));
      const openssl = await timed(() => run('openssl', ['dgst', '-sha256', curlFile]));
      if (!openssl.value.stdout.includes(sha256)) throw new Error('curl fetched different bytes');
      await fs.rm(curlFile);
      best.curl = Math.min(best.curl, curl.seconds + openssl.seconds);
      best.curlOnly = Math.min(best.curlOnly, curl.seconds);

      const ddFile = path.join(work, 'dd.bin');
      const dd = await timed(() => run('dd', ['if=/dev/zero', `of=${ddFile}`, 'bs=4M', `count=${Math.ceil(size / (4 * MiB))}`, 'conv=fsync', 'status=none']));
      await fs.rm(ddFile);
      best.dd = Math.min(best.dd, dd.seconds);
    }

    // Interrupted at 50 %, then resumed, through a proxy that counts the bytes on the wire.
    const proxy = await startFaultProxy(server.httpPort);
    const proxied = url.replace(`:${server.httpPort}/`, `:${proxy.port}/`);
    const dest = path.join(work, 'resumed.bin');
    const first = await convoydDownload([proxied, device.token, dest, String(size), sha256, '--abort-at-half']);
    if (!first.error) throw new Error('the interruption did not happen');
    const partBytes = (await fs.stat(`${dest}.part`)).size;
    const wireAfterCut = proxy.bytesDown;
    const second = await convoydDownload([proxied, device.token, dest, String(size), sha256]);
    if (second.error) throw new Error(second.error);
    await proxy.close();
    const wire = proxy.bytesDown;

    const mib = size / MiB;
    const rate = (s: number) => `${(mib / s).toFixed(0)} MiB/s`;
    const line = (name: string, s: number) => `  ${name.padEnd(44)} ${s.toFixed(2).padStart(7)} s  ${rate(s).padStart(10)}`;
    console.log(`download benchmark: ${mib.toFixed(0)} MiB over loopback, best of ${rounds}, ${os.cpus().length} CPUs`);
    console.log(line('convoyd (download + sha256 + fsync + rename)', best.convoyd));
    console.log(line('curl -o + openssl dgst -sha256 (no fsync)', best.curl));
    console.log(line('  of which curl -o alone', best.curlOnly));
    console.log(line('dd if=/dev/zero conv=fsync (disk limit)', best.dd));
    console.log(`  ratio convoyd / (curl + openssl)              ${(best.convoyd / best.curl).toFixed(2)}   (target ≤ 1.00)`);
    console.log(`  ratio convoyd / curl alone                    ${(best.convoyd / best.curlOnly).toFixed(2)}`);
    console.log(`  ratio convoyd / dd                            ${(best.convoyd / best.dd).toFixed(2)}`);
    console.log(`interrupted at 50 % (${first.error!.slice(0, 60)}…):`);
    console.log(`  on disk at the cut ${partBytes} bytes; on the wire by then ${wireAfterCut} bytes`);
    console.log(`  resume fetched ${second.received} bytes from offset ${second.resumedFrom}`);
    console.log(`  wire bytes in total ${wire} for a ${size}-byte blob: ${wire - size} bytes beyond the blob (${(((wire - size) / size) * 100).toFixed(3)} %, HTTP headers and bytes in flight at the cut)`);
  } finally {
    await server.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
