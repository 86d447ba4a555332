import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from './files.ts';
import { UpdateError } from './update-error.ts';

/**
 * Downloads one blob to `destination`, verified against the signed length and SHA-256 before it
 * gets its final name. Bytes arrive in `<destination>.part`; after an interruption the next call
 * hashes what is there and asks only for the rest (Range + If-Range on the blob's strong ETag).
 * The length limit is enforced while streaming, whatever the server says.
 */
export interface DownloadRequest {
  url: string;
  /** Sent as a bearer token; absent when `get` authenticates (a device certificate over HTTPS). */
  token?: string | undefined;
  /**
   * Makes the GET (default: one node:http(s) request to `url`). The daemon passes its server pool
   * (device/servers.ts), which answers from the next server when one is down, and bounds the wait
   * for each server's answer itself: until the answer comes the stall check here waits.
   */
  get?: ((url: string, headers: Record<string, string>, signal: AbortSignal) => Promise<IncomingMessage>) | undefined;
  destination: string;
  /** Signed length in bytes. */
  length: number;
  /** Signed SHA-256, lowercase hex. */
  sha256: string;
  /** Abort when no byte arrives for this long (a half-open connection would hang forever). */
  stallTimeoutMs: number;
  /**
   * Slow-retrieval bound (TUF threat "slow retrieval"): a server that drips one byte just before
   * each stall timeout would hold the transfer forever, so the whole transfer must also finish
   * within stallTimeoutMs + remaining bytes / this rate. Bytes per second; default 1 KiB/s.
   */
  minBytesPerSecond?: number;
  /** Bytes per second; 0 or absent: as fast as the link goes. */
  bandwidthLimit?: number;
  /**
   * The `.part` file is fsynced after this many bytes have been written since the last sync, so a
   * power cut loses at most this much of the transfer (the resume hashes what is on disk). Syncing
   * along the way also spreads the page-cache writeback over the transfer instead of one long
   * fsync at the end. Default 64 MiB.
   */
  syncIntervalBytes?: number;
  /** ... or after this many milliseconds with unsynced bytes (a slow link). Default 10 s. */
  syncIntervalMs?: number;
  /**
   * Reads the body straight from the socket into one buffer of this many bytes, reused for every
   * read (lib/raw-get.ts), instead of node:http's fresh Buffer per 64 KiB read: a fraction of the
   * CPU per byte at LAN speed. Opt-in (edges mirroring their origin pass 1 MiB); plain http:
   * only (https: goes through node:http), ignored with `get`. Default: node:http, whose memory
   * the daemon's figures were measured with.
   */
  readBufferBytes?: number;
  /** Called with the number of bytes of this blob on disk, as they arrive. */
  onProgress?: (bytes: number) => void;
  /** Stops the transfer (the daemon is shutting down); the part file is kept for a resume. */
  signal?: AbortSignal;
}

/**
 * Received bytes are copied into one of two batch buffers of this size, allocated once per
 * transfer, and a full batch is written while the other fills: a few large writes instead of one
 * per 16-64 KiB network chunk, overlapping the next reads. The copy is what keeps memory flat:
 * each socket read is a fresh 64 KiB Buffer outside V8's heap, and one kept in a batch until its
 * write finished could live through two young-generation collections, be promoted, and its
 * memory came back only with a full collection (a 1 GiB download collecting every 1 MiB, below,
 * peaked at 147 MiB RSS without the copy, 80 with it). Copied, a read is garbage as soon as it
 * is hashed; the copy costs a memcpy, far less than the hash beside it.
 */
