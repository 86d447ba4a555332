import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../lib/files.ts';
import { UpdateError } from './errors.ts';

/**
 * Downloads one blob to `destination`, verified against the signed length and SHA-256 before it
 * gets its final name. Bytes arrive in `<destination>.part`; after an interruption the next call
 * hashes what is there and asks only for the rest (Range + If-Range on the blob's strong ETag).
 * The length limit is enforced while streaming, whatever the server says.
 */
export interface DownloadRequest {
  url: string;
  token: string;
  destination: string;
  /** Signed length in bytes. */
  length: number;
  /** Signed SHA-256, lowercase hex. */
  sha256: string;
  /** Abort when no byte arrives for this long (a half-open connection would hang forever). */
  stallTimeoutMs: number;
  /** Bytes per second; 0 or absent: as fast as the link goes. */
  bandwidthLimit?: number;
  /** Called with the number of bytes of this blob on disk, as they arrive. */
  onProgress?: (bytes: number) => void;
  /** Stops the transfer (the daemon is shutting down); the part file is kept for a resume. */
  signal?: AbortSignal;
}

export async function downloadVerified(request: DownloadRequest): Promise<{ resumedFrom: number; received: number }> {
  if (await exists(request.destination)) return { resumedFrom: request.length, received: 0 };
  const partPath = `${request.destination}.part`;
  await fs.mkdir(path.dirname(partPath), { recursive: true });

  let hash = createHash('sha256');
  let offset = await hashExisting(partPath, hash, request.length);
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
    let stallTimer = setTimeout(() => controller.abort(), request.stallTimeoutMs);
    const headers: Record<string, string> = { authorization: `Bearer ${request.token}` };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = `"sha256:${request.sha256}"`;
    }
    const handle = await fs.open(partPath, 'a');
    try {
      let response: Response;
      try {
        response = await fetch(request.url, { headers, signal: controller.signal });
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
        const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
        if (!range || Number(range[1]) !== offset || Number(range[2]) !== request.length) {
          // Refuse a range that does not continue our bytes or a changed total size.
          await response.body?.cancel();
          await handle.truncate(0);
          throw new UpdateError('download_failed', 'the server answered a range that does not continue the partial download', true);
        }
      } else if (response.status !== 200) {
        await response.body?.cancel();
        throw new UpdateError('download_failed', `GET ${new URL(request.url).pathname} answered ${response.status}`, response.status >= 500 || response.status === 429);
      }
      const reader = response.body!.getReader();
      const startedAt = performance.now();
      const startOffset = offset;
      request.onProgress?.(offset);
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          clearTimeout(stallTimer);
          stallTimer = setTimeout(() => controller.abort(), request.stallTimeoutMs);
          if (offset + value.length > request.length) {
            await handle.truncate(0);
            throw new UpdateError('size_mismatch', `the server sent more than the ${request.length} signed bytes`, false);
          }
          hash.update(value);
          await handle.write(value);
          offset += value.length;
          received += value.length;
          request.onProgress?.(offset);
          if (request.bandwidthLimit) {
            // Pace to the cap: sleep until the bytes so far would have taken at that speed. The
            // stall timer is paused meanwhile; the sleep is ours, not the network's.
            const due = ((offset - startOffset) / request.bandwidthLimit) * 1000 - (performance.now() - startedAt);
            if (due > 0) {
              clearTimeout(stallTimer);
              await new Promise((resolve) => setTimeout(resolve, due));
              stallTimer = setTimeout(() => controller.abort(), request.stallTimeoutMs);
            }
          }
        }
      } catch (error) {
          if (error instanceof UpdateError) throw error;
        const why = request.signal?.aborted ? 'the daemon is stopping' : controller.signal.aborted ? `no byte for ${request.stallTimeoutMs} ms (stalled connection)` : (error as Error).message;
        throw new UpdateError('download_failed', `download interrupted after ${offset} of ${request.length} bytes: ${why}`, true, { cause: error });
      } finally {
        reader.releaseLock();
      }
      await handle.sync();
    } finally {
      clearTimeout(stallTimer);
      request.signal?.removeEventListener('abort', onAbort);
      await handle.close();
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
  await fs.rename(partPath, request.destination);
  await syncDirectory(path.dirname(request.destination));
  return { resumedFrom, received };
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
