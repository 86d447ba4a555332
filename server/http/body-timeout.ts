import type http from 'node:http';
import type { Logger } from '../../protocol/log.ts';

/**
 * Cuts request bodies that go silent. Node's `requestTimeout` bounds a whole request, which
 * large uploads cannot live with (the server sets it to 0), and nothing else bounds a body
 * trickling a byte every few seconds: such a client held its request (and what the request
 * holds) for the better part of an hour. While a request's body is still arriving, the socket's
 * byte count is sampled; a body with no new byte for `idleMs` has its connection closed. A body
 * the server stopped reading (after a 401, say) stalls the count as well and is cut the same way.
 */
export function cutIdleBodies(server: http.Server, idleMs: number, log: Logger): void {
  const sampleMs = Math.max(50, Math.floor(idleMs / 4));
  server.on('request', (req: http.IncomingMessage) => {
    const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return;
    const socket = req.socket;
    let seen = socket.bytesRead;
    let lastProgress = Date.now();
    const timer = setInterval(() => {
      if (req.complete || socket.destroyed) return stop();
      if (socket.bytesRead !== seen) {
        seen = socket.bytesRead;
        lastProgress = Date.now();
        return;
      }
      if (Date.now() - lastProgress < idleMs) return;
      log.warn('request body idle; closing the connection', { method: req.method, path: req.url?.split('?')[0], idleMs, received: seen });
      stop();
      socket.destroy();
    }, sampleMs);
    timer.unref();
    const stop = () => clearInterval(timer);
    req.once('close', stop);
  });
}
