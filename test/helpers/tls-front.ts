import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * An HTTPS server on loopback with the given certificate (PEM, chain after it), as a TLS
 * reverse proxy puts the server's HTTP port behind TLS in production (docs/device-install.md).
 * With `target` it forwards every request there; without, it answers 500 (an impostor). It
 * records each request that got through its TLS handshake.
 */
export interface TlsFront {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

export async function startTlsFront(cert: string, key: string, target?: string): Promise<TlsFront> {
  const requests: string[] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (!target) return void res.writeHead(500).end();
    const upstream = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
