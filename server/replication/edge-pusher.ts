import { Readable } from 'node:stream';
import { pushBlobReceipt, pushBlobState, pushMetadataReceipt, type PushBlobState } from '../../protocol/edge.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import { throttle } from './registry-client.ts';

/*
 * Push mode, the origin's side: a client of an edge's inbound routes (server/edge/inbound.ts),
 * signed in with the edge's own token (kept sealed at the origin, never logged). A blob is first
 * asked about: one the edge holds is skipped; one it holds part of is sent from the edge's offset
 * (`Content-Range: bytes OFFSET-END/SIZE`), so an upload cut mid-blob resumes there on the next
 * try. Errors say whether a retry may help (a 5xx, a reset connection) or not (a refusal).
 */

export interface EdgeTarget {
  /** The edge's advertised URL (`convoy edge add NAME --url URL`). */
  url: string;
  token: string;
  /** Bytes per second for blob uploads (null: unlimited). */
  bandwidth: number | null;
  /** A request with no answer for this long is abandoned, in milliseconds. */
  timeoutMs: number;
}

export class EdgePushError extends Error {
  override readonly name = 'EdgePushError';
  constructor(
    message: string,
    /** Worth retrying (the edge unreachable, a 5xx, a cut upload), as opposed to a refusal. */
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EdgePusher {
  blobState(digest: string): Promise<PushBlobState>;
  /** Sends a blob unless the edge holds it; returns the bytes sent in this call (0: it was there). */
  pushBlob(digest: string, size: number, open: (start: number) => Readable): Promise<number>;
  pushMetadata(files: readonly { name: string; content: Buffer }[]): Promise<{ published: string[]; bytes: number }>;
  withdraw(digest: string): Promise<void>;
}

export function createEdgePusher(target: EdgeTarget, fetchImpl: typeof fetch = fetch): EdgePusher {
  const base = target.url.replace(/\/+$/, '');
  const authorization = `Bearer ${target.token}`;

  async function send(what: string, url: string, init: RequestInit & { duplex?: 'half' }, timeout = true): Promise<Response> {
    try {
      return await fetchImpl(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization }, redirect: 'manual', ...(timeout ? { signal: AbortSignal.timeout(target.timeoutMs) } : {}) } as RequestInit);
    } catch (error) {
      throw new EdgePushError(`${what}: the edge at ${base} did not answer (${(error as Error).message})`, true, { cause: error });
    }
  }

  async function read<T>(response: Response, what: string, schema: Parameters<typeof parseWith>[0]): Promise<T> {
    const text = await response.text();
    if (response.ok) return parseWith(schema, parseJson(text, `${what} answer`), `${what} answer`) as T;
    let detail = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.message) detail = `${body.error.code}: ${body.error.message}`;
    } catch {
      // not JSON: keep the text
    }
    throw new EdgePushError(`${what}: the edge answered ${response.status} (${detail})`, response.status >= 500 || response.status === 429 || response.status === 409);
  }

  const pusher: EdgePusher = {
    async blobState(digest) {
      return read(await send(`asking about ${digest}`, `${base}/api/v1/edge/push/blobs/${digest}`, { method: 'GET' }), `asking about ${digest}`, pushBlobState);
    },
    async pushBlob(digest, size, open) {
      const state = await pusher.blobState(digest);
      if (state.size !== null) return 0;
      // What the edge kept of an interrupted upload is not sent again; a part longer than the
      // blob cannot be this blob's: the edge's hash check drops it once the size is reached.
      const start = state.offset < size ? state.offset : 0;
      const source = open(start);
      const limited = target.bandwidth ? source.pipe(throttle(target.bandwidth)) : source;
      // No overall timeout: a large blob under a bandwidth limit takes as long as it takes.
      const response = await send(
        `uploading ${digest}`,
        `${base}/api/v1/edge/push/blobs/${digest}`,
        {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size - start), 'content-range': size === 0 ? 'bytes */0' : `bytes ${start}-${size - 1}/${size}` },
          body: Readable.toWeb(limited) as unknown as ReadableStream,
          duplex: 'half',
        },
        false,
      );
      const receipt = await read<{ complete: boolean; offset: number }>(response, `uploading ${digest}`, pushBlobReceipt);
      if (!receipt.complete) throw new EdgePushError(`uploading ${digest}: the edge holds ${receipt.offset} of ${size} bytes`, true);
      return size - start;
    },
    async pushMetadata(files) {
      const body = JSON.stringify({ files: files.map((file) => ({ name: file.name, content: file.content.toString('base64') })) });
      return read(await send('sending metadata', `${base}/api/v1/edge/push/metadata`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }), 'sending metadata', pushMetadataReceipt);
    },
    async withdraw(digest) {
      const response = await send(`withdrawing ${digest}`, `${base}/api/v1/edge/push/withdrawals`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ digest }) });
      if (response.status === 204) return;
      await read(response, `withdrawing ${digest}`, pushBlobState);
    },
  };
  return pusher;
}
