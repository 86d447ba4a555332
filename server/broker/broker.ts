import net from 'node:net';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { decideDeviceTopic, type MqttAction } from '../../protocol/acl.ts';
import type { Logger } from '../../protocol/log.ts';
import { bundleFromReleasesTopic, bundleReleasesTopic, maxMessageBytes } from '../../protocol/messages.ts';
import { actsAsAdmin, isAllowed, type Principal } from '../auth/policy.ts';

/**
 * The embedded MQTT broker (aedes) with Convoy's policy as hooks: clients sign in with a user
 * name and an access token as the password; a device may subscribe only to its group's release
 * notices and publish only its own status; a user may subscribe to the release notices of the
 * bundles they may read (`bundle:read` in the policy table), an admin to anything. The server's
 * own publications bypass the hooks. A user's roles are read when they connect: a membership
 * change takes effect at their next connection; a revoked or expired token ends its connections.
 */
export interface Broker {
  readonly port: number;
  /** Publishes with QoS 1; `retain` keeps the last message for late subscribers (MQTT §3.3.1.3). */
  publish(topic: string, payload: string, retain: boolean): Promise<void>;
  /** Drops every connection signed in with this token (after it is revoked). */
  disconnectToken(tokenId: number): void;
  /** Drops every connection of this device, however it signed in (after it is revoked). */
  disconnectDevice(deviceId: string): void;
  /** The mutual-TLS listener's port, when there is one. */
  readonly mqttsPort: number | undefined;
  close(): Promise<void>;
}

export interface BrokerDeps {
  host: string;
  port: number;
  authenticate: (token: string) => Promise<Principal | undefined>;
  /** Called for every message a client publishes that passed authorisation. */
  onMessage: (topic: string, payload: Buffer, principal: Principal) => void;
  log: Logger;
  /** A listener bound already (server/listeners.ts: ports are bound before any state is made); without one the broker binds `port` itself. */
  listener?: { server: net.Server; serve(handler: (socket: net.Socket) => void): void };
  /**
   * A bound TLS listener that requires a client certificate of the fleet CA (MQTT over TLS,
   * port 8883 by convention): a client signs in with its certificate, the user name if given
   * must be its CN, the password is ignored. `authenticate` says whom the certificate stands for.
   */
  tls?: { server: tls.Server; authenticate: (peer: { commonName: string; serial: string }) => Promise<Principal | undefined> };
}

/** All bundles' notices at once; each message is then forwarded only to those who may read it. */
const allBundleReleases = bundleReleasesTopic('+');

/** Whether a user may subscribe to this topic filter. */
function userMaySubscribe(principal: Extract<Principal, { type: 'user' }>, topic: string): boolean {
  if (actsAsAdmin(principal)) return true;
  if (topic === allBundleReleases) return principal.scopes.has('read');
  const bundle = bundleFromReleasesTopic(topic);
  return bundle !== undefined && isAllowed(principal, 'bundle:read', { bundle });
}

/** A device's publish or subscribe, decided by the one ACL (protocol/acl.ts); refusals are logged. */
function deviceMay(principal: Extract<Principal, { type: 'device' }>, action: MqttAction, topic: string, log: Logger): boolean {
  const decision = decideDeviceTopic({ deviceId: principal.deviceId, groups: [principal.group] }, action, topic);
  if (!decision.allow) log.warn('MQTT refused', { device: principal.deviceId, action, topic, reason: decision.reason });
  return decision.allow;
}

