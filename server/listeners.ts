import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * The server's two listening sockets, bound before anything else happens at start: a busy port
 * must fail the start before the database, the admin user or the TUF keys are created, or the
 * first start would leave an admin whose generated token nobody ever saw (issue 9, 2.4).
 * Connections that arrive before the server is ready wait and are handed over when it is.
 */
export interface BoundPorts {
  http: http.Server;
  httpPort: number;
  mqttPort: number;
  /** Starts serving HTTP with this handler (requests that arrived meanwhile are handled now). */
  serveHttp(handler: http.RequestListener): void;
  /** Starts serving MQTT with this handler (connections that arrived meanwhile are handed over). */
  serveMqtt(handler: (socket: net.Socket) => void): void;
  /** The MQTT listener, for the broker to close with itself. */
  mqtt: net.Server;
  close(): Promise<void>;
}

/** A port another process holds: reported in one line, without a stack trace. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(
    readonly listener: 'HTTP' | 'MQTT',
    readonly host: string,
    readonly port: number,
    readonly variable: string,
    options?: { cause?: unknown },
  ) {
    super(`the ${listener} port ${port} on ${host} is already in use (another Convoy, or another program?); free it or set ${variable}`, options);
  }
}

function listen(server: net.Server, port: number, host: string, what: 'HTTP' | 'MQTT', variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(what, host, port, variable, { cause: error }) : error);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeQuietly(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    if (server instanceof http.Server) server.closeAllConnections();
  });
}

export async function bindPorts(config: { host: string; httpPort: number; mqttPort: number }): Promise<BoundPorts> {
  const waitingRequests: [http.IncomingMessage, http.ServerResponse][] = [];
  const holdRequest = (req: http.IncomingMessage, res: http.ServerResponse) => void waitingRequests.push([req, res]);
  const httpServer = http.createServer(holdRequest);
  const waitingSockets: net.Socket[] = [];
  const holdSocket = (socket: net.Socket) => void waitingSockets.push(socket);
  const mqttServer = net.createServer(holdSocket);
  try {
    await listen(httpServer, config.httpPort, config.host, 'HTTP', 'CONVOY_HTTP_PORT');
    await listen(mqttServer, config.mqttPort, config.host, 'MQTT', 'CONVOY_MQTT_PORT');
  } catch (error) {
    await Promise.all([closeQuietly(httpServer), closeQuietly(mqttServer)]);
    throw error;
  }
  return {
    http: httpServer,
    mqtt: mqttServer,
    httpPort: (httpServer.address() as AddressInfo).port,
    mqttPort: (mqttServer.address() as AddressInfo).port,
    serveHttp(handler) {
      httpServer.off('request', holdRequest);
      httpServer.on('request', handler);
      for (const [req, res] of waitingRequests.splice(0)) handler(req, res);
    },
    serveMqtt(handler) {
      mqttServer.off('connection', holdSocket);
      mqttServer.on('connection', handler);
      for (const socket of waitingSockets.splice(0)) if (!socket.destroyed) handler(socket);
    },
    close: async () => {
      await Promise.all([closeQuietly(httpServer), closeQuietly(mqttServer)]);
    },
  };
}
