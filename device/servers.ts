import type { IncomingMessage } from 'node:http';
import type { DeviceServer } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import { httpRequest, type GetOptions, type TlsOptions } from '../lib/http.ts';

/*
 * The servers a device talks HTTP to (device.json `servers`, or the one `serverUrl`), and how it
 * moves between them. An edge and the origin serve the same device API and the same
 * content-addressed blobs, and everything they send is verified against signed metadata, so the
 * transport is never trusted: failing over changes only where bytes come from.
 *
 * The rule (docs/device-install.md, "Several servers"): a request goes to the server that last
 * answered; when it fails (no connection, no answer in time, a 5xx), to the next in the list, and
 * the one that answers is remembered. After `failbackMs` away from the first (preferred) server,
 * the next request tries the first again. A 4xx is an answer, not an outage: it stands.
 */

/** What the pool remembers: the server that last answered, and since when (ms). */
export interface PoolState {
  active: number;
  since: number;
}

/** The order to try the servers in for one request: the remembered one first (or the preferred one, when failback is due), then the rest in list order. */
export function tryOrder(count: number, state: PoolState, now: number, failbackMs: number): number[] {
  const first = state.active !== 0 && now - state.since >= failbackMs ? 0 : state.active;
  return [first, ...Array.from({ length: count }, (_, i) => i).filter((i) => i !== first)];
}

/**
 * After server `index` answered: the state to remember. A failback that found the preferred
 * server still down starts the interval over, so it is not tried before every request.
 */
export function answered(state: PoolState, index: number, now: number, failedBack = false): PoolState {
  return index === state.active && !(failedBack && index !== 0) ? state : { active: index, since: now };
}

/** Whether a failed attempt should move on to the next server: an outage, not an answer. */
export function isOutage(outcome: { status: number } | { error: unknown }): boolean {
  if ('status' in outcome) return outcome.status >= 500;
  return true;
}

export interface ServerRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Per server: give up on one that has not answered (headers) in this long, and try the next. */
  answerTimeoutMs: number;
  /** The caller's own end (daemon stopping, a stalled body): never a reason to fail over. */
  signal?: AbortSignal | undefined;
}

export interface ServerAnswer {
  response: IncomingMessage;
  /** Base URL of the server that answered. */
  server: string;
}

export interface ServerPool {
  /** `pathOrUrl`: a path (`/api/v1/…`) or a URL under any listed server (tuf-js hands full URLs). */
  request(pathOrUrl: string, options: ServerRequest): Promise<ServerAnswer>;
  /**
   * As lib/http.ts's httpGet (same options, same failures), over the pool: each server has
   * `timeoutMs` to answer (headers), then the body has `timeoutMs` to arrive.
   */
  get(pathOrUrl: string, options: GetOptions): Promise<IncomingMessage>;
  /** A renewed certificate: used from the next request on. */
  setIdentity(identity: { cert: string; key: string; ca: string }): void;
  /** The server that answered last (the one the next request tries first, unless failback is due). */
  current(): string;
  readonly servers: readonly string[];
}

export interface ServerPoolOptions {
  servers: readonly DeviceServer[];
  /** The device's certificate, key and fleet root: https: servers are spoken to with these alone. */
  identity?: { cert: string; key: string; ca: string } | undefined;
  /** The device token, for http: servers (and https: ones when the device has no certificate). */
  token?: string | undefined;
  failbackMs: number;
  log: Logger;
  now?: () => number;
}

const trimBase = (url: string) => url.replace(/\/+$/, '');

export function createServerPool(given: ServerPoolOptions): ServerPool {
  const options = { ...given };
  const servers = options.servers.map((s) => trimBase(s.url));
  const now = options.now ?? Date.now;
  let state: PoolState = { active: 0, since: now() };
  const credentials = (base: string): { headers: Record<string, string>; tls?: TlsOptions } => {
    // Over HTTPS an enrolled device is its certificate: no token goes on the wire.
    if (base.startsWith('https:') && options.identity) return { headers: {}, tls: options.identity };
    if (!options.token) throw new TypeError(`${base} needs a device token (no certificate for it, or it is plain http), and there is no token file`);
    return { headers: { authorization: `Bearer ${options.token}` }, ...(options.identity ? { tls: { ca: options.identity.ca } } : {}) };
  };
  const pathOf = (pathOrUrl: string) => {
    if (pathOrUrl.startsWith('/')) return pathOrUrl;
    const base = servers.find((s) => pathOrUrl.startsWith(`${s}/`));
    if (!base) throw new TypeError(`${pathOrUrl} is not under a configured server`);
    return pathOrUrl.slice(base.length);
  };

  const pool: ServerPool = {
    servers,
    current: () => servers[state.active]!,
    setIdentity(identity) {
      options.identity = identity;
    },
    async get(pathOrUrl, get) {
      const body = new AbortController();
      const signal = get.signal ? AbortSignal.any([body.signal, get.signal]) : body.signal;
      const { response } = await pool.request(pathOrUrl, { ...(get.headers ? { headers: get.headers } : {}), answerTimeoutMs: get.timeoutMs, signal });
      const timer = setTimeout(() => body.abort(new DOMException(`the answer took over ${get.timeoutMs} ms`, 'TimeoutError')), get.timeoutMs);
      response.once('close', () => clearTimeout(timer));
      return response;
    },
    async request(pathOrUrl, request) {
      const urlPath = pathOf(pathOrUrl);
      const order = tryOrder(servers.length, state, now(), options.failbackMs);
      const failingBack = order[0] !== state.active;
      const failures: string[] = [];
      let lastError: unknown;
      for (const index of order) {
        if (request.signal?.aborted) break;
        const base = servers[index]!;
        // A deadline for the answer's headers only: a body (a large blob) may take long, and its
        // stalls are the caller's to judge.
        const answer = new AbortController();
        const timer = setTimeout(() => answer.abort(new DOMException(`no answer in ${request.answerTimeoutMs} ms`, 'TimeoutError')), request.answerTimeoutMs);
        try {
          const { headers, tls } = credentials(base);
          const response = await httpRequest(`${base}${urlPath}`, {
            method: request.method ?? 'GET',
            headers: { ...request.headers, ...headers },
            ...(request.body !== undefined ? { body: request.body } : {}),
            tls,
            signal: request.signal ? AbortSignal.any([answer.signal, request.signal]) : answer.signal,
          });
          const status = response.statusCode ?? 0;
          if (!isOutage({ status })) {
            remember(index, failingBack);
            return { response, server: base };
          }
          // Every server failed and this one answered last: its 5xx is the answer (the caller
          // tells a server error from a network one as before).
          if (index === order[order.length - 1]) return { response, server: base };
          response.resume();
          failures.push(`${base}: answered ${status}`);
        } catch (error) {
          if (request.signal?.aborted) throw error;
          lastError = error;
          failures.push(`${base}: ${(error as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
        const next = order[order.indexOf(index) + 1];
        if (next !== undefined) options.log.warn('server unavailable; trying the next', { server: base, next: servers[next], error: failures[failures.length - 1] });
      }
      throw new TypeError(`no server answered: ${failures.join('; ')}`, { cause: lastError });
    },
  };
  return pool;

  function remember(index: number, failedBack: boolean) {
    const next = answered(state, index, now(), failedBack);
    if (next !== state && next.active !== state.active) options.log.info('now using server', { server: servers[index], preferred: index === 0 });
    state = next;
  }
}
