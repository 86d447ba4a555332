import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';

/**
 * One HTTP/1.1 GET whose body is read straight from the socket into one reused buffer (net's
 * `onread`), for large transfers at LAN or loopback speed. node:http hands every socket read over
 * as a fresh 64 KiB Buffer through its parser and a stream; at loopback speed that costs an edge
 * more CPU than hashing the same bytes (0.5-0.7 s of CPU per 512 MiB against 0.1 s read this way,
 * scripts/bench/replicate.ts), and the freed Buffers keep the collector busy.
 *
 * The body is an async iterable whose chunks are views of that one buffer: a chunk is valid only
 * until the next one is asked for (the socket is paused meanwhile, so the kernel holds what comes
 * next and the following read is larger). Only bodies framed by Content-Length are read this way
 * (what Convoy's blob routes send); any other framing answers `undefined` so the caller can ask
 * again with node:http (a proxy that re-chunks, say). The request asks for `Connection: close`: one
 * transfer per connection, nothing to pool.
 *
 * Plain http: only. Over TLS a paused socket was seen to close with decrypted bytes still
 * unread (a body short by its last 64 KiB), and TLS costs more than the reads this saves: an
 * https: origin is read through node:http (lib/download.ts decides).
 */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: RawBody;
}

export interface RawBody extends AsyncIterable<Buffer> {
  /** Closes the connection (a body not read to its end, an abort). */
  destroy(): void;
}

/** A response head larger than this is refused (a misdirected or hostile server). */
const maxHeadBytes = 64 * 1024;

export function rawGet(url: string, headers: Record<string, string>, signal: AbortSignal, bufferBytes: number): Promise<RawResponse | undefined> {
  const target = new URL(url);
  if (target.protocol !== 'http:') return Promise.reject(new Error(`rawGet: ${target.protocol} is not http:`));
  const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`, 'Connection: close', 'Accept-Encoding: identity'];
  for (const [name, value] of Object.entries(headers)) {
    // A header value never holds a line break: it would end the request head early.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) return Promise.reject(new Error(`rawGet: header ${name} holds a line break`));
    lines.push(`${name}: ${value}`);
  }
  const request = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

  return new Promise((resolve, reject) => {
    const buffer = Buffer.allocUnsafeSlow(bufferBytes);
    let head: Buffer[] = [];
    let headBytes = 0;
    let answered = false;
    let remaining = 0;
    // One slot between the socket and the iterator: a chunk (the socket paused), the end or an error.
    let chunk: Buffer | undefined;
    let ended = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const waiting = wake;
      wake = undefined;
      waiting?.();
    };
    const fail = (error: Error) => {
      failure ??= error;
      socket.destroy();
      if (!answered) reject(failure);
      notify();
    };

    const onRead = (bytes: number, into: Buffer): boolean => {
      if (answered) return deliver(into.subarray(0, bytes));
      head.push(Buffer.from(into.subarray(0, bytes)));
      headBytes += bytes;
      const all = head.length === 1 ? head[0]! : Buffer.concat(head);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        head = [all];
        if (headBytes > maxHeadBytes) fail(new Error(`the response head from ${target.host} exceeds ${maxHeadBytes} bytes`));
        return true;
      }
      head = [];
      const parsed = parseHead(all.subarray(0, end).toString('latin1'));
      if (!parsed) {
        fail(new Error(`${target.host} answered something that is not HTTP/1.x`));
        return true;
      }
      answered = true;
      const length = parsed.headers['content-length'];
      const framed = parsed.headers['transfer-encoding'] === undefined && length !== undefined && /^\d+$/.test(length);
      if (!framed) {
        // A body without a length is left to node:http; a bodiless answer (an error status) is fine.
        socket.destroy();
        ended = true;
        resolve(parsed.status === 200 || parsed.status === 206 ? undefined : { status: parsed.status, headers: parsed.headers, body });
        return true;
      }
      remaining = Number(length);
      resolve({ status: parsed.status, headers: parsed.headers, body });
      // The body's first bytes came with the head, within the last read: copied to the buffer's
      // start, where a read would have put them.
      const rest = all.subarray(end + 4);
      if (rest.length === 0) {
        if (remaining === 0) finish();
        return true;
      }
      rest.copy(buffer);
      return deliver(buffer.subarray(0, rest.length));
    };
    const deliver = (data: Buffer): boolean => {
      if (data.length > remaining) {
        // More than the announced length: the framing is broken; keep what was announced.
        data = data.subarray(0, remaining);
      }
      remaining -= data.length;
      chunk = data;
      notify();
      // Paused while the caller holds the chunk: the next read would overwrite it.
      return false;
    };
    const finish = () => {
      ended = true;
      socket.destroy();
      notify();
    };

    const socket = net.connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port) || 80, onread: { buffer, callback: onRead } });
    socket.once('connect', () => socket.write(request));
    socket.on('error', fail);
    socket.on('close', () => {
      // The server closed before the announced length: a short body (the caller sees it end early).
      if (!answered) fail(new Error(`${target.host} closed the connection without an answer`));
      else if (!ended) {
        ended = true;
        notify();
      }
    });
    const onAbort = () => fail(new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal.removeEventListener('abort', onAbort));

    const body: RawBody = {
      destroy: () => {
        ended = true;
        socket.destroy();
        notify();
      },
      [Symbol.asyncIterator]() {
        let held = false;
        return {
          async next(): Promise<IteratorResult<Buffer>> {
            if (held) {
              // The caller is done with the last chunk: the buffer is free for the next read.
              held = false;
              chunk = undefined;
              if (remaining === 0) finish();
              else if (!ended && !failure) socket.resume();
            }
            while (!chunk && !ended && !failure) await new Promise<void>((resolve) => (wake = resolve));
            if (failure) throw failure;
            if (chunk) {
              held = true;
              return { value: chunk, done: false };
            }
            return { value: undefined, done: true };
          },
          async return(): Promise<IteratorResult<Buffer>> {
            body.destroy();
            return { value: undefined, done: true };
          },
        };
      },
    };
  });
}

/** `HTTP/1.1 206 Partial Content` and its header lines (names lowercased; a repeated one joined by commas). */
function parseHead(text: string): { status: number; headers: IncomingHttpHeaders } | undefined {
  const [statusLine, ...fields] = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine ?? '');
  if (!match) return undefined;
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    if (colon <= 0) return undefined;
    const name = field.slice(0, colon).trim().toLowerCase();
    const value = field.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(match[1]), headers };
}
