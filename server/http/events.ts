import { PassThrough } from 'node:stream';
import type Koa from 'koa';

/**
 * Server-sent events (HTML Living Standard §9.2, `text/event-stream`) carrying snapshots of one
 * resource: the stream sends the resource as it is, then again each time it changes, so a page
 * shows live progress without reloading or polling. Each change is a whole snapshot (not a diff):
 * a client that reconnects needs nothing but the next event.
 */
export interface SnapshotStreamOptions<T> {
  /** Reads the resource now (throws an ApiError for "not found" and the like). */
  load(): Promise<T>;
  /**
   * A cheap token that changes whenever the resource may have (e.g. its newest event's id): when
   * given, a poll reads the whole resource only after the token changed. A deployment of 2,000
   * devices is a large read; one viewer re-reading it every second churns the server's heap.
   */
  version?(): Promise<string>;
  /** True for a snapshot after which nothing changes any more: the stream sends it and ends. */
  isFinal?(value: T): boolean;
  /** How often the resource is read while the stream is open. */
  intervalMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs: number;
  /** A stream ends after this long; the client opens a new one (bounded server resources). */
  maxMs: number;
  /** Ends the stream early (server shutdown). */
  signal?: AbortSignal;
}

/**
 * Answers the request with the stream. The first snapshot is read before the answer starts, so a
 * missing resource is a normal JSON error, not a stream that fails.
 */
export async function streamSnapshots<T>(koa: Koa.Context, options: SnapshotStreamOptions<T>): Promise<void> {
  // Read before the snapshot, so a change between the two reads is seen at the next poll.
  let seen = await options.version?.();
  const first = await options.load();
  const out = new PassThrough();
  koa.status = 200;
  koa.type = 'text/event-stream';
  koa.set('Cache-Control', 'no-store');
  // Proxies such as nginx buffer responses unless told not to; events must arrive as they happen.
  koa.set('X-Accel-Buffering', 'no');
  koa.req.socket.setTimeout(0);
  koa.req.socket.setNoDelay(true);
  koa.body = out;

  let last = '';
  let ended = false;
  const timers: NodeJS.Timeout[] = [];
  const end = () => {
    if (ended) return;
    ended = true;
    for (const timer of timers) clearTimeout(timer);
    out.end();
  };
  const send = (value: T) => {
    const json = JSON.stringify(value);
    if (json !== last) {
      last = json;
      out.write(`event: snapshot\ndata: ${json}\n\n`);
    }
    if (options.isFinal?.(value)) end();
  };
  // The response's close (not the request's, which ends once a GET has been read): the client left.
  koa.res.on('close', end);
  options.signal?.addEventListener('abort', end, { once: true });
  send(first);
  if (ended) return;

  const poll = async () => {
    if (ended) return;
    try {
      const version = await options.version?.();
      if (version === undefined || version !== seen) {
        seen = version;
        send(await options.load());
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      out.write(`event: error\ndata: ${JSON.stringify({ error: { code: typeof code === 'string' ? code : 'internal', message: error instanceof Error ? error.message : String(error) } })}\n\n`);
      end();
      return;
    }
    if (!ended) timers[0] = setTimeout(() => void poll(), options.intervalMs);
  };
  timers[0] = setTimeout(() => void poll(), options.intervalMs);
  const beat = () => {
    if (ended) return;
    out.write(': still here\n\n');
    timers[1] = setTimeout(beat, options.heartbeatMs);
  };
  timers[1] = setTimeout(beat, options.heartbeatMs);
  timers[2] = setTimeout(end, options.maxMs);
}
