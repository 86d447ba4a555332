import { z } from 'zod';
import { artifactName, artifactType, bundleName, deviceId, digest, groupName, version } from './names.ts';
import { deviceState } from './messages.ts';
import { approvalSummary, revocation } from './trust.ts';

/*
 * The REST API's bodies, requests and responses alike. The server validates requests with these;
 * the CLI validates responses with them, so the two cannot drift apart silently.
 */

const timestamp = z.iso.datetime();
const release = z.strictObject({ bundle: bundleName, version });

export const createBundleRequest = z.strictObject({
  name: bundleName,
  description: z.string().max(1000).optional(),
});

export const createVersionRequest = z.strictObject({ version });

/** The artifact's name comes from the URL; the bytes must already be in the blob store. */
export const putArtifactRequest = z.strictObject({
  type: artifactType,
  digest,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});

export const createDeploymentRequest = z.strictObject({ bundle: bundleName, version, group: groupName });

export const createDeviceRequest = z.strictObject({ id: deviceId, group: groupName });

export const bundle = z.strictObject({
  name: bundleName,
  description: z.string(),
  createdAt: timestamp,
});
export type Bundle = z.infer<typeof bundle>;

/** `revoked`: was approved, then withdrawn; devices never install it again. */
export const versionStatus = z.enum(['draft', 'approved', 'revoked']);

export const bundleVersion = z.strictObject({
  bundle: bundleName,
  version,
  status: versionStatus,
  createdAt: timestamp,
  approvedAt: timestamp.nullable(),
  /** Digest of the signed manifest, once approved. */
  manifestDigest: digest.nullable(),
  /** Approvals recorded so far (answers of the approve and sign routes). */
  approvals: approvalSummary.optional(),
  revocation: revocation.optional(),
});
export type BundleVersion = z.infer<typeof bundleVersion>;

export const artifact = z.strictObject({
  name: artifactName,
  type: artifactType,
  digest,
  size: z.number().int().nonnegative(),
  updatedAt: timestamp,
});
export type Artifact = z.infer<typeof artifact>;

export const deployment = z.strictObject({
  id: z.number().int().positive(),
  bundle: bundleName,
  version,
  group: groupName,
  createdAt: timestamp,
  createdBy: z.string(),
});
export type Deployment = z.infer<typeof deployment>;

export const device = z.strictObject({
  id: deviceId,
  group: groupName,
  state: deviceState.nullable(),
  installed: release.nullable(),
  target: release.nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  lastSeenAt: timestamp.nullable(),
  createdAt: timestamp,
});
export type Device = z.infer<typeof device>;

/** Returned once, when a device is registered: the token is never shown again. */
export const deviceRegistration = z.strictObject({
  device,
  token: z.string(),
  /** The TUF root the device pins: its trust anchor. */
  root: z.record(z.string(), z.unknown()),
  mqtt: z.strictObject({ port: z.number().int().min(0).max(65535) }),
});
export type DeviceRegistration = z.infer<typeof deviceRegistration>;

export const blobReceipt = z.strictObject({ digest, size: z.number().int().nonnegative() });

export const errorResponse = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});

export function listOf<T extends z.ZodType>(item: T) {
  return z.array(item);
}
