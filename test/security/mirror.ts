import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A malicious mirror on loopback: it sits between a real convoyd and the real server, forwards
 * every request honestly, until the test hands it an attack. An attack sees each request first
 * and may answer it itself (with altered, replayed, endless or drip-fed bytes); whatever it does
 * not answer is forwarded. `fetchUpstream` lets an attack start from the server's real bytes.
 */
export interface MirrorRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  res: http.ServerResponse;
  fetchUpstream(): Promise<{ status: number; headers: Headers; body: Buffer }>;
}
export type Attack = (request: MirrorRequest) => Promise<boolean> | boolean;

export interface Mirror {
  url: string;
  /** Every path requested, in order, for assertions on what the device asked for. */
  requests: string[];
  attack(attack: Attack | null): void;
  close(): Promise<void>;
}

const forwardedRequestHeaders = ['authorization', 'range', 'if-range', 'accept'];
const forwardedResponseHeaders = ['content-type', 'content-length', 'content-range', 'etag', 'accept-ranges', 'cache-control'];

export async function startMirror(upstream: () => string): Promise<Mirror> {
  let current: Attack | null = null;
  const requests: string[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const upstreamFetch = (path: string, headers: http.IncomingHttpHeaders) => {
    const forwarded: Record<string, string> = {};
    for (const name of forwardedRequestHeaders) if (typeof headers[name] === 'string') forwarded[name] = headers[name];
    return fetch(`${upstream()}${path}`, { headers: forwarded });
  };

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const attack = current;
    void (async () => {
      try {
        const request: MirrorRequest = {
          path,
          headers: req.headers,
          res,
          async fetchUpstream() {
            const response = await upstreamFetch(path, req.headers);
            return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
          },
        };
        if (attack && (await attack(request))) return;
        const response = await upstreamFetch(path, req.headers);
        const headers: Record<string, string> = {};
        for (const name of forwardedResponseHeaders) {
          const value = response.headers.get(name);
          if (value !== null) headers[name] = value;
        }
        res.writeHead(response.status, headers);
        if (response.body) for await (const chunk of response.body as AsyncIterable<Uint8Array>) res.write(chunk);
        res.end();
      } catch {
        res.destroy();
      }
    })();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    attack(attack) {
      current = attack;
    },
    async close() {
      current = null;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends bytes as a normal 200 answer. */
export function answer(res: http.ServerResponse, body: Buffer, contentType = 'application/json'): true {
  res.writeHead(200, { 'content-type': contentType, 'content-length': String(body.length) });
  res.end(body);
  return true;
}

/** Never-ending answer: chunks until the client gives up (endless-data attack). */
export function endless(res: http.ServerResponse): true {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  const pump = () => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  res.on('close', () => res.removeAllListeners('drain'));
  pump();
  return true;
}

/** Drip-feeds `body`, one byte every `intervalMs` (slow-retrieval attack). */
export function drip(res: http.ServerResponse, body: Buffer, intervalMs: number): true {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
  let offset = 0;
  const timer = setInterval(() => {
    if (res.destroyed || offset >= body.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(body.subarray(offset, offset + 1));
    offset += 1;
  }, intervalMs);
  res.on('close', () => clearInterval(timer));
  return true;
}
