import net from 'node:net';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { decideDeviceTopic, type MqttAction } from '../../protocol/acl.ts';
import { clientIdAllowed } from '../../protocol/client-ids.ts';
import type { Logger } from '../../protocol/log.ts';
import { bundleFromReleasesTopic, bundleReleasesTopic, maxMessageBytes } from '../../protocol/messages.ts';
import { actsAsAdmin, isAllowed, type Principal } from '../auth/policy.ts';
import { createPresenceBatcher } from './batch.ts';
import { createConnectionGuard, defaultMqttLimits, type MqttLimits } from './limits.ts';
import { createStatusRate } from './status-rate.ts';

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
  /** Drops every connection of this device, however it signed in (decommissioned, revoked, or moved to another group). */
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
  /** A device's session opened or closed (online state; rollouts). */
  onPresence?: (deviceId: string, online: boolean) => void;
  /**
   * Presence written in batches instead (batch.ts): the latest state of each device since the
   * last write, so a reconnect storm's sign-ins do not queue one UPDATE each on the database
   * that the next sign-ins' lookups wait for. Preferred over `onPresence` when both are given.
   */
  onPresenceMany?: (online: readonly string[], offline: readonly string[]) => Promise<void>;
  log: Logger;
  /** A listener bound already (server/listeners.ts: ports are bound before any state is made); without one the broker binds `port` itself. */
  listener?: { server: net.Server; serve(handler: (socket: net.Socket) => void): void };
  /**
   * A bound TLS listener that requires a client certificate of the fleet CA (MQTT over TLS,
   * port 8883 by convention): a client signs in with its certificate, the user name if given
   * must be its CN, the password is ignored. `authenticate` says whom the certificate stands for.
   */
  tls?: { server: tls.Server; authenticate: (peer: { commonName: string; serial: string }) => Promise<Principal | undefined> };
  /** Packet, pre-auth and pending-connection bounds (server/broker/limits.ts); defaults when unset. */
  limits?: MqttLimits;
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
  /**
   * The verified client certificate of each connection from the TLS listener, by the stream aedes
   * reads: the guard's wrapper (`guard.admit`), not the TLS socket itself.
   */
  const peers = new WeakMap<object, { commonName: string; serial: string }>();
  const limits = deps.limits ?? defaultMqttLimits;
  const statusRate = createStatusRate({ perSecond: limits.statusPerSecond, burst: limits.statusBurst, log: deps.log });
  const presenceBatch = deps.onPresenceMany ? createPresenceBatcher(deps.onPresenceMany, (error) => deps.log.warn('presence not recorded', { error })) : undefined;
  const presence = (deviceId: string, online: boolean) => (presenceBatch ? presenceBatch.offer(deviceId, online) : deps.onPresence?.(deviceId, online));
  const guard = createConnectionGuard(limits, (reason, remote) => deps.log.debug('MQTT connection closed by the guard', { reason, remote }));

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
    connectTimeout: limits.connectTimeoutMs,
    concurrency: limits.deliveryConcurrency,
    authenticate(client, username, password, done) {
      const refuse = (returnCode: 2 | 4 = 4) => {
        const error = new Error(returnCode === 2 ? 'client id not allowed for this sign-in' : 'bad user name or password') as AuthenticateError;
        // MQTT 3.1.1 §3.2.2.3: 2 identifier rejected, 4 bad user name or password
        error.returnCode = returnCode;
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
            // The same client-id binding as a token sign-in (protocol/client-ids.ts).
            const owner = principal.type === 'device' ? { type: 'device' as const, deviceId: principal.deviceId } : { type: 'user' as const, name: principal.name };
            if (!clientIdAllowed(owner, client.id)) {
              deps.log.info('MQTT client id refused', { client: client.id, device: peer.commonName });
              return refuse(2);
            }
            principals.set(client, principal);
            clients.add(client);
            guard.authenticated(client.conn);
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
          // Refused before aedes looks the id up, so the session it names is left alone.
          const owner = principal.type === 'device' ? { type: 'device' as const, deviceId: principal.deviceId } : { type: 'user' as const, name: principal.name };
          if (!clientIdAllowed(owner, client.id)) {
            deps.log.info('MQTT client id refused', { client: client.id, principal: claimed });
            return refuse(2);
          }
          principals.set(client, principal);
          clients.add(client);
          guard.authenticated(client.conn);
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
  aedes.on('clientReady', (client) => {
    const principal = principals.get(client);
    if (principal?.type === 'device') presence(principal.deviceId, true);
  });
  aedes.on('clientDisconnect', (client) => {
    const principal = principals.get(client);
    // Offline only when no other session of the device remains (a reconnect may overlap).
    if (principal?.type === 'device' && ![...clients].some((c) => c !== client && (principals.get(c) as { deviceId?: string } | undefined)?.deviceId === principal.deviceId)) {
      presence(principal.deviceId, false);
    }
    clients.delete(client);
    clearTimeout(expiryTimers.get(client));
    expiryTimers.delete(client);
  });
  aedes.on('publish', (packet, client) => {
    const principal = client ? principals.get(client) : undefined;
    if (!principal) return; // the server's own publications and $SYS traffic
    const payload = Buffer.from(packet.payload);
    const deliver = () => deps.onMessage(packet.topic, payload, principal);
    // One device must not flood the database: beyond its rate, the latest message waits its turn.
    if (principal.type === 'device') statusRate.offer(principal.deviceId, deliver);
    else deliver();
  });
  aedes.on('clientError', (client, error) => deps.log.debug('MQTT client error', { client: client.id, error }));

  // Every connection reaches aedes through the guard (limits.ts), never as the raw socket.
  const admit = (socket: net.Socket) => {
    const connection = guard.admit(socket);
    if (connection) aedes.handle(connection);
  };
  const server = deps.listener?.server ?? net.createServer(admit);
  if (deps.listener) deps.listener.serve(admit);
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
      // Through the guard like every connection; aedes sees (and the lookup keys on) its wrapper.
      const connection = guard.admit(socket);
      if (!connection) return;
      peers.set(connection, { commonName: String(cert.subject?.CN ?? ''), serial: cert.serialNumber ?? '' });
      aedes.handle(connection);
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
    disconnectToken(tokenId) {
      for (const client of clients) {
        const principal = principals.get(client);
        if (principal?.type === 'user' && principal.tokenId === tokenId) client.close();
      }
    },
    disconnectDevice(deviceId) {
      for (const client of clients) {
        const principal = principals.get(client);
        if (principal?.type === 'device' && principal.deviceId === deviceId) client.close();
      }
    },
    close: async () => {
      for (const timer of expiryTimers.values()) clearTimeout(timer);
      guard.close();
      statusRate.close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      // The last sessions' "offline" reach the database before the server closes it.
      await presenceBatch?.flush();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (tlsServer) await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    },
  };
}
