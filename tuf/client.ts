import fs from 'node:fs/promises';
import path from 'node:path';
import { BaseFetcher, Updater, type Fetcher, type TargetFile } from 'tuf-js';
import { DownloadHTTPError, RuntimeError } from 'tuf-js/dist/error.js';
import { Readable } from 'node:stream';
import { readFileIfExists, writeFileAtomic } from '../lib/files.ts';
import { httpGet, type GetOptions } from '../lib/http.ts';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../protocol/log.ts';
import { toTrustError } from './errors.ts';

/** The metadata files tuf-js keeps in its metadata directory (TUF §5: top-level roles). */
const metadataFiles = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

function parses(bytes: Buffer | undefined): boolean {
  if (!bytes) return false;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as { signed?: unknown; signatures?: unknown };
    return typeof value.signed === 'object' && value.signed !== null && Array.isArray(value.signatures);
  } catch {
    return false;
  }
}

/**
 * tuf-js writes its metadata files in place (no temp file + rename), so a power loss during a
 * refresh can leave a torn file, and a device that cannot parse its trusted root can never verify
 * again. After every successful refresh the daemon keeps a last-good copy of each file, written
 * atomically; at start, a file that no longer parses is restored from it (or, for the root with
 * no copy, from the provisioned root, from which tuf-js walks the rotations again). A torn
 * non-root file with no copy is removed: tuf-js fetches it anew and checks it against the root.
 */
export async function repairMetadata(metadataDir: string, goodDir: string, pinnedRootFile: string, log: Logger): Promise<void> {
  for (const name of metadataFiles) {
    const file = path.join(metadataDir, name);
    const bytes = await readFileIfExists(file);
    if (bytes === undefined && name !== 'root.json') continue;
    if (parses(bytes)) continue;
    const good = await readFileIfExists(path.join(goodDir, name));
    if (parses(good)) {
      await writeFileAtomic(file, good!);
      log.warn('restored torn TUF metadata from the last good copy', { file: name });
    } else if (name === 'root.json') {
      await writeFileAtomic(file, await fs.readFile(pinnedRootFile));
      if (bytes === undefined) log.info('trusting the provisioned TUF root (first start)');
      else log.warn('restored the TUF root from the provisioned root');
    } else {
      await fs.rm(file, { force: true });
      log.warn('removed torn TUF metadata with no good copy', { file: name });
    }
  }
}

async function keepGoodCopies(metadataDir: string, goodDir: string): Promise<void> {
  await fs.mkdir(goodDir, { recursive: true });
  for (const name of metadataFiles) {
    const bytes = await readFileIfExists(path.join(metadataDir, name));
    if (!parses(bytes)) continue;
    const previous = await readFileIfExists(path.join(goodDir, name));
    if (previous?.equals(bytes!)) continue;
    await writeFileAtomic(path.join(goodDir, name), bytes!);
  }
}

/**
 * A client's view of the TUF repository (the daemon's, and `convoy bundle verify`'s), through
 * tuf-js: it pins the root the device was
 * provisioned with, and every refresh walks root rotations, then timestamp, snapshot and targets
 * (TUF §5.3–5.6), refusing rollback, freeze and mix-and-match. Nothing is installed unless this
 * says the target is signed, with the exact length and hash.
 */
export interface TrustClient {
  refresh(): Promise<void>;
  /** The signed info of a target after a refresh, or undefined when it is not signed. */
  targetInfo(targetPath: string): Promise<TargetFile | undefined>;
}

/**
 * tuf-js's fetcher with the device's token and a per-request timeout, over node:http rather than
 * fetch(), which would load undici into the daemon for good (+13 MiB RSS; lib/http.ts).
 */