export async function startBroker(deps: BrokerDeps): Promise<Broker> {
  const principals = new WeakMap<Client, Principal>();
  const clients = new Set<Client>();
  const expiryTimers = new Map<Client, NodeJS.Timeout>();
  /** The verified client certificate of each connection from the TLS listener, by the stream aedes reads. */
  const peers = new WeakMap<object, { commonName: string; serial: string }>();

  /** A connection lives no longer than its token: it is closed when the token expires. */
  function closeAtExpiry(client: Client, expiresAt: string): void {
    const delay = Date.parse(expiresAt) - Date.now();
    if (delay <= 0) return void client.close();
    // setTimeout holds at most ~24.8 days; longer waits re-arm until the token's time comes.
    const timer = setTimeout(() => closeAtExpiry(client, expiresAt), Math.min(delay, 2 ** 31 - 1));
    timer.unref();
    expiryTimers.set(client, timer);
  }
  const aedes = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const refuse = () => {
        const error = new Error('bad user name or password') as AuthenticateError;
        error.returnCode = 4; // MQTT 3.1.1 §3.2.2.3: bad user name or password
        done(error, false);
      };
      const peer = peers.get(client.conn);
      if (peer && deps.tls) {
        deps.tls.authenticate(peer).then(
          (principal) => {
            if (!principal || (username && username !== peer.commonName)) {
              deps.log.info('MQTT certificate refused', { client: client.id, device: peer.commonName });
              return refuse();
            }
            principals.set(client, principal);
            clients.add(client);
            done(null, true);
          },
          (error: unknown) => {
            deps.log.error('MQTT authentication failed', { error });
            refuse();
          },
        );
        return;
      }
      if (!username || !password) return refuse();
      deps.authenticate(password.toString('utf8')).then(
        (principal) => {
          const claimed = principal?.type === 'device' ? principal.deviceId : principal?.name;
          if (!principal || claimed !== username) return refuse();
          principals.set(client, principal);
          clients.add(client);
          if (principal.type === 'user' && principal.tokenExpiresAt) closeAtExpiry(client, principal.tokenExpiresAt);
          done(null, true);
        },
        (error: unknown) => {
          deps.log.error('MQTT authentication failed', { error });
          refuse();
        },
      );
    },
    authorizePublish(client, packet, callback) {
      const principal = client ? principals.get(client) : undefined;
      const allowed = principal?.type === 'device' && packet.payload.length <= maxMessageBytes && deviceMay(principal, 'publish', packet.topic, deps.log);
      if (principal?.type === 'user') deps.log.warn('MQTT refused', { user: principal.name, action: 'publish', topic: packet.topic, reason: 'users do not publish' });
      callback(allowed ? null : new Error('not authorised to publish here'));
    },
    authorizeSubscribe(client, subscription, callback) {
      const principal = principals.get(client);
      const allowed =
        (principal?.type === 'device' && deviceMay(principal, 'subscribe', subscription.topic, deps.log)) ||
        (principal?.type === 'user' && userMaySubscribe(principal, subscription.topic));
      // A null subscription answers SUBACK 0x80 (failure) without dropping the connection.
      callback(null, allowed ? subscription : null);
    },
    // The last gate, per message and subscriber: a wildcard subscription receives only the
    // notices of bundles its user may read (retained ones included).
    authorizeForward(client, packet) {
      const principal = principals.get(client);
      if (principal?.type !== 'user' || actsAsAdmin(principal)) return packet;
      const bundle = bundleFromReleasesTopic(packet.topic);
      return bundle !== undefined && isAllowed(principal, 'bundle:read', { bundle }) ? packet : null;
    },
  });
  aedes.on('clientDisconnect', (client) => {
    clients.delete(client);
    clearTimeout(expiryTimers.get(client));
    expiryTimers.delete(client);
  });
  aedes.on('publish', (packet, client) => {
    const principal = client ? principals.get(client) : undefined;
    if (!principal) return; // the server's own publications and $SYS traffic
    deps.onMessage(packet.topic, Buffer.from(packet.payload), principal);
  });
  aedes.on('clientError', (client, error) => deps.log.debug('MQTT client error', { client: client.id, error }));

  const server = deps.listener?.server ?? net.createServer(aedes.handle);
  if (deps.listener) deps.listener.serve((socket) => aedes.handle(socket));
  else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(deps.port, deps.host, () => resolve());
    });
  }
  const port = (server.address() as AddressInfo).port;
  if (deps.tls) {
    // rejectUnauthorized on the server: a connection arrives here only with a verified chain.
    deps.tls.server.on('secureConnection', (socket: tls.TLSSocket) => {
      const cert = socket.getPeerCertificate();
      peers.set(socket, { commonName: String(cert.subject?.CN ?? ''), serial: cert.serialNumber ?? '' });
      aedes.handle(socket);
    });
    deps.tls.server.on('tlsClientError', (error) => deps.log.debug('MQTT TLS handshake refused', { error }));
  }
  const tlsServer = deps.tls?.server;

  return {
    port,
    publish: (topic, payload, retain) =>
      new Promise((resolve, reject) =>
        aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain, dup: false }, (error) => (error ? reject(error) : resolve())),
      ),
    mqttsPort: tlsServer ? (tlsServer.address() as AddressInfo).port : undefined,
    disconnectDevice(deviceId) {
      for (const client of clients) {
        const principal = principals.get(client);
        if (principal?.type === 'device' && principal.deviceId === deviceId) client.close();
      }
    },
    disconnectToken(tokenId) {
      for (const client of clients) {
        const principal = principals.get(client);
        if (principal?.type === 'user' && principal.tokenId === tokenId) client.close();
      }
    },
    close: async () => {
      for (const timer of expiryTimers.values()) clearTimeout(timer);
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (tlsServer) await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    },
  };
}
