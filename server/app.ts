import fs from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Koa from 'koa';
import { z } from 'zod';
import { createLogger, type Logger } from '../protocol/log.ts';
import { auditRoutes } from './audit/routes.ts';
import { createAuditLog } from './audit/log.ts';
import { accessRoutes } from './auth/routes.ts';
import { createAuthService } from './auth/service.ts';
import { createAuthStore } from './auth/store.ts';
import { collectGarbage, type GcReport, type ReferenceSource } from './blobs/gc.ts';
import { blobRoutes } from './blobs/routes.ts';
import { BlobStore } from './blobs/store.ts';
import { startBroker, type Broker } from './broker/broker.ts';
import { bundleRoutes } from './bundles/routes.ts';
import { createBundleService } from './bundles/service.ts';
import { createBundleStore } from './bundles/store.ts';
import { resolveTargetUrl } from './bundles/targets.ts';
import type { ServerConfig } from './config.ts';
import { openDatabase } from './db/knex.ts';
import { bindPorts } from './listeners.ts';
import { deploymentRoutes } from './deployments/routes.ts';
import { createDeploymentService } from './deployments/service.ts';
import { deviceRoutes } from './devices/routes.ts';
import { createDeviceService, type DeviceService } from './devices/service.ts';
import { createDeviceStore } from './devices/store.ts';
import { createReleaseNotices, type ReleaseNotices } from './releases/service.ts';
import { openFleetPki, readMqttClientIdentity } from './enrollment/pki.ts';
import { connectExternalBroker } from './broker/external.ts';
import { deviceIdFromStatusTopic } from '../protocol/messages.ts';
import { enrollmentRoutes } from './enrollment/routes.ts';
import { createEnrollmentService, type EnrollmentService } from './enrollment/service.ts';
import { createEnrollmentStore } from './enrollment/store.ts';
import { generateToken, hashToken } from './auth/tokens.ts';
import { errorMiddleware } from './http/errors.ts';
import { buildOpenApiDocument } from './http/openapi.ts';
import { buildRouter, route, type Route } from './http/routes.ts';
import { ociMiddleware, registryRouteTable, type RegistryRoute } from './oci/routes.ts';
import { createOciService } from './oci/service.ts';
import { createOciStore, ociReferencedDigests } from './oci/store.ts';
import { UploadFiles } from './oci/uploads.ts';
import { createApprovalService, listSignedTargets } from './trust/approvals.ts';
import { openTrustService } from './trust/service.ts';
import { createTrustStore } from './trust/store.ts';
import { trustRoutes } from './trust/routes.ts';

export interface RunningServer {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  url: string;
  httpPort: number;
  mqttPort: number;
  /** The devices' mutual-TLS listeners (CONVOY_MQTTS_PORT, CONVOY_HTTPS_PORT), when configured. */
  mqttsPort?: number | undefined;
  httpsPort?: number | undefined;
  /** The admin token generated at first start, if one was (shown once, never stored). */
  generatedAdminToken: string | undefined;
  /** Every route declaration served (the OpenAPI document, the permission matrix and generated docs come from them). */
  routes: readonly Route[];
  /** The OCI registry's routes under /v2 (their own protocol), for docs/permissions.md. */
  registryRoutes: readonly RegistryRoute[];
  /** Runs the blob garbage collector now (it also runs every hour). */
  collectGarbage(options?: { graceMs?: number }): Promise<GcReport>;
  close(): Promise<void>;
}

export interface ServerDeps {
  now?: () => Date;
  log?: Logger;
  /** Sees every answer a route handler gave (tests check them against the declared schemas). */
  onResponse?: (spec: Route, ctx: Koa.Context) => void;
}

/** Upload sessions on /v2 left unfinished this long are removed (a day: slow links resume). */
const ociUploadTtlMs = 24 * 60 * 60 * 1000;

/** How often the trust service checks whether metadata needs re-signing before it expires. */
const resignCheckIntervalMs = 10 * 60 * 1000;
/** How often unreferenced blobs are collected, and how new a blob must be to be spared. */
const gcIntervalMs = 60 * 60 * 1000;
const gcGraceMs = 60 * 60 * 1000;
/** Upload temp files untouched this long are left over from a crash or an abandoned client. */
const abandonedUploadMs = 24 * 60 * 60 * 1000;

