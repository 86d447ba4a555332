import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { silentLogger } from '../../protocol/log.ts';
import { openTrustClient } from '../../tuf/client.ts';
import { TrustError, type TrustErrorCode } from '../../tuf/errors.ts';
import { generateSigningKey } from '../../tuf/keys.ts';
import { createRoot, publishTargets, toBytes, type PublishedSet, type RoleKeys } from '../../tuf/repository.ts';

/*
 * The client wrapper against a repository built in code and served through the injected fetcher:
 * each attack must come back as its own TrustError code (derived from tuf-js's error classes), so
 * a fleet's reports tell a freeze from a forgery from a replay from an endless file.
 */

/** Serves metadata from memory, by URL path, as tuf-js's fetcher interface asks. */
class MemoryFetcher extends BaseFetcher {
  files = new Map<string, Buffer>();
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const bytes = this.files.get(new URL(url).pathname);
    // tuf-js reads a 404 on `N.root.json` as "no newer root".
    if (!bytes) throw new DownloadHTTPError(`not found: ${url}`, 404);
    return new Blob([bytes]).stream() as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

const keys = (): RoleKeys => ({ root: generateSigningKey(), targets: generateSigningKey(), snapshot: generateSigningKey(), timestamp: generateSigningKey() });

function serve(fetcher: MemoryFetcher, set: PublishedSet): void {
  fetcher.files.set(`/tuf/${set.versions.targets}.targets.json`, set.targets);
  fetcher.files.set(`/tuf/${set.versions.snapshot}.snapshot.json`, set.snapshot);
  fetcher.files.set('/tuf/timestamp.json', set.timestamp);
}

function sign(roleKeys: RoleKeys, previous: { targets: number; snapshot: number; timestamp: number }, now: Date, timestampKey = roleKeys.timestamp): PublishedSet {
  return publishTargets({ keys: { targets: [roleKeys.targets], snapshot: [roleKeys.snapshot], timestamp: [timestampKey] }, previous, targets: [{ path: 'a/1.0.0/manifest.json', length: 3, sha256: 'ab'.repeat(32) }], now });
}

async function client(t: { teardown(fn: () => Promise<void>): void }, roleKeys: RoleKeys, fetcher: MemoryFetcher) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-tuf-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const root = toBytes(createRoot(roleKeys, new Date()));
  await fs.writeFile(path.join(dir, 'root.json'), root);
  fetcher.files.set('/tuf/1.root.json', root);
  return openTrustClient({ metadataDir: path.join(dir, 'metadata'), goodDir: path.join(dir, 'good'), pinnedRootFile: path.join(dir, 'root.json'), serverUrl: 'http://repository.invalid', token: 'unused', timeoutMs: 5_000, log: silentLogger, fetcher });
}

const zero = { targets: 0, snapshot: 0, timestamp: 0 };
const day = 24 * 3600 * 1000;

const attacks: [string, TrustErrorCode, (roleKeys: RoleKeys, fetcher: MemoryFetcher, first: PublishedSet, latest: PublishedSet) => void][] = [
  ['a timestamp kept past its expiry (freeze)', 'metadata_expired', (k, f, _first, latest) => serve(f, sign(k, latest.versions, new Date(Date.now() - 2 * day)))],
  ['a timestamp signed by a key root does not name', 'bad_signature', (k, f, _first, latest) => serve(f, sign(k, latest.versions, new Date(), generateSigningKey()))],
  ['a replay of an older timestamp (rollback)', 'rollback', (_k, f, first) => f.files.set('/tuf/timestamp.json', first.timestamp)],
  ['an endless timestamp.json', 'oversized', (_k, f) => f.files.set('/tuf/timestamp.json', Buffer.alloc(1024 * 1024, 0x20))],
];

for (const [name, code, attack] of attacks) {
  test(`refresh refuses ${name} as ${code}`, async (t) => {
    const roleKeys = keys();
    const fetcher = new MemoryFetcher();
    const trust = await client(t, roleKeys, fetcher);
    const first = sign(roleKeys, zero, new Date());
    serve(fetcher, first);
    await trust.refresh();
    t.truthy(await trust.targetInfo('a/1.0.0/manifest.json'), 'the honest repository verifies');
    // The next honest version, so that a replay of the first is older than what is trusted.
    const latest = sign(roleKeys, first.versions, new Date());
    serve(fetcher, latest);
    await trust.refresh();
    attack(roleKeys, fetcher, first, latest);
    const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
    t.is(error?.code, code, error?.message);
    t.false(error?.transient);
    t.true(error?.cause instanceof Error, 'tuf-js error kept as the cause');
  });
}

