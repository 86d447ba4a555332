import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { readFileIfExists, writeFileAtomic } from '../../lib/files.ts';
import type { Logger } from '../../protocol/log.ts';
import { openTrustClient } from '../../tuf/client.ts';
import type { Upstream } from './upstream.ts';

/*
 * The edge's copy of the origin's TUF repository. Files are fetched by name (every file a task
 * names, so delegated roles flow through like the top-level ones) into memory (metadata is small), then
 * verified with the same TUF client devices use (tuf/client.ts, tuf-js) against the root the
 * operator pinned (CONVOY_UPSTREAM_ROOT): root rotations, timestamp, snapshot and targets (TUF
 * §5.3–5.6: signatures, thresholds, versions, expiry, rollback). Any other `<v>.<role>.json` must
 * be the version the verified snapshot names. Only then are the files published to the directory
 * devices read, the timestamp last: a device that sees the new timestamp finds all it names.
 */

const topLevel = new Set(['root', 'timestamp', 'snapshot', 'targets']);

export interface MetadataMirror {
  /**
   * Fetches, verifies and publishes; throws (nothing published) when verification fails.
   * `source` gives a file's bytes (default: ask the origin); push mode passes the files the
   * origin sent, so pulled and pushed metadata pass the same checks and the same publication.
   */
  sync(files: readonly string[], source?: MetadataSource): Promise<{ published: string[]; bytes: number }>;
  /** A published file (what devices read under /tuf/). */
  read(name: string): Promise<Buffer | undefined>;
}

/** A metadata file's bytes by name; undefined: there is no such file (a 404 to tuf-js). */
export type MetadataSource = (name: string) => Promise<Buffer | undefined>;

/** tuf-js reads through this: the files staged for this sync first, anything else from the origin (staged as fetched). */
class StagedFetcher extends BaseFetcher {
  constructor(
    private readonly source: MetadataSource,
    private readonly fetched: Map<string, Buffer>,
  ) {
    super();
  }
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
    let bytes = this.fetched.get(name);
    if (!bytes) {
      bytes = await this.source(name);
      // tuf-js reads a 404 on N.root.json as "no newer root": the status must be kept.
      if (!bytes) throw new DownloadHTTPError(`the origin has no ${name}`, 404);
    }
    this.fetched.set(name, bytes);
    return Readable.toWeb(Readable.from([bytes])) as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

function versionedRole(name: string): { version: number; role: string } | undefined {
  const match = /^(\d+)\.(.+)\.json$/.exec(name);
  return match ? { version: Number(match[1]), role: match[2]! } : undefined;
}

export function createMetadataMirror(deps: { dataDir: string; pinnedRootFile: string; upstream: Upstream; timeoutMs: number; log: Logger }): MetadataMirror {
  const published = path.join(deps.dataDir, 'tuf');
  const trustDir = path.join(deps.dataDir, 'trust');
  let queue: Promise<unknown> = Promise.resolve();
  const one = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };
  return {
    sync: (files, source = (name) => deps.upstream.metadata(name)) =>
      one(async () => {
        await fs.mkdir(published, { recursive: true });
        const fetched = new Map<string, Buffer>();
        for (const name of files) {
          const bytes = await source(name);
          if (bytes) fetched.set(name, bytes);
        }
        // The edge's own trusted state (rollback protection across runs lives in trustDir).
        const client = await openTrustClient({
          metadataDir: path.join(trustDir, 'current'),
          goodDir: path.join(trustDir, 'good'),
          pinnedRootFile: deps.pinnedRootFile,
          serverUrl: 'http://origin.invalid',
          token: '',
          timeoutMs: deps.timeoutMs,
          log: deps.log,
          fetcher: new StagedFetcher(source, fetched),
        });
        await client.refresh();
        // The verified snapshot says which version of every other role is current.
        const snapshot = JSON.parse((await fs.readFile(path.join(trustDir, 'current', 'snapshot.json'))).toString('utf8')) as { signed: { meta: Record<string, { version: number }> } };
        for (const name of fetched.keys()) {
          const parsed = versionedRole(name);
          if (!parsed || topLevel.has(parsed.role)) continue;
          const named = snapshot.signed.meta[`${parsed.role}.json`]?.version;
          // An older version a task of an earlier run named (two approvals before the edge
          // synced): superseded, not published, and no reason to refuse the current set.
          if (named !== undefined && parsed.version < named) {
            fetched.delete(name);
            continue;
          }
          if (named !== parsed.version) throw new Error(`${name} is not the version of role "${parsed.role}" the verified snapshot names (${named ?? 'none'}); not published`);
        }
        // Versioned files first (immutable), then root.json, then timestamp.json last.
        const order = [...fetched.keys()].sort((a, b) => rank(a) - rank(b));
        let bytes = 0;
        for (const name of order) {
          const content = fetched.get(name)!;
          bytes += content.length;
          const existing = await readFileIfExists(path.join(published, name));
          if (!existing?.equals(content)) await writeFileAtomic(path.join(published, name), content);
        }
        deps.log.info('metadata published', { files: order.length });
        return { published: order, bytes };
      }),
    read: (name) => readFileIfExists(path.join(published, path.basename(name))),
  };
}

function rank(name: string): number {
  if (name === 'timestamp.json') return 2;
  if (name === 'root.json') return 1;
  return 0;
}
