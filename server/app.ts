import fs from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Koa from 'koa';
import * as z from 'zod';
import { createLogger, type Logger } from '../protocol/log.ts';
import { auditRoutes } from './audit/routes.ts';
import { createAuditLog } from './audit/log.ts';
import { principalName } from './auth/policy.ts';
import { accessRoutes } from './auth/routes.ts';
import { createAuthService } from './auth/service.ts';
import { createAuthStore } from './auth/store.ts';
import { collectGarbage, type GcReport, type ReferenceSource } from './blobs/gc.ts';
import { createBlobReaders } from './blobs/readers.ts';
import { blobRoutes } from './blobs/routes.ts';
import { BlobStore } from './blobs/store.ts';
import { startBroker, type Broker } from './broker/broker.ts';
import { bundleRoutes } from './bundles/routes.ts';
import { createBundleService } from './bundles/service.ts';
import { createBundleStore } from './bundles/store.ts';
import { resolveTargetUrl } from './bundles/targets.ts';
import type { ServerConfig } from './config.ts';
import { cutIdleBodies } from './http/body-timeout.ts';
import { ensurePrivateDir } from '../lib/files.ts';
import { openDatabase } from './db/knex.ts';
import { bindPorts } from './listeners.ts';
import { deploymentRoutes } from './deployments/routes.ts';
import { defaultDeploymentEvents, deploymentEventRoutes } from './deployments/events.ts';
import { createDeploymentService, type DeploymentService } from './deployments/service.ts';
import { deviceRoutes } from './devices/routes.ts';
import { createDeviceService, type DeviceService } from './devices/service.ts';
import { createDeviceStore } from './devices/store.ts';
import { createReleaseNotices, type ReleaseNotices } from './releases/service.ts';
import { openFleetPki, readMqttClientIdentity } from './enrollment/pki.ts';
import { connectExternalBroker } from './broker/external.ts';
import { createCrlWriter } from './broker/crl.ts';
import { createBatchLoader } from './broker/batch.ts';
import { deviceIdFromStatusTopic, deviceStatusTopic } from '../protocol/messages.ts';
import { enrollmentRoutes } from './enrollment/routes.ts';
import { createEnrollmentService, type EnrollmentService } from './enrollment/service.ts';
import { createEnrollmentStore } from './enrollment/store.ts';
import { generateToken, hashToken } from './auth/tokens.ts';
import { createDeploymentStore } from './deployments/store.ts';
import { groupRoutes } from './groups/routes.ts';
import { createGroupService, type GroupService } from './groups/service.ts';
import { createGroupStore } from './groups/store.ts';
import { ApiError, errorMiddleware } from './http/errors.ts';
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
import { tufMetadataFiles } from './replication/metadata.ts';
import { replicationRoutes } from './replication/routes.ts';
import { signEdgeCertificate } from './replication/edge-certificates.ts';
import { edgeSyncRoutes } from './replication/edge-routes.ts';
import { isAllowed } from './auth/policy.ts';
import { createSealer } from './replication/secrets.ts';
import { createReplicationService, type ReplicationService } from './replication/service.ts';
import { createReplicationStore } from './replication/store.ts';
import { defaultUiDir, uiMiddleware } from './ui/static.ts';

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
  /** The built web UI served at `/` (default: dist/ui of this package). */
  uiDir?: string;
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
/** How often unfinished deployments are looked at without a report (soak times, scheduled starts). */
const deploymentTickMs = 1000;

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
    await ensurePrivateDir(config.dataDir); // 0700: the database, blobs and keys are the server's alone
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    cleanups.push(() => db.destroy());
    const blobs = await BlobStore.open(path.join(config.dataDir, 'blobs'));
    const authStore = createAuthStore(db);
    let broker: Broker | undefined;
    // Capabilities meet through their services; the ones made later are reached through these.
    let deviceLookup: DeviceService | undefined;
    let releases: ReleaseNotices | undefined;
    let replication: ReplicationService | undefined;
    const auth = createAuthService({
      store: authStore,
      findDevice: async (id) => deviceLookup?.findActive(id),
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

    const bundles = createBundleService({ store: bundleStore, blobs, trust, now, log: log.child('bundles'), onDeleted: (name) => oci.forgetBundle(name) });
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
      events: {
        approved: async (version, approvers) => {
          await releases?.approved(version, approvers);
          // Policies triggered on approval start their runs (replication knows nothing of trust).
          await replication?.approved(version);
        },
        revoked: async (version) => {
          await releases?.revoked(version);
          // Policies that propagate revocations withdraw the version from their registries.
          await replication?.revoked(version);
        },
      },
      now,
      log: log.child('trust'),
    });
    // Rollouts: devices, groups and deployments refer to each other through these late-bound
    // functions (each capability owns its tables; they meet here).
    let groups: GroupService | undefined;
    let deployments: DeploymentService | undefined;
    const devices = createDeviceService({
      store: createDeviceStore(db),
      auth: authStore,
      rootMetadata: () => trust.currentRoot(),
      mqttPort: () => broker!.port,
      ensureGroup: (group, actor) => groups!.ensureStatic(group, actor, actor ? principalName(actor) : 'registration'),
      groupsOf: (device) => groups!.groupsOf(device),
      membership: () => groups!.membership(),
      activeBundles: (bundles, ids) => deployments!.activeBundlesByDevice(bundles, ids),
      requireStaticGroup: async (group) => {
        const found = await groups!.requireGroup(group);
        if (found.kind !== 'static') throw new ApiError('invalid_request', `"${group}" is a dynamic group: devices join it by matching its filter`);
      },
      assignment: async (id) => {
        const notice = await deployments!.noticeFor(id);
        return notice?.type === 'release' ? { deploymentId: notice.deploymentId, bundle: notice.bundle, version: notice.version, group: notice.group } : null;
      },
      events: {
        reported: (status) => deployments!.onReport(status.deviceId, status),
        membershipChanged: (cause) => void deployments?.syncMembers({ inventoryOnly: cause === 'inventory' }),
        decommissioned: async (id) => {
          broker?.disconnectDevice(id);
          await deployments!.deviceRemoved(id);
        },
        // aedes holds the group from the connection: the device signs in again under its new one.
        // An external broker's ACL names no group (protocol/acl.ts): nothing to redo there.
        moved: (id) => (config.mqttUrl ? undefined : broker?.disconnectDevice(id)),
      },
      now,
      log: log.child('devices'),
    });
    deviceLookup = devices;
    // Runs after the broker has closed (cleanups run in reverse): no report arrives any more.
    cleanups.push(async () => {
      await devices.drain();
      await deployments?.drain();
    });
    groups = createGroupService({
      store: createGroupStore(db),
      auth: authStore,
      listDevices: () => devices.listActive(),
      hasActiveDeployments: (group) => deployments!.hasActiveDeployments(group),
      now,
      log: log.child('groups'),
    });
    // Device identity (issue 11). The fleet CA is opened before the broker: its TLS listener needs
    // the server's certificate. Enrollment is made after the broker (it reports the MQTT port).
    const pki = await openFleetPki({ pkiDir: config.pkiDir, dataDir: config.dataDir, now, log: log.child('pki') });
    let enrollment: EnrollmentService | undefined;
    // Certificates of connections arriving together are looked up together (server/broker/batch.ts):
    // a reconnect storm's sign-ins share a few queries; nothing is cached, so revocation stays immediate.
    const certificates = createBatchLoader(
      (peers: readonly { commonName: string; serial: string }[]) => enrollment?.principalsOfCertificates(peers) ?? Promise.resolve(new Map()),
      { maxBatch: 500 },
    );
    const certificatePrincipal = (peer: { commonName: string; serial: string }) => certificates.load(peer);
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
          // A decommissioned device is refused here as on the embedded broker.
          // A revoked device still talking got back in before the broker reread the CRL: out again.
          void devices.findActive(id).then((found) => (found ? devices.receiveStatus(topic, payload, { type: 'device', deviceId: found.id, group: found.group }) : broker?.disconnectDevice(id)));
        },
        log: log.child('mqtt'),
      });
    } else broker = await startBroker({
      ...(mqttsServer ? { tls: { server: mqttsServer, authenticate: certificatePrincipal } } : {}),
      host: config.host,
      port: config.mqttPort,
      authenticate: (token) => auth.authenticate(token),
      onMessage: (topic, payload, principal) => void devices.receiveStatus(topic, payload, principal),
      onPresenceMany: (online, offline) => devices.presenceMany(online, offline),
      log: log.child('mqtt'),
      listener: { server: ports.mqtt, serve: (handler) => ports.serveMqtt(handler) },
      limits: config.mqttLimits,
    });
    const startedBroker = broker;
    cleanups.push(() => startedBroker.close());
    // Device identity (issue 11): enrollment adds devices (devices capability) and mints their
    // tokens (auth capability) in one transaction, through the functions passed here.
    const deviceStore = createDeviceStore(db);
    const enrollmentStore = createEnrollmentStore(db);
    // The revocation list a standard broker reads (`crlfile` in `convoy broker config mosquitto`),
    // next to the CA files; a PKI folder the server may not write is logged, not fatal.
    const crl = config.pkiDir
      ? createCrlWriter({
          dir: config.pkiDir,
          issuer: () => pki.issuer(),
          revoked: async (at) => (await enrollmentStore.revokedCertificates(at.toISOString())).map((r) => ({ serial: r.serial, revokedAt: new Date(r.revoked_at) })),
          now,
          log: log.child('pki'),
        })
      : undefined;
    const writeCrl = () => crl?.write().catch((error: unknown) => log.warn('the certificate revocation list was not written', { file: crl.file, error }));
    await writeCrl();
    enrollment = createEnrollmentService({
      store: enrollmentStore,
      pki,
      // `convoy device revoke` decommissions the device (the devices capability's one path: marked
      // decommissioned, MQTT sessions closed, out of its deployments) once its certificates are
      // revoked; its live tokens are counted here first, for the answer.
      async onRevoked(id, at) {
        const tokens = await authStore.revokeDeviceTokens(id, at);
        // The list first: a broker reloaded on its change refuses the certificate before the
        // live session is closed (decommissioning closes it), so the device cannot slip back in.
        await writeCrl();
        await devices.decommission(id, 'convoy device revoke');
        return { tokens };
      },
      devices: {
        // Certificates of a decommissioned device are refused: only active devices are found.
        find: (id) => devices.findActive(id),
        // Any registered device, decommissioned too: its certificates are still worth showing.
        exists: async (id) => (await deviceStore.find(id)) !== undefined,
        findMany: (ids) => devices.findActiveMany(ids),
        ensureGroup: (group) => groups!.ensureStatic(group, undefined, 'enrollment'),
        add: (id, group, at, trx) => deviceStore.insert(id, group, at, trx),
        added: () => void deployments?.syncMembers(),
      },
      async mintDeviceToken(id, at, trx) {
        const token = generateToken();
        await authStore.insertDeviceToken(id, hashToken(token), at, trx);
        return token;
      },
      rootMetadata: () => trust.currentRoot(),
      mqttPort: () => startedBroker.port,
      httpsPort: () => httpsPort,
      mqttsPort: () => startedBroker.mqttsPort,
      now,
      log: log.child('enrollment'),
    });
    const startedGroups = groups;
    deployments = createDeploymentService({
      store: createDeploymentStore(db),
      requireApproved: (bundle, version) => bundles.requireApproved(bundle, version),
      devicesOf: (group) => startedGroups.devicesOf(group),
      isDynamic: async (group) => (await startedGroups.requireGroup(group).catch(() => undefined))?.kind === 'dynamic',
      ensureGroup: (group, by) => startedGroups.ensureStatic(group, undefined, by),
      hasRollback: (bundle, version) => approvals.isRollbackAllowed(bundle, version),
      findDevice: (id) => devices.requireDevice(id).catch(() => undefined),
      allowRollback: async (bundle, version, by) => void (await approvals.setRollback(bundle, version, true, by)),
      broker: () => startedBroker,
      now,
      log: log.child('deployments'),
    });
    const startedDeployments = deployments;
    // Nothing a restart loses: phases and targets are stored; notices are announced again.
    await startedDeployments.announceAll();
    await startedDeployments.syncMembers();
    const deploymentTimer = setInterval(() => startedDeployments.tickAll().catch((error: unknown) => log.error('deployment tick failed', { error })), deploymentTickMs);
    deploymentTimer.unref();
    cleanups.push(async () => clearInterval(deploymentTimer));
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
    const ociStore = createOciStore(db);
    // The read model per bundle: every table naming blobs tells which bundles hold a digest.
    const readers = createBlobReaders({
      sources: [(d) => bundleStore.bundlesReferencing(d), (d) => ociStore.bundlesReferencing(d), (d) => trustStore.bundlesProposing(d)],
      deviceBundles: (device) => startedDeployments.bundlesForDevice(device.deviceId, device.group),
    });
    const oci = createOciService({
      store: ociStore,
      uploads: await UploadFiles.open(path.join(config.dataDir, 'oci-uploads')),
      blobs,
      bundles,
      maxBlobBytes: config.maxBlobBytes,
      uploadTtlMs: ociUploadTtlMs,
      now,
      log: log.child('oci'),
    });
    app.use(ociMiddleware({ service: oci, blobs, auth, log: log.child('oci'), audit, deviceBundles: (device) => startedDeployments.bundlesForDevice(device.deviceId, device.group), certificatePrincipal }));
    replication = createReplicationService({
      store: createReplicationStore(db),
      sealer: createSealer(config.secretKey),
      bundles,
      blobs,
      imageGraph: (digest) => ociStore.imageGraph(digest),
      metadataFiles: (bundle) => tufMetadataFiles(trust, bundle),
      readMetadata: (name) => trust.readMetadata(name),
      ...(config.replicationRetry ? { retry: config.replicationRetry } : {}),
      now,
      log: log.child('replication'),
    });
    const startedReplication = replication;
    cleanups.push(() => startedReplication.idle(true));
    await startedReplication.resume();
    const replicationTimer = setInterval(() => void startedReplication.tick().catch((error: unknown) => log.error('replication schedule check failed', { error })), config.replicationTickMs ?? 20_000);
    replicationTimer.unref();
    cleanups.push(async () => clearInterval(replicationTimer));
    // Open event streams (live deployment progress) end when the server stops.
    const streams = new AbortController();
    cleanups.push(async () => streams.abort());
    const routes: Route[] = [
        ...blobRoutes(blobs, config.maxBlobBytes, readers, (edge, digest) => startedReplication.edgeMayRead(edge, digest)),
        ...bundleRoutes(bundles, {
          created: (name, by) => auth.addCreator(name, by),
          mayName: (principal, digest, bundle) => readers.mayName(principal, digest, bundle),
          maxBlobBytes: config.maxBlobBytes,
        }),
        ...deploymentRoutes(startedDeployments),
        ...deploymentEventRoutes(startedDeployments, { ...defaultDeploymentEvents, signal: streams.signal }),
        ...deviceRoutes(devices, {
          inGroup: async (group) => {
            // A listing filtered on a group nobody created yet is empty, not an error.
            const members = new Set((await startedGroups.devicesOf(group).catch(() => [])).map((d) => d.id));
            return async (d) => members.has(d.id);
          },
          noticeFor: (id) => startedDeployments.noticeFor(id),
        }),
        ...groupRoutes(startedGroups, { changed: () => void startedDeployments.syncMembers(), visible: (viewer, rows) => devices.visibleTo(viewer, rows) }),
        ...trustRoutes({
          trust,
          approvals,
          blobs, resolveTarget: (p) => resolveTargetUrl(bundleStore, p), anonymous: config.anonymousTufRead, readers }),
        ...accessRoutes(auth, { requireBundle: (name) => bundles.getBundle(name) }),
        ...auditRoutes(audit),
        ...enrollmentRoutes(enrollment, { requireVisible: (viewer, id) => devices.requireVisible(viewer, id) }),
        ...replicationRoutes(replication),
        ...edgeSyncRoutes(startedReplication, {
          // An edge asks on behalf of a device that sent it this token: the origin's own answer.
          async checkCredential(credential, digest, bundle) {
            // A certificate is looked up as the origin's own mTLS listener looks it up (issued here, not revoked, active device).
            const principal = 'certificate' in credential
              ? await certificatePrincipal(credential.certificate).catch(() => undefined)
              : credential.token.startsWith('cvye_') ? undefined : await auth.authenticate(credential.token).catch(() => undefined);
            if (principal?.type !== 'device') return { device: null, allowed: false };
            // A bundle's content (its images on /v2, its targets by path): the origin's /v2 rule for devices.
            const allowed = bundle !== undefined ? await readers.mayReadBundle(principal, 'bundle:pull', bundle) : digest !== undefined ? await readers.mayRead(principal, 'blob:read', digest) : isAllowed(principal, 'tuf:read');
            return { device: { id: principal.deviceId, group: principal.group }, allowed };
          },
          signCertificate: (edge, request) => signEdgeCertificate({ pki, now, log: log.child('pki') }, edge, request),
          async releaseOf(id) {
            if (!(await devices.findActive(id))) throw new ApiError('not_found', `no active device "${id}"`);
            return startedDeployments.noticeFor(id);
          },
          // Handled as the embedded broker handles a device's own message on its status topic.
          async receiveReport(id, payload) {
            const found = await devices.findActive(id);
            if (!found) throw new ApiError('not_found', `no active device "${id}"`);
            await devices.receiveStatus(deviceStatusTopic(found.id), payload, { type: 'device', deviceId: found.id, group: found.group });
          },
        }),
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
    const router = buildRouter(routes, {
      auth,
      edgeToken: async (token) => {
        const found = await startedReplication.authenticateEdge(token);
        return found ? { type: 'edge', edge: found.name } : undefined;
      },
      maxJsonBytes: config.maxJsonBytes, audit, certificatePrincipal, ...(deps.onResponse ? { onResponse: deps.onResponse } : {}) });
    app.use(router.routes());
    app.use(router.allowedMethods());
    // The web UI: after the API so it never shadows a route; it answers only what none did.
    app.use(uiMiddleware({ dir: deps.uiDir ?? defaultUiDir(), log: log.child('ui') }));

    const server = ports.http;
    // Bound header size and idle time: a slow or oversized client must not pin the server.
    server.headersTimeout = 30_000;
    server.requestTimeout = 0; // large uploads may take long; idle sockets are cut by keepAliveTimeout
    cutIdleBodies(server, config.bodyIdleTimeoutMs, log.child('http'));
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
      // The certificate is asked for, not demanded: a device with none yet enrolls here (its
      // enrollment token is the credential), and every other request without a valid certificate
      // falls to the token check and gets a typed 401 (server/http/routes.ts authenticate). The
      // MQTT listener keeps demanding one: MQTT has no anonymous door.
      const httpsServer = https.createServer({ ...(await mtls()), rejectUnauthorized: false }, app.callback());
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
