import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { describeCertificate, normalSerial, PkiError, readCsr, signDeviceCsr } from '../../certs/pki.ts';
import type { Device } from '../../protocol/api.ts';
import type { DeviceCertificate, Enrollment, EnrollmentToken, EnrollmentTokenInfo, Renewal } from '../../protocol/enrollment.ts';
import type { Logger } from '../../protocol/log.ts';
import { deviceId as deviceIdSchema } from '../../protocol/names.ts';
import { principalName, type Principal } from '../auth/policy.ts';
import { hashToken } from '../auth/tokens.ts';
import type { Db } from '../db/knex.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { ApiError } from '../http/errors.ts';
import type { FleetPki } from './pki.ts';
import type { EnrollmentStore, EnrollmentTokenRow } from './store.ts';

/**
 * Enrollment: a device proves it was meant to join (an enrollment token an operator made) and
 * that it holds a key (the CSR's self-signature), and receives a certificate naming its id.
 * Renewal: the current certificate, still valid and of this fleet, with a CSR of the same key.
 */
export function createEnrollmentService(deps: {
  store: EnrollmentStore;
  pki: FleetPki;
  /**
   * The devices capability. `find` answers only devices that may still sign in (a decommissioned
   * one is refused everywhere here); `ensureGroup` runs before the enrollment's transaction (the
   * group a token names becomes a static group), `add` inside it; `added` after a new device.
   */
  devices: {
    find(id: string): Promise<Device | undefined>;
    /** Whether the device was ever registered (decommissioned ones too). */
    exists(id: string): Promise<boolean>;
    /** Many active devices at once, by id (a reconnect storm's certificates, in one query). */
    findMany?(ids: readonly string[]): Promise<Map<string, Device>>;
    ensureGroup?(group: string): Promise<void>;
    add(id: string, group: string, now: string, trx: Db): Promise<void>;
    added?(id: string): void;
  };
  /** Mints a device access token inside the transaction (auth capability), returned once. */
  mintDeviceToken(id: string, now: string, trx: Db): Promise<string>;
  rootMetadata: () => Record<string, unknown>;
  mqttPort: () => number;
  /** The devices' mutual-TLS ports, when listening (told to enrolling devices). */
  httpsPort?: () => number | undefined;
  mqttsPort?: () => number | undefined;
  /** Revokes the device's access tokens (auth capability) and ends its MQTT sessions (broker). */
  onRevoked?: (deviceId: string, now: string) => Promise<{ tokens: number }>;
  now: () => Date;
  log: Logger;
}) {
  const { store } = deps;

  /** A CSR's requested device id, checked as every device id is. */
  function requestOf(csr: string): { deviceId: string } {
    let requested;
    try {
      requested = readCsr(csr);
    } catch (error) {
      if (error instanceof PkiError) throw new ApiError('invalid_request', `csr: ${error.message}`, { cause: error });
      throw error;
    }
    const parsed = deviceIdSchema.safeParse(requested.commonName);
    if (!parsed.success) throw new ApiError('invalid_name', `csr: the common name (the device id) ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
    return { deviceId: parsed.data };
  }

  async function issue(csr: string, deviceId: string, at: Date) {
    const { issuer, chain, ca } = await deps.pki.issuer();
    const certificate = signDeviceCsr({ issuer, csrPem: csr, deviceId, now: at });
    const described = describeCertificate(certificate);
    const fingerprint = new X509Certificate(certificate).fingerprint256;
    return { certificate, chain, ca, serial: described.serial, fingerprint, notAfter: described.notAfter.toISOString() };
  }

  /** The listed view of a token: everything but its hash (the secret was never stored). */
  function infoOf(row: EnrollmentTokenRow): EnrollmentTokenInfo {
    return {
      id: row.id,
      group: row.group_name,
      device: row.device_id,
      uses: row.uses,
      usesLeft: row.uses_left,
      expiresAt: row.expires_at,
      createdBy: row.created_by,
      createdAt: row.created_at,
    };
  }

  return {
    async createToken(actor: Principal, input: { group?: string | undefined; device?: string | undefined; ttlSeconds: number; uses: number }): Promise<EnrollmentToken> {
      if (input.device !== undefined && !(await deps.devices.find(input.device))) throw new ApiError('not_found', `device "${input.device}" is not registered`);
      const at = deps.now();
      const token = `cve_${randomBytes(32).toString('base64url')}`;
      const expiresAt = new Date(at.getTime() + input.ttlSeconds * 1000).toISOString();
      const id = await store.insertToken({
        hash: hashToken(token),
        group_name: input.group ?? null,
        device_id: input.device ?? null,
        uses: input.uses,
        uses_left: input.uses,
        expires_at: expiresAt,
        created_by: principalName(actor),
        created_at: at.toISOString(),
      });
      deps.log.info('created an enrollment token', { id, group: input.group, device: input.device, uses: input.uses, expiresAt, by: principalName(actor) });
      return { id, token, group: input.group ?? null, device: input.device ?? null, uses: input.uses, expiresAt };
    },

    async enroll(token: string, csr: string): Promise<Enrollment> {
      const at = deps.now();
      const now = at.toISOString();
      const refused = () => new ApiError('unauthenticated', 'the enrollment token is invalid, expired or used up (ask for a new one: convoy device token)');
      const found = await store.findToken(hashToken(token));
      // A revoked token says so (the operator meant it), so the one holding it asks for a new one
      // instead of retrying; unknown, expired and spent ones share one answer.
      if (found?.revoked_at) throw new ApiError('unauthenticated', `the enrollment token was revoked at ${found.revoked_at} (ask for a new one: convoy device token)`);
      if (!found || found.uses_left <= 0 || found.expires_at <= now) throw refused();
      const { deviceId } = requestOf(csr);
      let group: string;
      if (found.device_id !== null) {
        // A token for one device lets that device back in (a new certificate), nobody else.
        if (deviceId !== found.device_id) throw new ApiError('forbidden', `this enrollment token is for device "${found.device_id}", not "${deviceId}"`);
        const existing = await deps.devices.find(deviceId);
        if (!existing) throw new ApiError('not_found', `device "${deviceId}" is not registered any more`);
        group = existing.group;
      } else {
        if (await deps.devices.find(deviceId)) throw new ApiError('already_exists', `device "${deviceId}" is already registered; to enroll it again, use a token made with convoy device token --device ${deviceId}`);
        group = found.group_name!;
      }
      const issued = await issue(csr, deviceId, at);
      if (found.device_id === null) await deps.devices.ensureGroup?.(group);
      let deviceToken: string;
      try {
        deviceToken = await store.db.transaction(async (trx) => {
          if (!(await store.takeUse(found.id, now, trx))) throw refused();
          if (found.device_id === null) await deps.devices.add(deviceId, group, now, trx);
          await store.recordCertificate({ serial: issued.serial, device_id: deviceId, fingerprint: issued.fingerprint, not_after: issued.notAfter, issued_at: now }, trx);
          return deps.mintDeviceToken(deviceId, now, trx);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `device "${deviceId}" is already registered`);
        throw error;
      }
      deps.log.info('enrolled a device', { device: deviceId, group, token: found.id, serial: issued.serial, notAfter: issued.notAfter });
      if (found.device_id === null) deps.devices.added?.(deviceId);
      return {
        device: (await deps.devices.find(deviceId))!,
        certificate: issued.certificate,
        chain: issued.chain,
        ca: issued.ca,
        root: deps.rootMetadata(),
        token: deviceToken,
        mqtt: { port: deps.mqttPort() },
        ...(deps.httpsPort?.() ? { https: { port: deps.httpsPort()! } } : {}),
        ...(deps.mqttsPort?.() ? { mqtts: { port: deps.mqttsPort()! } } : {}),
      };
    },

    /** `convoy device token list`: the live tokens (never their secret), optionally of one group. */
    async listTokens(filter: { group?: string | undefined }): Promise<EnrollmentTokenInfo[]> {
      return (await store.listLiveTokens(deps.now().toISOString(), filter)).map(infoOf);
    },

    /** `convoy device token revoke`: the token enrolls nobody from now on (a leaked batch token). */
    async revokeToken(actor: Principal, id: number): Promise<{ id: number; revokedAt: string }> {
      const found = await store.findTokenById(id);
      if (!found) throw new ApiError('not_found', `enrollment token ${id} does not exist`);
      const now = deps.now().toISOString();
      if (!(await store.revokeToken(id, now, principalName(actor)))) {
        // Revoked already: say when, change nothing (revoking twice is not an error).
        return { id, revokedAt: (await store.findTokenById(id))!.revoked_at! };
      }
      deps.log.warn('revoked an enrollment token', { id, group: found.group_name, device: found.device_id, usesLeft: found.uses_left, by: principalName(actor) });
      return { id, revokedAt: now };
    },

    /** The certificates issued to a device, newest first, revoked ones included (with when). */
    async certificatesOf(deviceId: string): Promise<DeviceCertificate[]> {
      if (!(await deps.devices.exists(deviceId))) throw new ApiError('not_found', `device "${deviceId}" is not registered`);
      return (await store.listCertificates(deviceId)).map((row) => ({
        serial: row.serial,
        fingerprint: row.fingerprint ?? null,
        issuedAt: row.issued_at,
        notAfter: row.not_after,
        revokedAt: row.revoked_at,
      }));
    },

    /**
     * Who TLS client certificates stand for, many at once in two queries (server/broker/batch.ts
     * gathers the connections of a storm); answers are keyed by the very peer objects given. The
     * TLS layer already verified the chain and the dates; this refuses certificates the server did
     * not record (another CA's key reused) or revoked, and devices no longer registered.
     */
    async principalsOfCertificates<P extends { commonName: string; serial: string }>(peers: readonly P[]): Promise<Map<P, Principal>> {
      const records = await store.findCertificates([...new Set(peers.map((peer) => normalSerial(peer.serial)))]);
      const valid = peers.filter((peer) => {
        const record = records.get(normalSerial(peer.serial));
        return record !== undefined && record.revoked_at === null && record.device_id === peer.commonName;
      });
      const ids = [...new Set(valid.map((peer) => peer.commonName))];
      const devices = deps.devices.findMany ? await deps.devices.findMany(ids) : new Map((await Promise.all(ids.map((id) => deps.devices.find(id)))).flatMap((d) => (d ? [[d.id, d] as const] : [])));
      const answers = new Map<P, Principal>();
      for (const peer of valid) {
        const found = devices.get(peer.commonName);
        if (found) answers.set(peer, { type: 'device', deviceId: found.id, group: found.group });
      }
      return answers;
    },

    /** `convoy device revoke`: every certificate and token of the device stops working now. */
    async revokeDevice(actor: Principal, deviceId: string): Promise<{ device: string; certificates: number; tokens: number }> {
      if (!(await deps.devices.find(deviceId))) throw new ApiError('not_found', `device "${deviceId}" is not registered`);
      const now = deps.now().toISOString();
      const certificates = await store.revokeCertificates(deviceId, now);
      const { tokens } = (await deps.onRevoked?.(deviceId, now)) ?? { tokens: 0 };
      deps.log.warn('revoked a device', { device: deviceId, certificates, tokens, by: principalName(actor) });
      return { device: deviceId, certificates, tokens };
    },

    async renew(certificate: string, csr: string): Promise<Renewal> {
      const at = deps.now();
      let current: X509Certificate;
      try {
        current = new X509Certificate(certificate);
      } catch (error) {
        throw new ApiError('invalid_request', 'certificate: not a PEM X.509 certificate', { cause: error });
      }
      const { issuer } = await deps.pki.issuer();
      const issuerCert = new X509Certificate(issuer.certPem);
      if (!current.checkIssued(issuerCert) || !current.verify(issuerCert.publicKey)) throw new ApiError('unauthenticated', 'the certificate was not issued by this fleet CA');
      if (at.getTime() < Date.parse(current.validFrom) || at.getTime() >= Date.parse(current.validTo)) {
        throw new ApiError('unauthenticated', `the certificate is not valid now (valid until ${new Date(current.validTo).toISOString()}): a device offline past its expiry enrolls again with a token made by convoy device token --device ID`);
      }
      const described = describeCertificate(certificate);
      const record = await store.findCertificate(described.serial);
      if (!record || record.revoked_at !== null || record.device_id !== described.commonName) throw new ApiError('unauthenticated', 'this certificate is unknown to the server or revoked');
      const { deviceId } = requestOf(csr);
      if (deviceId !== described.commonName) throw new ApiError('invalid_request', `csr: names "${deviceId}", but the certificate is for "${described.commonName}"`);
      // The proof of possession: the CSR is signed by the key the current certificate certifies.
      const csrKey = createPublicKey(readCsr(csr).publicKeyPem).export({ type: 'spki', format: 'der' });
      if (!csrKey.equals(current.publicKey.export({ type: 'spki', format: 'der' }))) {
        throw new ApiError('unauthenticated', "the CSR's key is not the certificate's key: renewal keeps the key (a new key enrolls again)");
      }
      if (!(await deps.devices.find(deviceId))) throw new ApiError('unauthenticated', `device "${deviceId}" is not registered any more`);
      const issued = await issue(csr, deviceId, at);
      await store.recordCertificate({ serial: issued.serial, device_id: deviceId, fingerprint: issued.fingerprint, not_after: issued.notAfter, issued_at: at.toISOString() });
      deps.log.info('renewed a device certificate', { device: deviceId, serial: issued.serial, notAfter: issued.notAfter });
      return { certificate: issued.certificate, chain: issued.chain, notAfter: issued.notAfter };
    },
  };
}

export type EnrollmentService = ReturnType<typeof createEnrollmentService>;