/** The composition root: config → db → blobs → trust → broker → http. */
export async function startServer(config: ServerConfig, deps: ServerDeps = {}): Promise<RunningServer> {
  const now = deps.now ?? (() => new Date());
  const log = deps.log ?? createLogger({ namespace: 'server', level: config.logLevel, write: (line) => process.stderr.write(line) });
  // The ports first: a busy one must fail the start before any state (data dir, database rows,
  // the admin user and its one-time token, TUF keys) exists.
  const ports = await bindPorts(config);
  const cleanups: (() => Promise<void>)[] = [() => ports.close()];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => log.error('shutdown step failed', { error }));
  };
  try {
    await fs.mkdir(config.dataDir, { recursive: true });
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    cleanups.push(() => db.destroy());
    const blobs = await BlobStore.open(path.join(config.dataDir, 'blobs'));
    const authStore = createAuthStore(db);
    let broker: Broker | undefined;
    // Capabilities meet through their services; the ones made later are reached through these.
    let devices: DeviceService | undefined;
    let releases: ReleaseNotices | undefined;
    const auth = createAuthService({
      store: authStore,
      findDevice: async (id) => devices?.find(id),
      now,
      log: log.child('auth'),
      onTokenRevoked: (id) => broker?.disconnectToken(id),
    });
    const audit = createAuditLog({ db, now, log: log.child('audit') });
    const generatedAdminToken = await auth.ensureAdmin(config.adminToken);

    const bundleStore = createBundleStore(db);
    const trustStore = createTrustStore(db);
    const trust = await openTrustService({
      dataDir: config.dataDir,
      listTargets: () => listSignedTargets(trustStore, bundleStore),
      now,
      log: log.child('trust'),
      ...(config.tufExpiry ? { expiry: config.tufExpiry } : {}),
    });
    await trust.reconcile();
    const resignTimer = setInterval(() => trust.reconcile().catch((error: unknown) => log.error('re-signing failed', { error })), config.tufResignCheckMs ?? resignCheckIntervalMs);
    resignTimer.unref();
    cleanups.push(async () => clearInterval(resignTimer));

    const bundles = createBundleService({ store: bundleStore, blobs, trust, now, log: log.child('bundles') });
    // Every table that names blobs contributes its digests; the collector deletes only the rest.
    // OCI manifests and their blobs live in the same store; an offline proposal's manifest waits
    // for its signatures, however long approvers take.
    const blobReferences: ReferenceSource[] = [() => bundleStore.referencedDigests(), () => ociReferencedDigests(db), () => trustStore.proposedManifestDigests()];
    const runGc = (graceMs = gcGraceMs) =>
      collectGarbage({ blobs, sources: blobReferences, now, graceMs, abandonedUploadMs, log: log.child('gc') });
    const gcTimer = setInterval(() => runGc().catch((error: unknown) => log.error('garbage collection failed', { error })), gcIntervalMs);
    gcTimer.unref();
    cleanups.push(async () => clearInterval(gcTimer));
    const approvals = createApprovalService({
      trustStore,
      store: bundleStore,
      bundles,
      trust,
      // Release notices follow approvals and revocations (wired here: neither knows the other).
      events: { approved: async (version, approvers) => releases?.approved(version, approvers), revoked: async (version) => releases?.revoked(version) },
      now,
      log: log.child('trust'),
    });
    devices = createDeviceService({
      store: createDeviceStore(db),
      auth: authStore,
      rootMetadata: () => trust.currentRoot(),
      mqttPort: () => broker!.port,
      now,
      log: log.child('devices'),
    });
    // Device identity (issue 11). The fleet CA is opened before the broker: its TLS listener needs
    // the server's certificate. Enrollment is made after the broker (it reports the MQTT port).
    const pki = await openFleetPki({ pkiDir: config.pkiDir, dataDir: config.dataDir, now, log: log.child('pki') });
    let enrollment: EnrollmentService | undefined;
    const certificatePrincipal = async (peer: { commonName: string; serial: string }) => enrollment?.principalOfCertificate(peer);
    const mtls = async () => {
      const material = await pki.tls();
      // requestCert + rejectUnauthorized: only clients with a certificate chaining to the fleet root get through.
      return { cert: material.certPem, key: material.keyPem, ca: material.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' as const };
    };
    const listenOn = (server: tls.Server, port: number) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, config.host, () => resolve());
      });
    let mqttsServer: tls.Server | undefined;
    if (config.mqttsPort !== undefined) {
      mqttsServer = tls.createServer(await mtls());
      await listenOn(mqttsServer, config.mqttsPort);
    }
    if (config.mqttUrl) {
      // An external broker serves the devices: the port bound for the embedded one is let go.
      await new Promise<void>((resolve) => ports.mqtt.close(() => resolve()));
      broker = await connectExternalBroker({
        url: config.mqttUrl,
        tls: config.mqttUrl.startsWith('mqtts:') && config.pkiDir ? await readMqttClientIdentity(config.pkiDir) : undefined,
        clientId: 'convoy-server',
        // The broker's ACL lets only <id> write devices/<id>/status: the topic names the sender.
        onMessage: (topic, payload) => {
          const id = deviceIdFromStatusTopic(topic);
          if (!id) return;
          void devices?.find(id).then((found) => found && devices?.receiveStatus(topic, payload, { type: 'device', deviceId: found.id, group: found.group }));
        },
        log: log.child('mqtt'),
      });
    } else broker = await startBroker({
      ...(mqttsServer ? { tls: { server: mqttsServer, authenticate: certificatePrincipal } } : {}),
      host: config.host,
      port: config.mqttPort,
      authenticate: (token) => auth.authenticate(token),
      onMessage: (topic, payload, principal) => void devices?.receiveStatus(topic, payload, principal),
      log: log.child('mqtt'),
      listener: { server: ports.mqtt, serve: (handler) => ports.serveMqtt(handler) },
    });
    const startedBroker = broker;
    cleanups.push(() => startedBroker.close());
    // Device identity (issue 11): enrollment adds devices (devices capability) and mints their
    // tokens (auth capability) in one transaction, through the functions passed here.
    const deviceStore = createDeviceStore(db);
    enrollment = createEnrollmentService({
      store: createEnrollmentStore(db),
      pki,
      async onRevoked(id, at) {
        const tokens = await authStore.revokeDeviceTokens(id, at);
        startedBroker.disconnectDevice(id);
        return { tokens };
      },
      devices: { find: (id) => deviceStore.find(id), add: (id, group, at, trx) => deviceStore.insert(id, group, at, trx) },
      async mintDeviceToken(id, at, trx) {
        const token = generateToken();
        await authStore.insertDeviceToken(id, hashToken(token), at, trx);
        return token;
      },
      rootMetadata: () => trust.currentRoot(),
      mqttPort: () => startedBroker.port,
      now,
      log: log.child('enrollment'),
    });
    const deployments = createDeploymentService({ db, bundles, broker: () => startedBroker, now, log: log.child('deployments') });
    await deployments.announceLatest();
    releases = createReleaseNotices({
      sources: { heads: (bundle) => bundles.releaseHeads(bundle), approvers: (bundle, version) => approvals.approvers(bundle, version) },
      publisher: () => startedBroker,
      now,
      log: log.child('releases'),
    });
    await releases.announceLatest();

    const app = new Koa();
    app.proxy = false;
    app.silent = true; // errors are logged by errorMiddleware, once
    app.use(errorMiddleware(log.child('http')));
    // The OCI registry under /v2 (repositories `<bundle>/<image>`), with its own error shape.
    const oci = createOciService({
      store: createOciStore(db),
      uploads: await UploadFiles.open(path.join(config.dataDir, 'oci-uploads')),
      blobs,
      bundles,
      maxBlobBytes: config.maxBlobBytes,
      uploadTtlMs: ociUploadTtlMs,
      now,
      log: log.child('oci'),
    });
    app.use(ociMiddleware({ service: oci, blobs, auth, log: log.child('oci'), audit }));
    const routes: Route[] = [
        ...blobRoutes(blobs, config.maxBlobBytes),
        ...bundleRoutes(bundles, {
          created: (name, by) => auth.addCreator(name, by),
          maxBlobBytes: config.maxBlobBytes,
        }),
        ...deploymentRoutes(deployments),
        ...deviceRoutes(devices),
        ...trustRoutes({
          trust,
          approvals,
          blobs, resolveTarget: (p) => resolveTargetUrl(bundleStore, p), anonymous: config.anonymousTufRead }),
        ...accessRoutes(auth, { requireBundle: (name) => bundles.getBundle(name) }),
        ...auditRoutes(audit),
        ...enrollmentRoutes(enrollment),
    ];
    routes.push(
      route({
        method: 'GET', path: '/api/v1/openapi.json', action: 'openapi:read', anonymous: true, summary: 'This API as an OpenAPI 3.1 document',
        responses: { 200: z.record(z.string(), z.unknown()) },
        async handler({ koa }) {
          koa.body = buildOpenApiDocument(routes, { title: 'Convoy', version: '1' });
        },
      }),
    );
    const router = buildRouter(routes, { auth, maxJsonBytes: config.maxJsonBytes, audit, certificatePrincipal, ...(deps.onResponse ? { onResponse: deps.onResponse } : {}) });
    app.use(router.routes());
    app.use(router.allowedMethods());

    const server = ports.http;
    // Bound header size and idle time: a slow or oversized client must not pin the server.
    server.headersTimeout = 30_000;
    server.requestTimeout = 0; // large uploads may take long; idle sockets are cut by keepAliveTimeout
    ports.serveHttp(app.callback());
    // Closed first at shutdown: no request may reach a database already closed.
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const httpPort = ports.httpPort;
    // HTTPS for devices (API calls and downloads), authenticated by their certificates.
    let httpsPort: number | undefined;
    if (config.httpsPort !== undefined) {
      const httpsServer = https.createServer(await mtls(), app.callback());
      httpsServer.headersTimeout = 30_000;
      await listenOn(httpsServer, config.httpsPort);
      httpsPort = (httpsServer.address() as AddressInfo).port;
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            httpsServer.close(() => resolve());
            httpsServer.closeAllConnections();
          }),
      );
    }
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    log.info('serving', { http: httpPort, mqtt: broker.port, dataDir: config.dataDir, database: config.databaseUrl ? 'postgresql' : 'sqlite' });
    return {
      url: `http://${shownHost}:${httpPort}`,
      httpPort,
      mqttPort: broker.port,
      mqttsPort: broker.mqttsPort,
      httpsPort,
      generatedAdminToken,
      routes,
      registryRoutes: registryRouteTable(oci, blobs),
      collectGarbage: (options = {}) => runGc(options.graceMs),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
