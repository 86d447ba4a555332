import path from 'node:path';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import Koa from 'koa';
import { digestPath, tufFilePath } from '../../protocol/api.ts';
import { createLogger, type Logger } from '../../protocol/log.ts';
import { deviceNotice } from '../../protocol/messages.ts';
import { devicePath } from '../../protocol/rollout.ts';
import { bundleOfRole } from '../../protocol/targets.ts';
import { ensurePrivateDir } from '../../lib/files.ts';
import type { Principal } from '../auth/policy.ts';
import { BlobStore } from '../blobs/store.ts';
import { sendBlob } from '../blobs/routes.ts';
import { ApiError, errorMiddleware } from '../http/errors.ts';
import { buildRouter, route, type Route } from '../http/routes.ts';
import type { EdgeConfig } from './config.ts';
import { createCredentialCache, type CredentialCache } from './credentials.ts';
import { createMetadataMirror } from './metadata.ts';
import { createMirror, type Mirror } from './mirror.ts';
import { createIntegrityCheck, type IntegrityCheck } from './integrity.ts';
import { createUpstream, UpstreamUnavailable, type Upstream } from './upstream.ts';
import { startBroker } from '../broker/broker.ts';
import { defaultMqttLimits } from '../broker/limits.ts';
import { deviceIdFromStatusTopic } from '../../protocol/messages.ts';
import { createNoticeRelay } from './notices.ts';
import { createSessionWatch } from './sessions.ts';
import { createReportQueue, type ReportQueue } from './reports.ts';
import type { DeviceCredential } from '../../protocol/edge.ts';
import { certificateOf, loadEdgeTls } from './tls.ts';
import { renewal, renewRequest } from '../../protocol/enrollment.ts';
import { inboundRoutes, maxPushJsonBytes, originByToken } from './inbound.ts';
import { defaultServerConfig } from '../config.ts';
import { createEdgeContent } from './content.ts';
import { edgeRegistryMiddleware, edgeTargetRoute } from './registry.ts';

/*
 * Edge mode (`convoy serve --mode edge --upstream URL`): the composition root of an edge node.
 * It mirrors what its origin's replication policies send it (mirror.ts, pull mode: the edge
 * opens every connection) and serves its devices the device API the origin serves: TUF metadata
 * under /tuf/, blobs by digest with Range, and the release poll. Device credentials are checked
 * by the origin and cached (credentials.ts). Writes belong to the origin: refused with
 * `edge_read_only` (a device's certificate renewal excepted: passed to the origin as it came).
 * With CONVOY_HTTPS_PORT, enrolled devices sign in with their fleet certificates on an HTTPS
 * listener whose own certificate the origin's fleet CA signed (tls.ts); with CONVOY_MQTTS_PORT,
 * on an MQTT-over-TLS listener with the same certificate, demanding theirs. Every device
 * connected to the broker is checked again now and then (sessions.ts): one revoked at the origin
 * is disconnected.
 */

export interface RunningEdge {
  url: string;
  httpPort: number;
  /** The edge's MQTT broker for its devices. */
  mqttPort: number;
  /** HTTPS for enrolled devices (config.httpsPort), with the certificate the origin's fleet CA signed. */
  httpsPort?: number | undefined;
  httpsUrl?: string | undefined;
  /** MQTT over TLS for enrolled devices (config.mqttsPort), with the same certificate. */
  mqttsPort?: number | undefined;
  mirror: Mirror;
  reports: ReportQueue;
  /** Asks the origin for the release of every device connected to the broker now. */
  refreshNotices(): Promise<void>;
  /** Checks the credential of every device connected to the broker now; resolves with those disconnected. */
  checkSessions(): Promise<string[]>;
  routes: readonly Route[];
  /** Push mode: what the origin calls here with this edge's token (inbound.ts). */
  inbound: readonly Route[];
  close(): Promise<void>;
}

export interface EdgeDeps {
  log?: Logger;
  /** Milliseconds for the credential cache (tests move time). */
  clock?: () => number;
  /** Leave the mirror stopped (tests drive syncOnce themselves). */
  manualSync?: boolean;
  /** How often the edge's TLS certificate is checked for renewal (ms; 1 h). */
  tlsRenewCheckMs?: number;
}

