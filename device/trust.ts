import fs from 'node:fs/promises';
import path from 'node:path';
import { BaseFetcher, Updater, type TargetFile } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { UpdateError } from './errors.ts';

/**
 * The device's view of the TUF repository, through tuf-js: it pins the root the device was
 * provisioned with, and every refresh walks root rotations, then timestamp, snapshot and targets
 * (TUF §5.3–5.6), refusing rollback, freeze and mix-and-match. Nothing is installed unless this
 * says the target is signed, with the exact length and hash.
 */
export interface TrustClient {
  refresh(): Promise<void>;
  /** The signed info of a target after a refresh, or undefined when it is not signed. */
  targetInfo(targetPath: string): Promise<TargetFile | undefined>;
}

/** tuf-js's fetcher with the device's token and a per-request timeout. */
class AuthorizedFetcher extends BaseFetcher {
  constructor(
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {
    super();
  }
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetch(url, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(this.timeoutMs) });
    // tuf-js reads a 403/404 on `N.root.json` as "no newer root", so the status must be kept.
    if (!response.ok || !response.body) throw new DownloadHTTPError(`GET ${new URL(url).pathname} answered ${response.status}`, response.status);
    return response.body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

export async function openTrustClient(options: { metadataDir: string; pinnedRootFile: string; serverUrl: string; token: string; timeoutMs: number }): Promise<TrustClient> {
  await fs.mkdir(options.metadataDir, { recursive: true });
  const trustedRoot = path.join(options.metadataDir, 'root.json');
  try {
    await fs.access(trustedRoot);
  } catch {
    // First start: the provisioned root becomes the trust anchor. Later roots come only through
    // the signed rotation chain.
    await fs.copyFile(options.pinnedRootFile, trustedRoot);
  }
  const makeUpdater = () =>
    new Updater({
      metadataDir: options.metadataDir,
      metadataBaseUrl: `${options.serverUrl}/tuf`,
      fetcher: new AuthorizedFetcher(options.token, options.timeoutMs),
      config: { fetchTimeout: options.timeoutMs },
    });
  let updater = makeUpdater();
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
      updater = makeUpdater();
      try {
        await updater.refresh();
      } catch (error) {
        const transient = error instanceof DownloadHTTPError && error.statusCode >= 500;
        const network = error instanceof TypeError || (error as Error).name === 'TimeoutError';
        throw new UpdateError(
          network || transient ? 'download_failed' : 'untrusted_metadata',
          `TUF metadata refresh failed: ${(error as Error).message}`,
          network || transient,
          { cause: error },
        );
      }
    }),
    async targetInfo(targetPath) {
      return updater.getTargetInfo(targetPath);
    },
  };
}
