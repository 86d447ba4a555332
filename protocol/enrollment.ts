import * as z from 'zod';
import { device } from './api.ts';
import { deviceId, groupName } from './names.ts';

/*
 * Enrollment (docs/device-install.md): an operator mints a short-lived enrollment token for a
 * group (or, to let one device back in, for that device); a device sends the token with a CSR
 * made from a key that never leaves it, and receives its certificate, the CA chain and the TUF
 * root to pin. Renewal sends the current certificate with a CSR of the same key.
 */

/** Longest life of an enrollment token: a week (a batch flashed on Monday, installed by Friday). */
export const maxEnrollmentTtlSeconds = 7 * 24 * 3600;
export const maxEnrollmentUses = 10_000;

const pem = (max: number) => z.string().min(64).max(max).regex(/^[\x09\x0a\x0d\x20-\x7e]+$/, 'must be PEM text');

export const createEnrollmentTokenRequest = z
  .strictObject({
    /** Devices enrolling with the token join this group. */
    group: groupName.optional(),
    /** Or: the token lets this one existing device enroll again (a new certificate after it expired). */
    device: deviceId.optional(),
    ttlSeconds: z.number().int().min(60).max(maxEnrollmentTtlSeconds),
    uses: z.number().int().min(1).max(maxEnrollmentUses).default(1),
  })
  .refine((r) => (r.group === undefined) !== (r.device === undefined), 'give exactly one of group, device');

export const enrollmentToken = z.strictObject({
  id: z.number().int().positive(),
  /** Shown once: only its hash is stored. */
  token: z.string(),
  group: groupName.nullable(),
  device: deviceId.nullable(),
  uses: z.number().int().positive(),
  expiresAt: z.iso.datetime(),
});
export type EnrollmentToken = z.infer<typeof enrollmentToken>;

export const enrollRequest = z.strictObject({
  token: z.string().min(16).max(256),
  /** PKCS#10, PEM; its common name is the device id asked for. */
  csr: pem(8192),
});

export const enrollment = z.strictObject({
  device,
  /** The device's certificate, PEM. */
  certificate: z.string(),
  /** The CA certificates between it and the root (the intermediate), PEM; empty when the root signs. */
  chain: z.string(),
  /** The fleet's root certificate: the device verifies the server with it. */
  ca: z.string(),
  /** The TUF root the device pins. */
  root: z.record(z.string(), z.unknown()),
  /** A device access token, for servers and brokers not yet on mutual TLS. */
  token: z.string(),
  mqtt: z.strictObject({ port: z.number().int().min(0).max(65535) }),
  /** The devices' mutual-TLS listeners (CONVOY_HTTPS_PORT, CONVOY_MQTTS_PORT), when the server has them: an enrolled device talks to them with its certificate. */
  https: z.strictObject({ port: z.number().int().min(1).max(65535) }).optional(),
  mqtts: z.strictObject({ port: z.number().int().min(1).max(65535) }).optional(),
});
export type Enrollment = z.infer<typeof enrollment>;

export const renewRequest = z.strictObject({
  /** The current certificate (still valid), PEM. */
  certificate: pem(16384),
  /** A CSR made with the key of that certificate: the proof that the sender holds it. */
  csr: pem(8192),
});

export const renewal = z.strictObject({
  certificate: z.string(),
  chain: z.string(),
  notAfter: z.iso.datetime(),
});
export type Renewal = z.infer<typeof renewal>;

/** `90s`, `30m`, `1h`, `7d` in seconds, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

export const devicePath = z.strictObject({ id: deviceId });

/** What `POST /api/v1/devices/:id/revoke` did: how many certificates and tokens stopped working. */
export const deviceRevocation = z.strictObject({
  device: deviceId,
  certificates: z.number().int().nonnegative(),
  tokens: z.number().int().nonnegative(),
});

/** `GET /api/v1/enrollment-tokens?group=`: narrows the live list to one group's tokens. */
export const enrollmentTokenListQuery = z.strictObject({ group: groupName.optional() });

export const enrollmentTokenPath = z.strictObject({ id: z.string().regex(/^[1-9]\d{0,14}$/, 'must be a positive whole number').transform(Number) });

/**
 * A live enrollment token as listed: who may enroll with it, how many uses are left, until when,
 * who made it. Never the secret (the server holds only its hash).
 */
export const enrollmentTokenInfo = z.strictObject({
  id: z.number().int().positive(),
  group: groupName.nullable(),
  device: deviceId.nullable(),
  uses: z.number().int().positive(),
  usesLeft: z.number().int().nonnegative(),
  expiresAt: z.iso.datetime(),
  createdBy: z.string(),
  createdAt: z.iso.datetime(),
});
export type EnrollmentTokenInfo = z.infer<typeof enrollmentTokenInfo>;

/** The live tokens: not revoked, not expired, a use left. Spent, expired and revoked ones drop out. */
export const enrollmentTokenList = z.strictObject({ tokens: z.array(enrollmentTokenInfo) });

/** What `DELETE /api/v1/enrollment-tokens/:id` did: the token enrolls nobody from now on. */
export const enrollmentTokenRevocation = z.strictObject({
  id: z.number().int().positive(),
  revokedAt: z.iso.datetime(),
});

/**
 * A certificate the server issued to a device (at enrollment or renewal). The fingerprint is the
 * SHA-256 of its DER, as `openssl x509 -fingerprint -sha256` prints it; null for certificates
 * issued before the server recorded it.
 */
export const deviceCertificate = z.strictObject({
  serial: z.string(),
  fingerprint: z.string().nullable(),
  issuedAt: z.iso.datetime(),
  notAfter: z.iso.datetime(),
  revokedAt: z.iso.datetime().nullable(),
});
export type DeviceCertificate = z.infer<typeof deviceCertificate>;

/** `GET /api/v1/devices/:id/certificates`: newest first. */
export const deviceCertificateList = z.strictObject({ device: deviceId, certificates: z.array(deviceCertificate) });
