import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

/*
 * One request over node:http(s), for small requests: the daemon's (TUF metadata, the release
 * poll) and the CLI's JSON calls. Not the global fetch(): its first call loads undici and
 * compiles its WebAssembly HTTP parser, which costs a process about 13 MiB of RSS for good
 * (measured: `node -e` holding a fetch 52.7 MiB, holding an http.get 43.3 MiB, doing neither
 * 39.5 MiB), more than convoyd's idle budget leaves, and about 130 ms of CPU (fetch 210 ms, http
 * 80 ms, `node -e 0` 70 ms), half of a `convoy` command's budget (scripts/bench/footprint).
 */

export interface GetOptions {
  headers?: Record<string, string>;
  /** Ends the request and the reading of its body after this many milliseconds (as fetch's AbortSignal.timeout). */
  timeoutMs: number;
}

export interface RequestOptions {
  method: string;
  headers?: Record<string, string>;
  /** A body known in full (JSON); streamed bodies are not this helper's job. */
  body?: string;
  /** As in GetOptions; absent: no deadline of ours. */
  timeoutMs?: number;
}

/**
 * Resolves with the response once its headers arrive; the caller reads (or destroys) the body.
 * A failed request is rejected as fetch() rejects it, so callers tell an outage apart the same
 * way: a network failure is a TypeError (the system error as `cause`), the deadline a
 * TimeoutError. A body cut while it is read fails its stream with the system error (ECONNRESET)
 * or an AbortError (the deadline).
 */
export function httpRequest(url: string, options: RequestOptions): Promise<IncomingMessage> {
  const signal = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : target.protocol === 'http:' ? http : undefined;
  if (!client) return Promise.reject(new TypeError(`${options.method} ${url}: not an http(s) URL`));
  const failure = (error: Error) => (signal?.aborted ? (signal.reason as Error) : new TypeError(`${options.method} ${target.pathname} failed: ${error.message}`, { cause: error }));
  const headers = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const request = client.request(target, { method: options.method, headers, ...(signal ? { signal } : {}) }, resolve);
    request.on('error', (error) => reject(failure(error)));
    request.end(options.body);
  });
}

export function httpGet(url: string, options: GetOptions): Promise<IncomingMessage> {
  return httpRequest(url, { method: 'GET', ...options });
}

/** The whole body as text, refusing more than `maxBytes` (the connection is closed). */
export async function readText(response: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response) {
    length += (chunk as Buffer).length;
    if (length > maxBytes) {
      response.destroy();
      throw new Error(`the answer is over the size limit (${maxBytes} bytes)`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