// The freeze as a mirror plays it: it keeps serving the timestamp the device already trusts until
// it expires. tuf-js keeps an equal version and fails later, while loading snapshot, inside a
// RuntimeError that carries only the text of the ExpiredMetadataError.
test('refresh refuses a trusted timestamp served past its expiry as metadata_expired', async (t) => {
  const roleKeys = keys();
  const fetcher = new MemoryFetcher();
  const trust = await client(t, roleKeys, fetcher);
  // Signed 23 h 59 min 58 s ago: valid for two more seconds (timestamps last 24 h).
  const aged = sign(roleKeys, zero, new Date(Date.now() - day + 2_000));
  serve(fetcher, aged);
  await trust.refresh();
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
  t.is(error?.code, 'metadata_expired', error?.message);
  t.regex(error?.message ?? '', /expired/);
  t.false(error?.transient);
});

test('an unreachable repository is a transient download_failed', async (t) => {
  const roleKeys = keys();
  const fetcher = new MemoryFetcher();
  const trust = await client(t, roleKeys, fetcher);
  fetcher.fetch = async () => {
    throw new DownloadHTTPError('Service Unavailable', 503);
  };
  const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
  t.is(error?.code, 'download_failed');
  t.true(error?.transient);
});

/*
 * The default fetcher (node:http, not fetch(): lib/http.ts) against a real HTTP server on
 * loopback: the honest repository verifies with the token sent, and an outage (a refused
 * connection, a body cut halfway) is a transient download_failed, as fetch()'s TypeError was.
 */
async function httpClient(t: { teardown(fn: () => Promise<void> | void): void }, roleKeys: RoleKeys, handle: (path: string, files: Map<string, Buffer>, res: http.ServerResponse) => void) {
  const files = new Map<string, Buffer>();
  const seen: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    handle(req.url ?? '', files, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void server.close());
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-tuf-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const root = toBytes(createRoot(roleKeys, new Date()));
  await fs.writeFile(path.join(dir, 'root.json'), root);
  files.set('/tuf/1.root.json', root);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const trust = await openTrustClient({ metadataDir: path.join(dir, 'metadata'), goodDir: path.join(dir, 'good'), pinnedRootFile: path.join(dir, 'root.json'), serverUrl: url, token: 'device-token', timeoutMs: 5_000, log: silentLogger });
  return { trust, files, seen, server };
}

const honest = (url: string, files: Map<string, Buffer>, res: http.ServerResponse) => {
  const bytes = files.get(url);
  res.writeHead(bytes ? 200 : 404).end(bytes);
};

test('the default fetcher verifies an honest repository over HTTP, sending the token', async (t) => {
  const roleKeys = keys();
  const { trust, files, seen } = await httpClient(t, roleKeys, honest);
  const set = sign(roleKeys, zero, new Date());
  files.set(`/tuf/${set.versions.targets}.targets.json`, set.targets);
  files.set(`/tuf/${set.versions.snapshot}.snapshot.json`, set.snapshot);
  files.set('/tuf/timestamp.json', set.timestamp);
  await trust.refresh();
  t.truthy(await trust.targetInfo('a/1.0.0/manifest.json'));
  t.true(seen.length > 0 && seen.every((value) => value === 'Bearer device-token'));
});

test('the default fetcher: a server answering 503 is a transient download_failed', async (t) => {
  const { trust } = await httpClient(t, keys(), (_url, _files, res) => res.writeHead(503).end('busy'));
  const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
  t.is(error?.code, 'download_failed', error?.message);
  t.true(error?.transient);
});

test('the default fetcher: a refused connection is a transient download_failed', async (t) => {
  const { trust, server } = await httpClient(t, keys(), honest);
  await new Promise((resolve) => server.close(resolve));
  const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
  t.is(error?.code, 'download_failed', error?.message);
  t.true(error?.transient);
});

test('the default fetcher: a body cut halfway is a transient download_failed', async (t) => {
  const roleKeys = keys();
  const { trust, files } = await httpClient(t, roleKeys, (url, files, res) => {
    const bytes = files.get(url);
    if (url !== '/tuf/timestamp.json' || !bytes) return honest(url, files, res);
    res.writeHead(200, { 'content-length': String(bytes.length) });
    res.write(bytes.subarray(0, 10));
    setTimeout(() => res.destroy(), 20);
  });
  const set = sign(roleKeys, zero, new Date());
  files.set('/tuf/timestamp.json', set.timestamp);
  const error = await t.throwsAsync(trust.refresh(), { instanceOf: TrustError });
  t.is(error?.code, 'download_failed', error?.message);
  t.true(error?.transient);
});
