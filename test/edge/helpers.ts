import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLogger } from '../../protocol/log.ts';
import { parseWith } from '../../protocol/parse.ts';
import { replicationRunDetail } from '../../protocol/replication.ts';
import { defaultEdgeConfig, type EdgeConfig } from '../../server/edge/config.ts';
import { startEdge, type EdgeDeps, type RunningEdge } from '../../server/edge/app.ts';
import { adminToken, makeTempDir, waitFor, type TestServer } from '../helpers/server.ts';

/*
 * Edge-mode test helpers: an HTTP proxy in front of the origin that counts what edges read
 * (the proof that a device behind an edge never touched the origin's bytes), and an in-process
 * edge on its own data dir.
 */

export interface CountingProxy {
  url: string;
  /** GET requests per path (e.g. `/api/v1/blobs/sha256:…`) that the origin answered 200 or 206. */
  reads: Map<string, number>;
  /** The Range header of each GET per path, in order ('' for none): a resume asks `bytes=N-`. */
  ranges: Map<string, string[]>;
  /** Body bytes the origin sent through the proxy. */
  readonly bytes: number;
  /** While down, every request is answered by closing the socket (the link is cut). */
  down: boolean;
  close(): Promise<void>;
}

export async function startCountingProxy(originPort: number, options: { bytesPerSecond?: number } = {}): Promise<CountingProxy> {
  const reads = new Map<string, number>();
  const ranges = new Map<string, string[]>();
  let bytes = 0;
  const state = { down: false };
  const server = http.createServer((req, res) => {
    if (state.down) return req.socket.destroy();
    if (req.method === 'GET') {
      const key = req.url!.split('?')[0]!;
      ranges.set(key, [...(ranges.get(key) ?? []), req.headers.range ?? '']);
    }
    const upstream = http.request({ host: '127.0.0.1', port: originPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (req.method === 'GET' && (answer.statusCode === 200 || answer.statusCode === 206)) {
        const key = req.url!.split('?')[0]!;
        reads.set(key, (reads.get(key) ?? 0) + 1);
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        res.write(chunk);
        // A slow link, so a test can interrupt a transfer in the middle.
        if (options.bytesPerSecond) {
          answer.pause();
          setTimeout(() => answer.resume(), (chunk.length / options.bytesPerSecond) * 1000);
        }
      });
      answer.on('end', () => res.end());
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    reads,
    ranges,
    get bytes() {
      return bytes;
    },
    get down() {
      return state.down;
    },
    set down(value: boolean) {
      state.down = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The origin's root, as an operator copies it to the edge (CONVOY_UPSTREAM_ROOT). */
export async function copyRoot(origin: TestServer, dir: string): Promise<string> {
  const res = await origin.api('GET', '/tuf/root.json');
  if (res.status !== 200) throw new Error(`root.json answered ${res.status}`);
  const file = path.join(dir, 'origin-root.json');
  await fs.writeFile(file, res.raw);
  return file;
}

export async function addEdge(origin: TestServer, name: string): Promise<string> {
  const res = await origin.api('POST', '/api/v1/edges', { json: { name } });
  if (res.status !== 201) throw new Error(`edge add answered ${res.status}: ${res.raw}`);
  return res.body.token as string;
}

export interface TestEdge extends RunningEdge {
  dataDir: string;
  logs: string[];
  config: EdgeConfig;
}

export async function startTestEdge(options: { upstreamUrl: string; token: string; rootFile: string; dataDir?: string; httpPort?: number; overrides?: Partial<EdgeConfig>; deps?: Omit<EdgeDeps, 'log'> }): Promise<TestEdge> {
  const dataDir = options.dataDir ?? (await makeTempDir('convoy-edge-'));
  const logs: string[] = [];
  const config: EdgeConfig = {
    ...defaultEdgeConfig,
    upstreamUrl: options.upstreamUrl,
    edgeToken: options.token,
    upstreamRootFile: options.rootFile,
    dataDir,
    host: '127.0.0.1',
    httpPort: options.httpPort ?? 0,
    mqttPort: 0,
    logLevel: 'debug',
    pollMs: 100,
    noticeMs: 200,
    reportRetryMs: 200,
    ...options.overrides,
  };
  const edge = await startEdge(config, { ...options.deps, log: createLogger({ namespace: 'edge', level: 'debug', write: (line) => logs.push(line) }) });
  return { ...edge, dataDir, logs, config };
}

/** Waits for a replication run to leave `running`, and returns it with its tasks. */
export async function finishedRun(server: TestServer, bundle: string, id: number) {
  return waitFor(`run ${id} to finish`, async () => {
    const res = await server.api('GET', `/api/v1/bundles/${bundle}/replication-runs/${id}`);
    const detail = parseWith(replicationRunDetail, res.body, 'run');
    return detail.run.status === 'running' ? undefined : detail;
  });
}

/** The runs of a bundle, newest first, once there are at least `count`. */
export async function runsOf(server: TestServer, bundle: string, count = 1): Promise<{ id: number; trigger: string; versions: string[] }[]> {
  return waitFor(`${count} replication run(s) of ${bundle}`, async () => {
    const res = await server.api('GET', `/api/v1/bundles/${bundle}/replication-runs`);
    return res.body.length >= count ? res.body : undefined;
  });
}

export { adminToken };

import { spawn, type ChildProcess } from 'node:child_process';
import { convoyBin } from '../helpers/device.ts';

/** An edge as its own process (`convoy serve --mode edge`), so a test can kill -9 it. */
export async function spawnEdge(options: { upstreamUrl: string; token: string; rootFile: string; dataDir: string; env?: Record<string, string> }): Promise<{ process: ChildProcess; url: string; logs: string[]; kill(): Promise<void>; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [convoyBin, 'serve', '--mode', 'edge', '--upstream', options.upstreamUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CONVOY_EDGE_TOKEN: options.token, CONVOY_UPSTREAM_ROOT: options.rootFile, CONVOY_DATA_DIR: options.dataDir, CONVOY_HTTP_PORT: '0', CONVOY_MQTT_PORT: '0', CONVOY_HOST: '127.0.0.1', CONVOY_EDGE_POLL_MS: '100', CONVOY_LOG_LEVEL: 'debug', ...options.env },
  });
  const logs: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const match = /serving devices at (http:\/\/\S+),/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`edge exited with ${code}: ${logs.join('')}`)));
  });
  const exit = (signal: NodeJS.Signals) => async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  return { process: child, url, logs, kill: exit('SIGKILL'), stop: exit('SIGTERM') };
}
