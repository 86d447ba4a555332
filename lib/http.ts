import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';

/*
 * One request over node:http(s), for small requests: the daemon's (TUF metadata, the release
 * poll) and the CLI's JSON calls. Not the global fetch(): its first call loads undici and
 * compiles its WebAssembly HTTP parser, which costs a process about 13 MiB of RSS for good
 * (measured: `node -e` holding a fetch 52.7 MiB, holding an http.get 43.3 MiB, doing neither
 * 39.5 MiB), more than convoyd's idle budget leaves, and about 130 ms of CPU (fetch 210 ms, http
 * 80 ms, `node -e 0` 70 ms), half of a `convoy` command's budget (scripts/bench/footprint).
 */

/**
 * How an https: request proves who it is and whom it trusts. Passed in by the caller (the
 * daemon reads them from device.json, `convoyd enroll` from its flags); absent: the system's
 * trust store and no client certificate.
 */
export interface TlsOptions {
  /** Client certificate (PEM, with its chain after it) and its key: mutual TLS. */
  cert?: string;
  key?: string;
  /** The only trust anchors (PEM): the fleet root. The system store is then not consulted. */
  ca?: string;
  /**
   * SHA-256 fingerprints (hex, colons optional) of which one must be a certificate the server
   * presents in its chain. Checked after the handshake and before a byte of the request is
   * written, on the very connection that carries it: a mismatch sends nothing.
   */
  pinSha256?: readonly string[];
}

export interface GetOptions {
  headers?: Record<string, string>;
  /** Ends the request and the reading of its body after this many milliseconds (as fetch's AbortSignal.timeout). */
  timeoutMs: number;
  tls?: TlsOptions | undefined;
  signal?: AbortSignal | undefined;
}

export interface RequestOptions {
  method: string;
  headers?: Record<string, string>;
  /** A body known in full (JSON); streamed bodies are not this helper's job. */
  body?: string;
  /** As in GetOptions; absent: no deadline of ours. */
  timeoutMs?: number | undefined;
  tls?: TlsOptions | undefined;
  /** Ends the request (and the reading of its body) when aborted, as fetch's signal. */
  signal?: AbortSignal | undefined;
}

/** The server presented no certificate of the pinned fingerprints: nothing was sent. */
export class PinMismatchError extends Error {
  override readonly name = 'PinMismatchError';
  readonly code = 'ERR_TLS_PIN_MISMATCH';
  constructor(
    message: string,
    /** SHA-256 fingerprints (lowercase hex) of the certificates the server presented. */
    readonly presented: readonly string[],
  ) {
    super(message);
  }
}

const normalFingerprint = (text: string) => text.replace(/[:\s]/g, '').toLowerCase();

/** Fingerprints of the chain the server presented, leaf first (issuerCertificate ends at a self-signed one). */
function presentedFingerprints(socket: TLSSocket): string[] {
  const out: string[] = [];
  let cert = socket.getPeerCertificate(true) as (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: unknown }) | undefined;
  while (cert && cert.fingerprint256 && !out.includes(normalFingerprint(cert.fingerprint256))) {
    out.push(normalFingerprint(cert.fingerprint256));
    cert = cert.issuerCertificate as typeof cert;
  }
  return out;
}

/**
 * Resolves with the response once its headers arrive; the caller reads (or destroys) the body.
 * A failed request is rejected as fetch() rejects it, so callers tell an outage apart the same
 * way: a network failure is a TypeError (the system error as `cause`), the deadline a
 * TimeoutError. A body cut while it is read fails its stream with the system error (ECONNRESET)
 * or an AbortError (the deadline).
 */
export function httpRequest(url: string, options: RequestOptions): Promise<IncomingMessage> {
  const signals = [...(options.timeoutMs === undefined ? [] : [AbortSignal.timeout(options.timeoutMs)]), ...(options.signal ? [options.signal] : [])];
  const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : target.protocol === 'http:' ? http : undefined;
  if (!client) return Promise.reject(new TypeError(`${options.method} ${url}: not an http(s) URL`));
  const failure = (error: Error) =>
    signal?.aborted ? (signal.reason as Error) : error instanceof PinMismatchError ? error : new TypeError(`${options.method} ${target.pathname} failed: ${error.message}`, { cause: error });
  const headers = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
  const tls = client === https ? options.tls : undefined;
  const tlsOptions = tls ? { ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}), ...(tls.ca ? { ca: tls.ca } : {}) } : {};
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions = { method: options.method, headers, ...tlsOptions, ...(signal ? { signal } : {}) };
    if (tls?.pinSha256?.length) {
      // Our own connection, checked before the request is handed to it: the chain need not
      // verify against any store (the pin is the trust), but the server must hold the key of
      // the certificate it presents (the handshake proves it) and one of them must be pinned.
      const pins = tls.pinSha256.map(normalFingerprint);
      // No agent (not even `agent: false`, which makes one): then node uses createConnection.
      requestOptions.rejectUnauthorized = false;
      requestOptions.createConnection = (_options, oncreate) => {
        let called = false;
        const done = (error: Error | null, socket?: TLSSocket) => {
          if (called) return;
          called = true;
          oncreate(error, socket as TLSSocket);
        };
        const host = target.hostname.replace(/^\[|\]$/g, '');
        void import('node:tls').then(({ connect }) => {
          const socket = connect({ host, port: Number(target.port || 443), ...(isIP(host) ? {} : { servername: host }), ...tlsOptions, rejectUnauthorized: false });
          socket.once('secureConnect', () => {
            const presented = presentedFingerprints(socket);
            if (presented.some((f) => pins.includes(f))) return done(null, socket);
            socket.destroy();
            done(new PinMismatchError(`the server at ${target.host} presented no certificate with the pinned SHA-256 fingerprint (it presented ${presented.join(', ') || 'none'}); nothing was sent`, presented));
          });
          socket.once('error', (error) => done(error));
        });
        return undefined;
      };
    }
    const request = client.request(target, requestOptions, resolve);
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
