import fs from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type Koa from 'koa';
import { blobReceipt, digestPath } from '../../protocol/api.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { BlobReaders } from './readers.ts';
import type { BlobStore } from './store.ts';

/**
 * Serves a stored blob with HTTP range support (RFC 9110 §14): a single `bytes=` range answers
 * 206 with Content-Range; If-Range with a stale validator answers the whole blob (200). The ETag
 * is the digest itself: the strongest validator there is, since the bytes can never change.
 */
export async function sendBlob(ctx: Koa.Context, blobs: BlobStore, digest: string, size: number, options: { readChunkBytes?: number } = {}): Promise<void> {
  const { readChunkBytes } = options;
  // The body: a stream (koa pipes it), or with readChunkBytes the pump below, beside koa. The
  // file is opened first, so a blob gone since its stat (a collector sweep) still answers 404.
  const body = async (range?: { start: number; end: number }) => {
    if (!readChunkBytes) return void (ctx.body = blobs.openRead(digest, range));
    const handle = await fs.open(blobs.pathOf(digest), 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new ApiError('not_found', `blob ${digest} is not stored`) : error;
    });
    ctx.respond = false;
    void pumpFile(ctx.res, handle, range ?? { start: 0, end: size - 1 }, readChunkBytes);
  };
  const etag = `"${digest}"`;
  ctx.set('ETag', etag);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'private, max-age=31536000, immutable');
  ctx.type = 'application/octet-stream';
  if (ctx.get('if-none-match') === etag) {
    ctx.status = 304;
    return;
  }
  const rangeHeader = ctx.get('range');
  const ifRange = ctx.get('if-range');
  const range = rangeHeader && (!ifRange || ifRange === etag) ? parseRange(rangeHeader, size) : undefined;
  if (range === 'unsatisfiable') {
    ctx.status = 416;
    ctx.set('Content-Range', `bytes */${size}`);
    ctx.body = { error: { code: 'invalid_request', message: `range not satisfiable for a blob of ${size} bytes` } };
    return;
  }
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    ctx.length = range.end - range.start + 1;
    // HEAD: no body at all (a null body would turn the answer into 204 No Content).
    if (ctx.method !== 'HEAD') await body(range);
    return;
  }
  ctx.status = 200;
  ctx.length = size;
  if (ctx.method !== 'HEAD') await body();
}

/**
 * Sends bytes [start, end] of an open file (closed when done) with two buffers of `chunk` bytes, reused: a buffer is read
 * into again only once the socket has taken its last bytes (the write's callback), so one read
 * overlaps one write and nothing is allocated per read. A file stream allocates a Buffer per
 * read; at 1 MiB reads those kept V8's collector busy (external memory), at 64 KiB the reads
 * themselves cost 2-3x the CPU per byte (scripts/bench/replicate.ts). Headers are those the
 * context set; a read error or a client gone ends the response.
 */
export async function pumpFile(res: ServerResponse, handle: fs.FileHandle, range: { start: number; end: number }, chunk: number): Promise<void> {
  const gone = new Promise<void>((resolve) => res.once('close', resolve));
  try {
    const buffers = [Buffer.allocUnsafeSlow(chunk), Buffer.allocUnsafeSlow(chunk)] as const;
    // Settled when the socket has taken the buffer's bytes, or failed to (the client went away).
    const taken: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    for (let position = range.start, turn = 0; position <= range.end; turn ^= 1) {
      await Promise.race([taken[turn], gone]);
      if (res.destroyed) return;
      const buffer = buffers[turn]!;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(chunk, range.end + 1 - position), position);
      if (bytesRead === 0) throw new Error('the blob file ended before its size');
      position += bytesRead;
      taken[turn] = new Promise<void>((resolve) => res.write(buffer.subarray(0, bytesRead), () => resolve()));
    }
    res.end();
    // The buffers stay referenced (and the file open) until the last bytes are in the socket.
    await Promise.race([Promise.all(taken), gone]);
  } catch (error) {
    res.destroy(error as Error);
  } finally {
    await handle.close().catch(() => {});
  }
}

/** One `bytes=start-end`, `bytes=start-` or `bytes=-suffix` range; anything else is ignored (200). */
export function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (match[2] !== '' && Number(match[2]) < start) return undefined;
  }
  if (start >= size || !Number.isSafeInteger(start)) return 'unsatisfiable';
  return { start, end };
}

/**
 * An edge mirrors whole blobs, a few at a time: they are sent in 1 MiB reads by pumpFile instead
 * of a file stream's 64 KiB reads (each a syscall, a fresh Buffer and a stream turn: at loopback
 * speed 2-3x the origin's CPU per byte). Devices keep the stream: thousands of them download at
 * once, and pumpFile holds 2 MiB per transfer.
 */
export const edgeReadChunkBytes = 1024 * 1024;

/** `edgeMayRead`: whether an edge node may read a digest from this origin (one of its replication tasks names it). */
export function blobRoutes(blobs: BlobStore, maxBlobBytes: number, readers?: BlobReaders, edgeMayRead?: (edge: string, digest: string) => Promise<boolean>): Route[] {
  return [
    route({
      method: 'PUT', path: '/api/v1/blobs/:digest', action: 'blob:write', summary: 'Upload a blob (streamed, digest verified)', params: digestPath, rawBody: 'application/octet-stream', responses: { 200: blobReceipt, 201: blobReceipt },
      async handler({ koa, params }) {
        const expected = params.digest;
        const declared = koa.get('content-length');
        const expectedSize = declared ? Number(declared) : undefined;
        if (expectedSize !== undefined && expectedSize > maxBlobBytes) throw new ApiError('payload_too_large', `blob exceeds the limit of ${maxBlobBytes} bytes`);
        const existing = await blobs.stat(expected);
        const stored = await blobs.put(koa.req, { expected, maxBytes: maxBlobBytes, ...(expectedSize !== undefined ? { expectedSize } : {}) });
        koa.status = existing ? 200 : 201;
        koa.body = stored;
      },
    }),
    ...(['GET', 'HEAD'] as const).map((method) =>
      route({
        method, path: '/api/v1/blobs/:digest', action: 'blob:read', summary: 'Download a blob (Range supported)', params: digestPath, responses: { 200: 'binary', 206: 'binary', 304: 'empty' },
        async handler({ koa, params, principal, edge }) {
          const { digest } = params;
          // The read model per bundle (server/blobs/readers.ts): a blob only of bundles the
          // caller may not read answers exactly as a blob never stored (404, not 403), so its
          // existence is not confirmed either.
          const readable =
            edge !== undefined
              ? edgeMayRead !== undefined && (await edgeMayRead(edge, digest))
              : readers === undefined || (principal !== undefined && (await readers.mayRead(principal, 'blob:read', digest)));
          const stat = readable ? await blobs.stat(digest) : undefined;
          if (!stat) throw new ApiError('not_found', `blob ${digest} is not stored`);
          await sendBlob(koa, blobs, digest, stat.size, edge !== undefined ? { readChunkBytes: edgeReadChunkBytes } : {});
        },
      }),
    ),
  ];
}