/** Device-facing routes, declared as the origin declares its own (same actions, same answers). */
export function edgeRoutes(deps: { integrity: IntegrityCheck; blobs: BlobStore; metadata: { read(name: string): Promise<Buffer | undefined> }; credentials: CredentialCache; upstream: Upstream; releases: Map<string, { status: number; body: Buffer }> }): Route[] {
  const tokenOf = (koa: Koa.Context): string => /^Bearer (\S+)$/i.exec(koa.get('authorization'))?.[1] ?? '';
  // On the HTTPS listener a device without a token is the certificate the TLS layer verified.
  const credentialOf = (koa: Koa.Context): DeviceCredential => (!koa.get('authorization') && certificateOf(koa)) || { token: tokenOf(koa) };
  async function allowed(koa: Koa.Context, digest?: string, bundle?: string): Promise<boolean> {
    try {
      return (await deps.credentials.check(credentialOf(koa), digest, bundle)).allowed;
    } catch (error) {
      if (error instanceof UpstreamUnavailable) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin to check the credential, and holds no recent answer for it');
      throw error;
    }
  }
  return [
    route({
      method: 'GET', path: '/tuf/:file', action: 'tuf:read', summary: 'Download TUF metadata (mirrored, verified against the pinned root)', params: tufFilePath, responses: { 200: 'binary' },
      async handler({ koa, params }) {
        // As on the origin: a bundle's role (`<n>.bundle-<name>.json`) only to who may read the bundle, 404 to others.
        const role = /^[1-9]\d{0,9}\.(.+)\.json$/.exec(params.file)?.[1];
        const bytes = (await allowed(koa, undefined, role ? bundleOfRole(role) : undefined)) ? await deps.metadata.read(params.file) : undefined;
        if (!bytes) throw new ApiError('not_found', `no metadata named "${params.file}"`);
        koa.type = 'application/json';
        koa.set('Cache-Control', /^\d+\./.test(params.file) ? 'private, max-age=31536000, immutable' : 'no-store');
        koa.body = bytes;
      },
    }),
    ...(['GET', 'HEAD'] as const).map((method) =>
      route({
        method, path: '/api/v1/blobs/:digest', action: 'blob:read', summary: 'Download a mirrored blob (Range supported)', params: digestPath, responses: { 200: 'binary', 206: 'binary', 304: 'empty' },
        async handler({ koa, params }) {
          // As on the origin: a blob the device may not read answers as one never stored.
          // Served only as verified: a file changed on disk is hashed again first (integrity.ts).
          const stat = (await allowed(koa, params.digest)) && (await deps.integrity.ensure(params.digest)) ? await deps.blobs.stat(params.digest) : undefined;
          if (!stat) throw new ApiError('not_found', `blob ${params.digest} is not on this edge`);
          await sendBlob(koa, deps.blobs, params.digest, stat.size);
        },
      }),
    ),
    route({
      // An enrolled device renews its certificate with whichever server it uses: the edge passes
      // the request to the origin as it came (the current certificate and a CSR of its key are
      // the proof, judged by the origin's fleet CA), so a device behind an edge keeps its identity.
      method: 'POST', path: '/api/v1/enroll/renew', action: 'device:enroll', anonymous: true, summary: "Renew a device's certificate (passed to the origin)", body: renewRequest, responses: { 200: renewal },
      async handler({ koa, body }) {
        let answer;
        try {
          answer = await deps.upstream.forwardPost('/api/v1/enroll/renew', body);
        } catch (error) {
          if (error instanceof UpstreamUnavailable) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin to renew the certificate');
          throw error;
        }
        koa.status = answer.status;
        koa.type = answer.contentType ?? 'application/json';
        koa.body = answer.body;
      },
    }),
    route({
      method: 'GET', path: '/api/v1/devices/:id/release', action: 'tuf:read', params: devicePath, summary: "What this device should run: the origin's answer, or the last one while the origin is unreachable", responses: { 200: deviceNotice, 204: 'empty' },
      async handler({ koa, params, principal }) {
        const credential = credentialOf(koa);
        const key = `${'token' in credential ? credential.token : `${credential.certificate.commonName}|${credential.certificate.serial}`}|${params.id}`;
        let answer: { status: number; body: Buffer };
        try {
          if ('certificate' in credential) {
            // No token to forward: the router signed the certificate in (asked of the origin); the
            // origin's rule that a device asks only for its own release is kept here.
            if (principal?.type !== 'device' || principal.deviceId !== params.id) throw new ApiError('forbidden', 'a device may only ask for its own release');
            answer = await deps.upstream.deviceRelease(params.id);
          } else answer = await deps.upstream.forward(`/api/v1/devices/${encodeURIComponent(params.id)}/release`, koa.get('authorization'));
          if (answer.status === 200 || answer.status === 204) deps.releases.set(key, answer);
          else deps.releases.delete(key);
        } catch (error) {
          if (!(error instanceof UpstreamUnavailable)) throw error;
          const cached = deps.releases.get(key);
          if (!cached) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin and has no release answer for this device yet');
          answer = cached;
        }
        koa.status = answer.status;
        if (answer.status !== 204) {
          koa.type = 'application/json';
          koa.body = answer.body;
        }
      },
    }),
  ];
}

