import * as z from 'zod';
import { digest, groupName, deviceId, bundleName, version } from './names.ts';

/*
 * The contract between an edge node (`convoy serve --mode edge`) and its origin (issue #12 item
 * 1): the edge, signed in with its edge token, lists the replication tasks planned for it, fetches
 * their bytes through the origin's own read routes (blobs by digest, /tuf/ metadata by name),
 * reports each task's outcome, and asks whether a device credential holds. Parsed on both sides.
 */

/**
 * A TUF metadata file name as the origin serves it under /tuf/: `root.json`, `timestamp.json`,
 * `<version>.<role>.json` (consistent snapshots, delegated roles too). No path separators: the
 * edge writes the file under this name.
 */
export const metadataFileName = z.string().regex(/^(?:\d+\.)?[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$/, 'must be a TUF metadata file name such as 3.snapshot.json').refine((name) => !name.includes('..'), 'must not contain ".."');

const base = {
  id: z.number().int().positive(),
  run: z.number().int().positive(),
  bundle: bundleName,
  version,
  size: z.number().int().nonnegative(),
  /** The policy's bandwidth limit in bytes per second, shared by the edge's transfers of the run (null: none). */
  bandwidth: z.number().int().positive().nullable(),
};

/** One task an edge must do: fetch a blob by digest, or a metadata file by name; or drop a version. */
export const edgeTask = z.discriminatedUnion('kind', [
  z.strictObject({ ...base, kind: z.literal('blob'), digest }),
  z.strictObject({ ...base, kind: z.literal('metadata'), file: metadataFileName }),
  /** A revoked version: the edge forgets its signed manifest (`digest`) and refreshes metadata. */
  z.strictObject({ ...base, kind: z.literal('withdraw'), digest }),
]);
export type EdgeTask = z.infer<typeof edgeTask>;

/** `GET /api/v1/edge/tasks`: the edge's pending tasks in planned order (metadata after blobs). */
export const edgeTaskList = z.strictObject({ edge: z.string(), tasks: z.array(edgeTask) });
export type EdgeTaskList = z.infer<typeof edgeTaskList>;

/** `?wait=N`: hold the request up to N seconds (at most 30) while the edge has no task: a long poll. */
export const edgeTaskQuery = z.strictObject({ wait: z.string().regex(/^([0-9]|[12][0-9]|30)$/, 'must be whole seconds from 0 to 30').transform(Number).optional() });

export const edgeTaskPath = z.strictObject({ task: z.string().regex(/^[1-9]\d{0,15}$/, 'must be a task id').transform(Number) });

/** `POST /api/v1/edge/tasks/:task`: how the task ended at the edge. `bytes`: what it fetched (0: it held them). */
export const edgeTaskReport = z.strictObject({
  status: z.enum(['succeeded', 'failed']),
  bytes: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative().optional(),
  error: z.string().max(1000).optional(),
});
export type EdgeTaskReport = z.infer<typeof edgeTaskReport>;

/**
 * `POST /api/v1/edge/credentials`: may this device credential (the bearer token a device sent
 * the edge) read `digest` (a blob), the content of `bundle` (its images through `/v2`, its targets
 * under `/tuf/targets/`: the bundles deployed to the device), or, without either, the TUF metadata?
 * The edge caches the answer
 * (docs/replication.md, "Devices behind an edge").
 */
export const credentialCheck = z.union([
  z.strictObject({ token: z.string().min(1).max(4096), digest: digest.optional(), bundle: bundleName.optional() }),
  /**
   * A device that signed in at the edge's HTTPS listener with a certificate chaining to the fleet
   * root (the TLS layer checked the chain): is it one the origin issued, not revoked, of an
   * active device? Named as node prints it (CN, hex serial; the origin compares normalized).
   */
  z.strictObject({ certificate: z.strictObject({ commonName: z.string().min(1).max(64), serial: z.string().regex(/^[0-9A-Fa-f]{1,64}$/, 'must be a hex serial number') }), digest: digest.optional(), bundle: bundleName.optional() }),
]);
export type CredentialCheck = z.infer<typeof credentialCheck>;
/** What a device signed in with at the edge: its bearer token, or its verified certificate. */
export type DeviceCredential = { token: string } | { certificate: { commonName: string; serial: string } };

/**
 * `POST /api/v1/edge/certificate` (issue 12): an edge asks the origin's fleet CA for its HTTPS
 * server certificate. The key stays on the edge; the CSR's CN is the first name; the names are
 * what devices dial (subjectAltName).
 */
export const edgeCertificateRequest = z.strictObject({
  csr: z.string().min(1).max(16 * 1024),
  dns: z.array(z.string().min(1).max(253)).max(20).default([]),
  ip: z.array(z.ipv4().or(z.ipv6())).max(20).default([]),
}).refine((body) => body.dns.length + body.ip.length > 0, 'name at least one DNS name or IP address');
export type EdgeCertificateRequest = z.infer<typeof edgeCertificateRequest>;
/** The signed certificate, the chain up to (not including) the root, and the fleet root devices pin. */
export const edgeCertificate = z.strictObject({ certificate: z.string().min(1), chain: z.string(), ca: z.string().min(1), notAfter: z.string() });
export type EdgeCertificate = z.infer<typeof edgeCertificate>;
export const credentialVerdict = z.strictObject({
  /** The device the token signs in (null: no valid device token; users sign in at the origin). */
  device: z.strictObject({ id: deviceId, group: groupName }).nullable(),
  /** Whether that device may read what was asked. */
  allowed: z.boolean(),
});
export type CredentialVerdict = z.infer<typeof credentialVerdict>;

/**
 * `POST /api/v1/edge/reports`: one device status (or inventory) report an edge's broker received,
 * forwarded as the device published it (the origin parses it as it parses its own MQTT reports
 * and ignores a sequence number it has seen, so a report forwarded twice counts once).
 */
export const edgeReport = z.strictObject({ device: deviceId, payload: z.string().min(1).max(64 * 1024) });
export type EdgeReport = z.infer<typeof edgeReport>;

/*
 * Push mode (the origin opens the connections, docs/replication.md "Push to an edge"): the origin
 * signs in at the edge with the edge's own token and sends what the tasks name. Blobs go up in
 * pieces that resume where the edge's `.part` file ends; metadata goes in one batch, verified by
 * the edge against its pinned root before any of it is published; a withdrawal drops a manifest.
 */

/** `GET /api/v1/edge/push/blobs/:digest`: whether the edge holds the blob, and how much of an interrupted upload it kept. */
export const pushBlobState = z.strictObject({
  digest,
  /** The stored, verified blob's size (null: not held). */
  size: z.number().int().nonnegative().nullable(),
  /** Bytes of an interrupted upload kept in `.part`: the next piece starts here. */
  offset: z.number().int().nonnegative(),
});
export type PushBlobState = z.infer<typeof pushBlobState>;

/**
 * `Content-Range: bytes START-END/TOTAL` of a piece (RFC 9110 §14.4, as OCI distribution's
 * chunked uploads use it): START must be the edge's offset, TOTAL the blob's signed size.
 */
export function parseContentRange(header: string): { start: number; end: number; total: number } | undefined {
  // An empty blob has no byte range to name: `bytes */0` (RFC 9110's unsatisfied-range form) sends it.
  if (header.trim() === 'bytes */0') return { start: 0, end: -1, total: 0 };
  const match = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(header.trim());
  if (!match) return undefined;
  const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return start <= end && end < total ? { start, end, total } : undefined;
}

/** `PATCH /api/v1/edge/push/blobs/:digest`: where the upload stands after the piece (`complete`: verified and visible). */
export const pushBlobReceipt = z.strictObject({ digest, offset: z.number().int().nonnegative(), complete: z.boolean() });
export type PushBlobReceipt = z.infer<typeof pushBlobReceipt>;

/** `POST /api/v1/edge/push/metadata`: the TUF files of a run, base64, verified together, the timestamp published last. */
export const pushMetadataRequest = z.strictObject({
  files: z.array(z.strictObject({ name: metadataFileName, content: z.base64().max(8 * 1024 * 1024) })).min(1).max(1000),
});
export const pushMetadataReceipt = z.strictObject({ published: z.array(metadataFileName), bytes: z.number().int().nonnegative() });

/** `POST /api/v1/edge/push/withdrawals`: a revoked version's manifest leaves the edge. */
export const pushWithdrawal = z.strictObject({ digest });
