import * as z from 'zod';
import { artifactName, artifactType, bundleName, deviceId, digest, groupName, version } from './names.ts';
import { deviceState } from './messages.ts';
import type { ErrorCode } from './errors.ts';
import { approvalSummary, revocation } from './trust.ts';
import { architecture, packageFormat, packageInfo, packageName, packageVersion } from './package.ts';

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

/** With `copyFrom`, the new draft starts with every artifact of that version of the same bundle. */
export const createVersionRequest = z.strictObject({ version, copyFrom: version.optional() });

export { architecture, packageFormat, packageFormats, packageInfo, packageName, packageVersion, type PackageFormat, type PackageInfo } from './package.ts';
/** What a user may say about a package: the format, and the fields the file does not hold. */
export const packageInput = z.strictObject({
  format: packageFormat,
  name: packageName.optional(),
  version: packageVersion.optional(),
  architecture: architecture.optional(),
});
export type PackageInput = z.infer<typeof packageInput>;

const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The artifact's name comes from the URL; the bytes must already be in the blob store. */
export const putArtifactRequest = z.strictObject({
  type: artifactType,
  digest,
  size,
  /** Only for type `package` (and required there). */
  package: packageInput.optional(),
});

/** Adds (or replaces) many artifacts in one request: all of them or none. */
export const addArtifactsRequest = z.strictObject({
  artifacts: z
    .array(z.strictObject({ name: artifactName, type: artifactType, digest, size, package: packageInput.optional() }))
    .min(1)
    .max(1000)
    .refine((list) => new Set(list.map((a) => a.name)).size === list.length, 'artifact names must be unique within one request'),
});

/** New metadata for an artifact of a draft (new bytes go through PUT). */
export const patchArtifactRequest = z
  .strictObject({ type: artifactType.optional(), package: packageInput.nullable().optional() })
  .refine((patch) => patch.type !== undefined || patch.package !== undefined, 'give at least one of type, package');

/*
 * Query strings. Pagination is GitLab's: `page` from 1, `per_page` default 20, values above 100
 * count as 100.
 */
export const defaultPerPage = 20;
export const maxPerPage = 100;
const wholeNumber = z.string().regex(/^[1-9]\d{0,8}$/, 'must be a whole number from 1');
export const pageQueryFields = {
  page: wholeNumber.transform(Number).optional(),
  per_page: wholeNumber.transform((value) => Math.min(Number(value), maxPerPage)).optional(),
};
export const pageQuery = z.strictObject(pageQueryFields);

export const bundleListQuery = z.strictObject({ ...pageQueryFields, search: z.string().max(64).regex(/^[a-z0-9._-]*$/, 'must be lowercase letters, digits, ".", "_" or "-"').optional() });
export const versionListQuery = z.strictObject({ ...pageQueryFields, status: z.enum(['draft', 'approved', 'revoked']).optional() });
export const artifactListQuery = z.strictObject({
  ...pageQueryFields,
  type: artifactType.optional(),
  /** Exact artifact name. */
  name: artifactName.optional(),
  /** Part of the artifact name, case-insensitive (the same on SQLite and PostgreSQL). */
  search: z.string().max(128).regex(/^[A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" or "-"').optional(),
  format: packageFormat.optional(),
  architecture: architecture.optional(),
  package_name: packageName.optional(),
  package_version: packageVersion.optional(),
});
export type ArtifactFilter = Omit<z.output<typeof artifactListQuery>, 'page' | 'per_page'>;

export const bumpKinds = ['major', 'minor', 'patch', 'prerelease'] as const;
export const nextVersionQuery = z.strictObject({
  bump: z.enum(bumpKinds),
  /** Pre-release identifier, e.g. `rc` → 1.3.0-rc.0 (semver §9: alphanumerics and hyphens). */
  preid: z.string().regex(/^[0-9A-Za-z-]{1,32}$/, 'must be 1-32 letters, digits or "-"').optional(),
});
export const nextVersion = z.strictObject({
  bundle: bundleName,
  /** The highest existing version (drafts included), or null for a bundle without versions. */
  previous: version.nullable(),
  version,
  bump: z.enum(bumpKinds),
});
export type NextVersion = z.infer<typeof nextVersion>;

/** `PUT …/files/:file?type=package&format=deb` for `curl --upload-file`. */
export const uploadFileQuery = z.strictObject({
  type: artifactType.optional(),
  format: packageFormat.optional(),
  package_name: packageName.optional(),
  package_version: packageVersion.optional(),
  architecture: architecture.optional(),
  /** When given, the bytes must hash to it (else 400 digest_mismatch, nothing stored). */
  digest: digest.optional(),
});

/*
 * Path parameters, one strict object per route shape: the router parses them before the handler
 * (so handlers never parse the URL by hand) and the OpenAPI document lists them from these.
 */
export const bundlePath = z.strictObject({ name: bundleName });
export const versionPath = z.strictObject({ name: bundleName, version });
export const artifactPath = z.strictObject({ name: bundleName, version, artifact: artifactName });
export const filePath = z.strictObject({ name: bundleName, version, file: artifactName });
export const digestPath = z.strictObject({ digest });
export const groupPath = z.strictObject({ group: groupName });
/** `/tuf/<file>`: which files exist is the trust service's business (unknown ones answer 404). */
export const tufFilePath = z.strictObject({ file: z.string().min(1).max(255) });
/** `/tuf/targets/<path>`: the hash-prefixed target path, resolved against the signed targets. */
export const tufTargetPath = z.strictObject({ path: z.string().max(2048) });
/** The error code a bad path parameter answers with, by parameter name (others: invalid_request). */
export const pathParamCodes: Readonly<Record<string, ErrorCode>> = {
  name: 'invalid_name',
  artifact: 'invalid_name',
  file: 'invalid_name',
  user: 'invalid_name',
  group: 'invalid_name',
  version: 'invalid_version',
  digest: 'invalid_digest',
};

/** `GET /api/v1/devices?group=`. */
export const deviceListQuery = z.strictObject({ group: groupName.optional() });

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
  /** Set for packages: what the package says it is. */
  package: packageInfo.nullable(),
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
  /** The device's static group (see device groups in the README: it may be in dynamic ones too). */
  group: groupName,
  state: deviceState.nullable(),
  /** Connected to the broker now (its MQTT session; cleared by its last will or disconnect). */
  online: z.boolean(),
  installed: release.nullable(),
  target: release.nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  /** The latest inventory the device reported (attributes dynamic groups filter on). */
  inventory: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  lastSeenAt: timestamp.nullable(),
  createdAt: timestamp,
  /** Set once the device is decommissioned: its token no longer works anywhere. */
  decommissionedAt: timestamp.nullable(),
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