/** The edge certificate as a TLS server context (client certificates must chain to the fleet root). */
function tlsContext(material: { cert: string; key: string; ca: string }) {
  return { cert: material.cert, key: material.key, ca: material.ca, minVersion: 'TLSv1.2' as const };
}

export async function startEdge(config: EdgeConfig, deps: EdgeDeps = {}): Promise<RunningEdge> {
  const log = deps.log ?? createLogger({ namespace: 'edge', level: config.logLevel, write: (line) => process.stderr.write(line) });
  await ensurePrivateDir(config.dataDir);
  const blobs = await BlobStore.open(path.join(config.dataDir, 'blobs'));
  const upstream = createUpstream({ url: config.upstreamUrl, token: config.edgeToken, timeoutMs: config.timeoutMs });
  const metadata = createMetadataMirror({ dataDir: config.dataDir, pinnedRootFile: config.upstreamRootFile, upstream, timeoutMs: config.timeoutMs, log: log.child('metadata') });
  let integrity: IntegrityCheck | undefined;
  const mirror = createMirror({ upstream, blobs, metadata, pollMs: config.pollMs, longPollSeconds: config.longPollSeconds, parallel: config.parallel, stallTimeoutMs: config.timeoutMs, log: log.child('mirror'), onVerified: (digest) => integrity!.trust(digest) });
  integrity = createIntegrityCheck({ blobs, quarantineDir: path.join(config.dataDir, 'quarantine'), refetch: (digest) => mirror.repair(digest), log: log.child('integrity') });
  const credentials = createCredentialCache({ ask: (credential, digest, bundle) => upstream.checkCredential(credential, digest, bundle), now: deps.clock ?? (() => Date.now()), freshMs: config.authFreshMs, staleMs: config.authStaleMs });
  const releases = new Map<string, { status: number; body: Buffer }>();
  // The edge certificate before anything listens: an edge that cannot have one fails its start cleanly.
  const tlsNames = config.httpsPort !== undefined || config.mqttsPort !== undefined ? config.tlsNames : undefined;
  const tlsLog = log.child('tls');
  const loadTls = (names: { dns: string[]; ip: string[] }) => loadEdgeTls({ dataDir: config.dataDir, names, upstream, now: () => new Date((deps.clock ?? Date.now)()), log: tlsLog });
  const firstTls = tlsNames ? await loadTls(tlsNames) : undefined;
  // What stock clients read (issue 12): /v2 pulls and /tuf/targets/, from the verified metadata (registry.ts).
  const content = createEdgeContent({ dataDir: config.dataDir, readMetadata: (name) => metadata.read(name), readBlob: async (digest) => ((await integrity!.ensure(digest)) ? blobs.readBytes(digest).catch(() => undefined) : undefined), log: log.child('content') });
  const routes = [...edgeRoutes({ integrity, blobs, metadata, credentials, upstream, releases }), edgeTargetRoute({ content, blobs, integrity, credentials })];

  // A device signs in with the token it would give the origin: the origin says whose it is.
  const auth = {
    async authenticate(token: string): Promise<Principal | undefined> {
      let verdict;
      try {
        verdict = await credentials.check({ token });
      } catch (error) {
        if (error instanceof UpstreamUnavailable) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin to check the credential, and holds no recent answer for it');
        throw error;
      }
      return verdict.device ? { type: 'device', deviceId: verdict.device.id, group: verdict.device.group } : undefined;
    },
  };
  const app = new Koa();
  app.proxy = false;
  app.silent = true;
  app.use(errorMiddleware(log.child('http')));
  // A verified certificate on the HTTPS listener: whose it is and whether it still holds, asked of the origin (cached).
  const certificatePrincipal = async (peer: { commonName: string; serial: string }): Promise<Principal | undefined> => {
    try {
      const verdict = await credentials.check({ certificate: peer });
      return verdict.device ? { type: 'device', deviceId: verdict.device.id, group: verdict.device.group } : undefined;
    } catch (error) {
      if (error instanceof UpstreamUnavailable) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin to check the certificate, and holds no recent answer for it');
      throw error;
    }
  };
  app.use(edgeRegistryMiddleware({ content, blobs, integrity, credentials, upstreamUrl: config.upstreamUrl, log: log.child('registry') }));
  const router = buildRouter(routes, { auth, certificatePrincipal, maxJsonBytes: 64 * 1024 });
  app.use(router.routes());
  // Push mode: the origin opens the connection and signs in with this edge's own token; no
  // other credential is asked about (a device token here is refused, not sent to the origin).
  const inbound = inboundRoutes({ edgeToken: config.edgeToken, blobs, metadata, maxBlobBytes: defaultServerConfig.maxBlobBytes, onVerified: (digest) => integrity!.trust(digest), log: log.child('inbound') });
  app.use(buildRouter(inbound, { auth: { authenticate: async () => undefined }, edgeToken: originByToken(config.edgeToken), maxJsonBytes: maxPushJsonBytes }).routes());
  // Whatever the edge does not serve: a write is the origin's to take; a read is not here.
  app.use(async (ctx) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new ApiError('edge_read_only', `this is an edge; use the origin (${config.upstreamUrl}) for ${ctx.method} ${ctx.path}`);
    throw new ApiError('not_found', `this edge serves devices only (/tuf/, /api/v1/blobs/, /api/v1/devices/ID/release, /v2 pulls); use the origin (${config.upstreamUrl}) for ${ctx.path}`);
  });

  // Devices' MQTT: their reports are stored on disk, then forwarded (reports.ts); their release
  // notices are asked of the origin and published here (notices.ts).
  const reports = createReportQueue({ dir: path.join(config.dataDir, 'reports'), upstream, retryMs: config.reportRetryMs, log: log.child('reports') });
  let publish: (topic: string, payload: string, retain: boolean) => Promise<void> = async () => {};
  const notices = createNoticeRelay({ upstream, publish: (topic, payload, retain) => publish(topic, payload, retain), intervalMs: config.noticeMs, log: log.child('notices') });
  let disconnect: (deviceId: string) => void = () => {};
  const sessions = createSessionWatch({ check: (credential) => credentials.check(credential), disconnect: (id) => disconnect(id), intervalMs: config.sessionCheckMs, log: log.child('sessions') });
  // MQTT over TLS (the origin's CONVOY_MQTTS_PORT): the certificate is demanded, not asked for
  // (rejectUnauthorized: a client without one chaining to the fleet root never reaches aedes,
  // as on the origin), and the device it names is asked of the origin like on HTTPS (cached).
  const mqttsServer = config.mqttsPort !== undefined && firstTls ? tls.createServer({ ...tlsContext(firstTls), requestCert: true, rejectUnauthorized: true }) : undefined;
  if (mqttsServer) {
    await new Promise<void>((resolve, reject) => {
      mqttsServer.once('error', reject);
      mqttsServer.listen(config.mqttsPort, config.host, () => resolve());
    });
  }
  const broker = await startBroker({
    host: config.host,
    port: config.mqttPort,
    async authenticate(token) {
      const principal = await auth.authenticate(token).catch(() => undefined);
      if (principal?.type === 'device') {
        notices.signedIn(principal.deviceId, token);
        sessions.signedIn(principal.deviceId, principal.group, { token });
      }
      return principal;
    },
    ...(mqttsServer
      ? {
          tls: {
            server: mqttsServer,
            async authenticate(peer: { commonName: string; serial: string }) {
              const principal = await certificatePrincipal(peer).catch(() => undefined);
              if (principal?.type === 'device') {
                notices.signedIn(principal.deviceId, undefined);
                sessions.signedIn(principal.deviceId, principal.group, { certificate: peer });
              }
              return principal;
            },
          },
        }
      : {}),
    onMessage(topic, payload, principal) {
      // The broker's ACL let the device publish only on its own status topic.
      if (principal.type !== 'device' || deviceIdFromStatusTopic(topic) !== principal.deviceId) return;
      void reports.enqueue(principal.deviceId, payload).catch((error: unknown) => log.error('device report not stored', { device: principal.deviceId, error }));
    },
    onPresence(id, online) {
      notices.presence(id, online);
      if (!online) sessions.signedOut(id);
    },
    log: log.child('mqtt'),
    limits: defaultMqttLimits,
  });
  publish = (topic, payload, retain) => broker.publish(topic, payload, retain);
  disconnect = (id) => broker.disconnectDevice(id);
  reports.start();

  // Renewal, checked now and then: a renewed certificate serves new connections at once, on
  // every TLS listener (HTTPS and MQTT over TLS share the edge certificate).
  const tlsServers: tls.Server[] = mqttsServer ? [mqttsServer] : [];
  let renewTimer: NodeJS.Timeout | undefined;
  if (firstTls && tlsNames) {
    let current = firstTls;
    // One check at a time: a renewal slower than the interval must not start a second one,
    // whose answer could land after a newer certificate and put the older one back.
    let checking = false;
    renewTimer = setInterval(() => {
      if (checking) return;
      checking = true;
      void loadTls(tlsNames)
        .then(
          (next) => {
            if (next.cert === current.cert) return;
            current = next;
            for (const server of tlsServers) server.setSecureContext(tlsContext(next));
          },
          (error: unknown) => tlsLog.warn('edge certificate check failed', { error: (error as Error).message }),
        )
        .finally(() => {
          checking = false;
        });
    }, deps.tlsRenewCheckMs ?? 60 * 60_000);
    renewTimer.unref();
  }

  const server = http.createServer(app.callback());
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.httpPort, config.host, () => resolve());
  });
  const httpPort = (server.address() as AddressInfo).port;
  const secure = config.httpsPort !== undefined && tlsNames ? await startHttps(config.httpsPort) : undefined;
  if (!deps.manualSync) mirror.start();

  // HTTPS for enrolled devices (server/edge/tls.ts): the certificate is asked for, not demanded,
  // as on the origin: a request without one falls to the token check and gets a typed 401.
  async function startHttps(port: number) {
    const httpsServer = https.createServer({ ...tlsContext(firstTls!), requestCert: true, rejectUnauthorized: false }, app.callback());
    httpsServer.headersTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      httpsServer.once('error', reject);
      httpsServer.listen(port, config.host, () => resolve());
    });
    tlsServers.push(httpsServer);
    return {
      port: (httpsServer.address() as AddressInfo).port,
      close: () =>
        new Promise<void>((resolve) => {
          httpsServer.close(() => resolve());
          httpsServer.closeAllConnections();
        }),
    };
  }
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  log.info('edge serving', { http: httpPort, mqtt: broker.port, ...(secure ? { https: secure.port } : {}), ...(broker.mqttsPort !== undefined ? { mqtts: broker.mqttsPort } : {}), upstream: config.upstreamUrl, dataDir: config.dataDir });
  return {
    url: `http://${shownHost}:${httpPort}`,
    httpPort,
    mqttPort: broker.port,
    httpsPort: secure?.port,
    httpsUrl: secure ? `https://${shownHost}:${secure.port}` : undefined,
    mqttsPort: broker.mqttsPort,
    mirror,
    reports,
    refreshNotices: () => notices.refresh(),
    checkSessions: () => sessions.sweep(),
    routes,
    inbound,
    async close() {
      await mirror.stop();
      notices.stop();
      sessions.stop();
      clearInterval(renewTimer);
      await reports.stop();
      await broker.close();
      await secure?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