const writeBatchBytes = 1024 * 1024;
/**
 * V8 collects those dead reads only when its young generation fills (each Buffer weighs ~100
 * bytes there) or the external memory passes its 64 MiB soft limit. When the process runs with
 * --expose-gc (the systemd unit does), a minor collection every this many received bytes frees
 * them; it costs well under a millisecond, since nothing the transfer holds is young. Their
 * memory goes back a collection later (V8 sweeps array buffers in the background), so about two
 * of these intervals of dead reads are resident at any time: peak RSS installing 1 GiB was 89-94
 * MiB collecting every 8 MiB, 72-77 every 2 MiB, 70-73 every 1 MiB (scripts/bench/footprint).
 * After a large transfer one full collection also frees the batch buffers and what reached the
 * old generation (idle RSS after a 512 MiB update: 65 MiB without it, 61 with it).
 * Without the flag nothing changes.
 */
const collectEveryBytes = 1024 * 1024;
const collectGarbage = (globalThis as { gc?: (options?: { type: 'minor' | 'major' }) => void }).gc;
export const defaultSyncIntervalBytes = 64 * 1024 * 1024;
export const defaultSyncIntervalMs = 10_000;

/**
 * `cached`: the destination was there already (verified by an earlier call, perhaps in an earlier
 * process); otherwise this call hashed every byte, checked it and fsynced the file before the
 * rename, so the caller may trust it without reading it again.
 */
export interface DownloadResult {
  resumedFrom: number;
  received: number;
  cached: boolean;
  /** Where the time went, in milliseconds (the edge logs them at debug; the replication benchmark sums them). */
  timings: DownloadTimings;
}

export interface DownloadTimings {
  /** Hashing a `.part` left by an earlier attempt before asking for the rest. */
  resumeHashMs: number;
  /** From the request to the answer's headers (connection, the server's checks, its first read). */
  firstByteMs: number;
  /** From the answer to its last byte written, hashing included. */
  transferMs: number;
  /** Of which in sha256 of the streamed bytes. */
  hashMs: number;
  /** After the last byte: waiting for a sync along the way still running, then the final fsync (the others overlap the transfer). */
  syncMs: number;
  /** Rename to the final name and fsync of the directory. */
  renameMs: number;
}

