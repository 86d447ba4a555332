import { createHash, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { digestPath } from '../../protocol/api.ts';
import { parseContentRange, pushBlobReceipt, pushBlobState, pushMetadataReceipt, pushMetadataRequest, pushWithdrawal, type PushBlobState } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import { hexOf } from '../../protocol/names.ts';
import { ensurePrivateDir, syncDirectory } from '../../lib/files.ts';
import type { EdgePrincipal } from '../auth/policy.ts';
import type { BlobStore } from '../blobs/store.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { MetadataMirror } from './metadata.ts';

/*
 * Push mode, the edge's side (docs/replication.md "Push to an edge"): the origin opens the
 * connections and sends what its tasks name. It signs in with this edge's own token
 * (CONVOY_EDGE_TOKEN, compared in constant time); nothing else may write here.
 *
 * A blob arrives in pieces appended to `<blob>.part` (the same file the pull mirror resumes), each
 * with `Content-Range: bytes START-END/TOTAL` whose START must be where the part ends, so a cut
 * upload resumes from the edge's offset. Once the part holds TOTAL bytes it is hashed: only a
 * blob whose sha256 is its digest gets its final name (a tampered byte: the part is dropped and
 * the upload refused). Metadata goes through the pull mirror's own verify-and-publish
 * (metadata.ts: TUF against the pinned root, the timestamp last); a withdrawal drops a manifest
 * as the pull path does.
 */

export interface InboundDeps {
  /** This edge's token (CONVOY_EDGE_TOKEN): the origin must present exactly it. */
  edgeToken: string;
  blobs: BlobStore;
  metadata: MetadataMirror;
  /** The largest blob accepted, in bytes. */
  maxBlobBytes: number;
  /** A blob was just received and verified (the serve-time check records it). */
  onVerified?(digest: string): Promise<void>;
  log: Logger;
}

/** The JSON bodies of push routes may carry a run's metadata (base64): bounded at this many bytes. */
export const maxPushJsonBytes = 16 * 1024 * 1024;

/** Whether a presented token is this edge's, without leaking how much of it matched (hashes have equal lengths). */
export function sameToken(presented: string, expected: string): boolean {
  const digestOf = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return expected.length > 0 && timingSafeEqual(digestOf(presented), digestOf(expected));
}

/** The router's edge-token hook for push routes: the origin is the only caller it knows. */
export function originByToken(edgeToken: string): (token: string) => Promise<EdgePrincipal | undefined> {
  return async (token) => (sameToken(token, edgeToken) ? { type: 'edge', edge: 'origin' } : undefined);
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export function inboundRoutes(deps: InboundDeps): Route[] {
  /** One writer per digest: two pieces of one blob never interleave in its part file. */
  const writing = new Map<string, Promise<unknown>>();
  const exclusive = async <T>(digest: string, work: () => Promise<T>): Promise<T> => {
    const before = writing.get(digest) ?? Promise.resolve();
    const run = before.then(work, work);
    const settled = run.catch(() => {});
    writing.set(digest, settled);
    try {
      return await run;
    } finally {
      if (writing.get(digest) === settled) writing.delete(digest);
    }
  };

  async function stateOf(digest: string): Promise<PushBlobState> {
    const held = await deps.blobs.stat(digest);
    return { digest, size: held?.size ?? null, offset: held ? held.size : await sizeOf(`${deps.blobs.pathOf(digest)}.part`) };
  }

  return [
    route({
      method: 'GET', path: '/api/v1/edge/push/blobs/:digest', action: 'edge:sync', summary: 'Push mode: whether this edge holds a blob, and where an interrupted upload of it stopped', params: digestPath, responses: { 200: pushBlobState },
      async handler({ koa, params }) {
        koa.body = await stateOf(params.digest);
      },
    }),
    route({
      method: 'PATCH', path: '/api/v1/edge/push/blobs/:digest', action: 'edge:sync', summary: 'Push mode: one piece of a blob (Content-Range: bytes START-END/TOTAL, START at the upload offset); verified by sha256 before it is visible', params: digestPath, rawBody: 'application/octet-stream', responses: { 200: pushBlobReceipt },
      async handler({ koa, params }) {
        const { digest } = params;
        const range = parseContentRange(koa.get('content-range'));
        if (!range) throw new ApiError('invalid_request', 'a piece needs Content-Range: bytes START-END/TOTAL (END < TOTAL)');
        if (range.total > deps.maxBlobBytes) throw new ApiError('payload_too_large', `blob exceeds the limit of ${deps.maxBlobBytes} bytes`);
        koa.body = await exclusive(digest, async () => {
          const held = await deps.blobs.stat(digest);
          if (held) {
            if (held.size !== range.total) throw new ApiError('size_mismatch', `this edge holds ${digest} with ${held.size} bytes, not ${range.total}`);
            koa.req.resume();
            return { digest, offset: held.size, complete: true };
          }
          const destination = deps.blobs.pathOf(digest);
          const partPath = `${destination}.part`;
          await ensurePrivateDir(path.dirname(destination));
          let offset = await sizeOf(partPath);
          if (offset > 0 && offset >= range.total) {
            // A part as long as the blob was never verified (a crash before the rename, or
            // bytes of something else): it cannot be resumed, so the upload starts again.
            await fs.rm(partPath, { force: true });
            offset = 0;
          }
          if (range.start !== offset) throw new ApiError('invalid_state', `the upload of ${digest} is at byte ${offset}, not ${range.start}: send from there (GET this URL for the offset)`);
          const expected = range.end - range.start + 1;
          let received = 0;
          // The piece is bounded while it streams, whatever Content-Length claims; bytes are
          // appended as they come, so a connection cut mid-piece keeps what arrived.
          const bound = new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              received += chunk.length;
              if (received > expected) callback(new ApiError('size_mismatch', `the piece is longer than its Content-Range (${expected} bytes)`));
              else callback(null, chunk);
            },
          });
          try {
            await pipeline(koa.req, bound, createWriteStream(partPath, { flags: 'a', mode: 0o600 }));
          } finally {
            // What arrived is durable before the offset is reported (a power cut loses no acknowledged byte).
            const written = await fs.open(partPath, 'r+');
            await written.sync().finally(() => written.close());
          }
          if (received !== expected) throw new ApiError('size_mismatch', `the piece ended after ${received} of ${expected} bytes`);
          const now = offset + received;
          if (now < range.total) return { digest, offset: now, complete: false };
          // The whole blob is here: it becomes visible only if it is the blob its digest names.
          const actual = await sha256Of(partPath);
          if (actual !== hexOf(digest)) {
            await fs.rm(partPath, { force: true });
            deps.log.warn('pushed blob refused: digest mismatch', { digest, actual: `sha256:${actual}` });
            throw new ApiError('digest_mismatch', `the ${range.total} bytes received hash to sha256:${actual}, not ${digest}; the upload was dropped`);
          }
          await fs.rename(partPath, destination);
          await syncDirectory(path.dirname(destination));
          await deps.onVerified?.(digest);
          return { digest, offset: now, complete: true };
        });
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/push/metadata', action: 'edge:sync', summary: "Push mode: a run's TUF metadata, verified against this edge's pinned root before it is published (the timestamp last)", body: pushMetadataRequest, responses: { 200: pushMetadataReceipt },
      async handler({ koa, body }) {
        const sent = new Map(body.files.map((file) => [file.name, Buffer.from(file.content, 'base64')]));
        try {
          // The pull mirror's own verification and publication, reading the files the origin sent
          // (a file not sent is one the origin does not have: tuf-js reads that as a 404).
          koa.body = await deps.metadata.sync([...sent.keys()], async (name) => sent.get(name));
        } catch (error) {
          if (error instanceof ApiError) throw error;
          deps.log.error('pushed metadata refused', { error: (error as Error).message });
          throw new ApiError('signature_invalid', `metadata refused: ${(error as Error).message}`.slice(0, 1000));
        }
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/push/withdrawals', action: 'edge:sync', summary: "Push mode: a revoked version's manifest leaves this edge", body: pushWithdrawal, responses: { 204: 'empty' },
      async handler({ koa, body }) {
        await deps.blobs.remove(body.digest).catch(() => undefined);
        koa.status = 204;
      },
    }),
  ];
}