export class AuthorizedFetcher extends BaseFetcher {
  constructor(
    /** Absent: the getter authenticates (the daemon's server pool: a certificate or the token). */
    private readonly token: string | undefined,
    private readonly timeoutMs: number,
    /** How a GET is made: lib/http.ts's, or the daemon's server pool (device/servers.ts) with failover. */
    private readonly get: (url: string, options: GetOptions) => Promise<IncomingMessage> = httpGet,
  ) {
    super();
  }
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await this.get(url, { headers: this.token ? { authorization: `Bearer ${this.token}` } : {}, timeoutMs: this.timeoutMs });
    const status = response.statusCode ?? 0;
    // tuf-js reads a 403/404 on `N.root.json` as "no newer root", so the status must be kept.
    if (status < 200 || status > 299) {
      response.destroy();
      throw new DownloadHTTPError(`GET ${new URL(url).pathname} answered ${status}`, status);
    }
    return Readable.toWeb(response) as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

export interface TrustClientOptions {
  metadataDir: string;
  /** Where the last good copy of each metadata file is kept (see repairMetadata). */
  goodDir: string;
  /** The root the client was provisioned with: its trust anchor. */
  pinnedRootFile: string;
  serverUrl: string;
  /** Absent when `fetcher` authenticates by itself. */
  token?: string | undefined;
  /** Per-request timeout, in milliseconds. */
  timeoutMs: number;
  log: Logger;
  /** How metadata bytes are fetched; by default over HTTP with the token (tests inject faults here). */
  fetcher?: Fetcher;
}

/** Refresh failures are thrown as TrustError, with a code from tuf-js's error class. */
export async function openTrustClient(options: TrustClientOptions): Promise<TrustClient> {
  await fs.mkdir(options.metadataDir, { recursive: true });
  // On first start this installs the provisioned root as the trust anchor (no root.json yet);
  // later roots come only through the signed rotation chain.
  await repairMetadata(options.metadataDir, options.goodDir, options.pinnedRootFile, options.log);
  const fetcher = options.fetcher ?? new AuthorizedFetcher(options.token, options.timeoutMs);
  /*
   * tuf-js 5 wraps whatever fails while it loads snapshot or targets in a RuntimeError that keeps
   * only the text of the original error (updater.js loadSnapshot/loadTargets): a frozen
   * repository (ExpiredMetadataError), a forged snapshot (UnsignedMetadataError) and a network
   * failure would all read as one. So the error is caught where it is thrown, with its class: in
   * the fetcher (ours) and in the store's snapshot and targets steps. `thrown` is the outcome of
   * the last such call, so it is the error tuf-js wrapped (a failed local load comes before the
   * remote one that replaces it); when the last call succeeded, the wrapped failure came from
   * elsewhere (e.g. persisting) and the wrapper's own code stands.
   */
  let thrown: unknown;
  const recorded = <A extends unknown[], R>(fn: (...args: A) => R) => (...args: A): R => {
    try {
      const result = fn(...args);
      if (!(result instanceof Promise)) {
        thrown = undefined;
        return result;
      }
      return result.then(
        (value: unknown) => ((thrown = undefined), value),
        (error: unknown) => ((thrown = error), Promise.reject(error)),
      ) as R;
    } catch (error) {
      thrown = error;
      throw error;
    }
  };
  const recordingFetcher: Fetcher = {
    downloadBytes: recorded((url: string, maxLength: number) => fetcher.downloadBytes(url, maxLength)),
    downloadFile: (url, maxLength, handler) => recorded(() => fetcher.downloadFile(url, maxLength, handler))(),
  };
  const makeUpdater = () => {
    const made = new Updater({
      metadataDir: options.metadataDir,
      metadataBaseUrl: `${options.serverUrl}/tuf`,
      fetcher: recordingFetcher,
      config: { fetchTimeout: options.timeoutMs },
    });
    // A private field of tuf-js 5's Updater (pinned); if a later version renames it, only the
    // fetcher's errors are told apart and the store's fall back to untrusted_metadata.
    const store = (made as unknown as { trustedSet?: Record<string, unknown> }).trustedSet;
    for (const step of ['updateSnapshot', 'updateDelegatedTargets']) {
      const original = store?.[step];
      if (typeof original === 'function') store![step] = recorded((...args: unknown[]) => original.apply(store, args));
    }
    return made;
  };
  // Made at the first refresh, not here: tuf-js loads and verifies the trusted root when an
  // Updater is made, which convoyd's start (before READY=1) does not need.
  let updater: Updater | undefined;
  // The update and the between-updates watch both refresh; one at a time, so two Updaters never
  // write the metadata directory together.
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = (work: () => Promise<void>): Promise<void> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };
  return {
    refresh: () => serialised(async () => {
      // A fresh Updater per refresh: tuf-js keeps trusted state in memory after a refresh and
      // its targets view would otherwise be stale.
      await repairMetadata(options.metadataDir, options.goodDir, options.pinnedRootFile, options.log);
      updater = makeUpdater();
      thrown = undefined;
      try {
        await updater.refresh();
      } catch (error) {
        throw toTrustError(error, error instanceof RuntimeError && thrown !== undefined ? thrown : error);
      }
      try {
        await keepGoodCopies(options.metadataDir, options.goodDir);
      } catch (error) {
        throw toTrustError(error);
      }
    }),
    targetInfo: (targetPath) => {
      let info: TargetFile | undefined;
      // Serialised like a refresh: following a delegation fetches and persists the bundle's role.
      return serialised(async () => {
        // Before any refresh tuf-js refreshes here itself, as it did when the Updater was made early.
        updater ??= makeUpdater();
        thrown = undefined;
        try {
          // tuf-js walks the delegations (§5.6.7): top-level targets delegates the path to its
          // bundle's role, which it loads (5.6.1–5.6.6: hash, signature, version, expiry) and
          // wraps any refusal in a RuntimeError, whose class the recorded error restores.
          info = await updater.getTargetInfo(targetPath);
        } catch (error) {
          throw toTrustError(error, error instanceof RuntimeError && thrown !== undefined ? thrown : error);
        }
      }).then(() => info);
    },
  };
}