export async function downloadVerified(request: DownloadRequest): Promise<DownloadResult> {
  const timings: DownloadTimings = { resumeHashMs: 0, firstByteMs: 0, transferMs: 0, hashMs: 0, syncMs: 0, renameMs: 0 };
  if (await exists(request.destination)) return { resumedFrom: request.length, received: 0, cached: true, timings };
  const partPath = `${request.destination}.part`;
  await fs.mkdir(path.dirname(partPath), { recursive: true });

  let hash = createHash('sha256');
  let mark = performance.now();
  let offset = await hashExisting(partPath, hash, request.length);
  timings.resumeHashMs = performance.now() - mark;
  if (offset === undefined) {
    await fs.rm(partPath, { force: true });
    offset = 0;
    hash = createHash('sha256');
  }
  const resumedFrom = offset;
  let received = 0;

  if (offset < request.length) {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    request.signal?.addEventListener('abort', onAbort);
    // One timer checks for a stall instead of a timer re-armed on every 16-64 KiB chunk (a
    // clearTimeout + setTimeout per chunk is measurable at loopback speed). Paused while we sleep
    // for the bandwidth limit: that pause is ours, not the network's.
    let lastByteAt = performance.now();
    let pacing = false;
    let awaitingAnswer = request.get !== undefined;
    const stallTimer = setInterval(() => {
      if (!pacing && !awaitingAnswer && performance.now() - lastByteAt >= request.stallTimeoutMs) controller.abort();
    }, Math.max(10, Math.min(1000, request.stallTimeoutMs / 10)));
    // setTimeout fires at once above 2^31-1 ms (about 24 days), so the bound is capped there.
    const deadline = setTimeout(() => controller.abort(), Math.min(2 ** 31 - 1, request.stallTimeoutMs + ((request.length - offset) / (request.minBytesPerSecond ?? 1024)) * 1000));
    const headers: Record<string, string> = request.token ? { authorization: `Bearer ${request.token}` } : {};
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = `"sha256:${request.sha256}"`;
    }
    const handle = await fs.open(partPath, 'a');
    try {
      let response: HttpResponse;
      mark = performance.now();
      try {
        response = request.get
          ? await request.get(request.url, headers, controller.signal).then((res) => ({ status: res.statusCode ?? 0, headers: res.headers, body: res }))
          : request.readBufferBytes && request.url.startsWith('http:')
            ? // Loaded only here, so the daemon never holds its code. undefined: a body not
              // framed by Content-Length, asked again through node:http.
              ((await (await import('./raw-get.ts')).rawGet(request.url, headers, controller.signal, request.readBufferBytes)) ?? (await httpGet(request.url, headers, controller.signal)))
            : await httpGet(request.url, headers, controller.signal);
        awaitingAnswer = false;
        lastByteAt = performance.now();
        timings.firstByteMs = lastByteAt - mark;
      } catch (error) {
        const why = controller.signal.aborted ? `no answer for ${request.stallTimeoutMs} ms` : (error as Error).message;
        throw new UpdateError('download_failed', `cannot reach ${new URL(request.url).host}: ${why}`, true, { cause: error });
      }
      if (response.status === 200 && offset > 0) {
        // The server ignored the range (or the validator changed): start over.
        await handle.truncate(0);
        offset = 0;
        hash = createHash('sha256');
      } else if (response.status === 206) {
        const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
        if (!range || Number(range[1]) !== offset || Number(range[2]) !== request.length) {
          // Refuse a range that does not continue our bytes or a changed total size.
          response.body.destroy();
          await handle.truncate(0);
          throw new UpdateError('download_failed', 'the server answered a range that does not continue the partial download', true);
        }
      } else if (response.status !== 200) {
        response.body.destroy();
        throw new UpdateError('download_failed', `GET ${new URL(request.url).pathname} answered ${response.status}`, response.status >= 500 || response.status === 429);
      }
      const startedAt = performance.now();
      const startOffset = offset;
      request.onProgress?.(offset);
      // Writes are batched (writeBatchBytes) and overlap the next reads: one write in flight at a
      // time, in order, from one buffer while the other fills.
      const batchBytesMax = Math.min(writeBatchBytes, request.length - offset);
      const batches = [Buffer.allocUnsafeSlow(batchBytesMax), Buffer.allocUnsafeSlow(batchBytesMax)];
      let batch = batches[0]!;
      let batchBytes = 0;
      let writing: Promise<unknown> = Promise.resolve();
      const syncBytes = request.syncIntervalBytes ?? defaultSyncIntervalBytes;
      const syncMs = request.syncIntervalMs ?? defaultSyncIntervalMs;
      let unsynced = 0;
      let syncedAt = performance.now();
      // A sync runs beside the next writes and reads (it covers at least what was written before
      // it started); one at a time. Its failure is kept and thrown when the transfer ends.
      let syncing: Promise<void> = Promise.resolve();
      let syncError: unknown;
      const write = async (buffer: Buffer, bytes: number) => {
        for (let done = 0; done < bytes; ) done += (await handle.write(buffer, done, bytes - done)).bytesWritten;
        unsynced += bytes;
        if (unsynced >= syncBytes || performance.now() - syncedAt >= syncMs) {
          unsynced = 0;
          syncedAt = performance.now();
          syncing = syncing.then(() => handle.datasync()).catch((error: unknown) => {
            syncError ??= error;
          });
        }
      };
      const flush = async () => {
        if (batchBytes === 0) return;
        const full = batch;
        const bytes = batchBytes;
        // The other buffer is free again once its write has finished.
        await writing;
        batch = full === batches[0] ? batches[1]! : batches[0]!;
        batchBytes = 0;
        writing = write(full, bytes);
      };
      try {
        for await (const value of response.body) {
          lastByteAt = performance.now();
          if (offset + value.length > request.length) {
            batchBytes = 0;
            await writing.catch(() => {});
            await handle.truncate(0);
            throw new UpdateError('size_mismatch', `the server sent more than the ${request.length} signed bytes`, false);
          }
          const hashStart = performance.now();
          hash.update(value);
          timings.hashMs += performance.now() - hashStart;
          for (let at = 0; at < value.length; ) {
            const copied = value.copy(batch, batchBytes, at);
            at += copied;
            batchBytes += copied;
            if (batchBytes === batch.length) await flush();
          }
          if (collectGarbage && Math.floor((received + value.length) / collectEveryBytes) > Math.floor(received / collectEveryBytes)) collectGarbage({ type: 'minor' });
          offset += value.length;
          received += value.length;
          request.onProgress?.(offset);
          if (request.bandwidthLimit) {
            // Pace to the cap: sleep until the bytes so far would have taken at that speed. The
            // stall check is paused meanwhile; the sleep is ours, not the network's.
            const due = ((offset - startOffset) / request.bandwidthLimit) * 1000 - (performance.now() - startedAt);
            if (due > 0) {
              pacing = true;
              await new Promise((resolve) => setTimeout(resolve, due));
              pacing = false;
              lastByteAt = performance.now();
            }
          }
        }
        await flush();
        await writing;
        // A sync still running along the way counts as the final sync's wait.
        const syncWait = performance.now();
        await syncing;
        timings.syncMs += performance.now() - syncWait;
        if (syncError) throw syncError;
      } catch (error) {
        // Keep every byte that arrived: the next attempt resumes after it.
        await flush().catch(() => {});
        await writing.catch(() => {});
        await syncing;
        if (error instanceof UpdateError) throw error;
        const why = request.signal?.aborted ? 'the daemon is stopping' : controller.signal.aborted ? `no byte for ${request.stallTimeoutMs} ms (stalled connection)` : (error as Error).message;
        throw new UpdateError('download_failed', `download interrupted after ${offset} of ${request.length} bytes: ${why}`, true, { cause: error });
      } finally {
        response.body.destroy();
      }
      timings.transferMs = performance.now() - startedAt - timings.syncMs;
      mark = performance.now();
      await handle.sync();
      timings.syncMs += performance.now() - mark;
    } finally {
      clearInterval(stallTimer);
      clearTimeout(deadline);
      request.signal?.removeEventListener('abort', onAbort);
      await handle.close();
      if (collectGarbage && received >= collectEveryBytes) collectGarbage();
    }
  }

  if (offset !== request.length) {
    throw new UpdateError('download_failed', `download ended after ${offset} of ${request.length} bytes`, true);
  }
  const actual = hash.digest('hex');
  if (actual !== request.sha256) {
    await fs.rm(partPath, { force: true });
    throw new UpdateError('digest_mismatch', `downloaded bytes hash to sha256:${actual}, but the signed hash is sha256:${request.sha256}`, false);
  }
  mark = performance.now();
  await fs.rename(partPath, request.destination);
  await syncDirectory(path.dirname(request.destination));
  timings.renameMs = performance.now() - mark;
  return { resumedFrom, received, cached: false, timings };
}

/** Feeds the bytes already on disk into `hash`; undefined when the part is unusable. */
async function hashExisting(partPath: string, hash: Hash, maxLength: number): Promise<number | undefined> {
  let size: number;
  try {
    size = (await fs.stat(partPath)).size;
  } catch {
    return 0;
  }
  if (size > maxLength) return undefined;
  for await (const chunk of createReadStream(partPath)) hash.update(chunk as Buffer);
  return size;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Chunks are read before the next is asked for (a raw body reuses one buffer). */
  body: AsyncIterable<Buffer> & { destroy(): void };
}

/**
 * One GET with node:http(s) streams rather than fetch(): on loopback fetch's web streams cost
 * about 3x the CPU per byte (scripts/bench/download), which is what a small device lacks.
 * Aborting `signal` destroys the socket, which also ends a half-open connection.
 */
function httpGet(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const client = target.protocol === 'https:' ? https : http;
    const req = client.get(target, { headers, signal }, (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
    req.on('error', reject);
  });
}
