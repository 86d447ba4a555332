import * as z from 'zod';
import { errorCodes } from './errors.ts';
import { bundleName, deviceId, digest, groupName, version } from './names.ts';

/*
 * MQTT topics (MQTT 3.1.1 §4.7: a topic level must not contain "+", "#" or "/", which the id and
 * group patterns exclude) and the payloads that travel on them. Every payload is JSON, validated
 * by the receiver; an invalid one is logged and dropped.
 */
export const topicPrefix = 'convoy/v1';

/** Retained notice of the release deployed to a group. MQTT is only a hint: TUF is the truth. */
export function groupReleaseTopic(group: string): string {
  return `${topicPrefix}/groups/${group}/release`;
}

/** A device's reports about itself. */
export function deviceStatusTopic(id: string): string {
  return `${topicPrefix}/devices/${id}/status`;
}

/**
 * Retained notice of what this one device should run (or that its deployment was aborted). Phased
 * deployments and multi-group membership make this per device: the group topic above stays for
 * dashboards and older daemons and names what the whole group runs once a deployment is fully
 * released.
 */
export function deviceReleaseTopic(id: string): string {
  return `${topicPrefix}/devices/${id}/release`;
}

export const deviceStatusWildcard = `${topicPrefix}/devices/+/status`;

/** Extracts the device id from a status topic, or undefined if the topic is not one. */
export function deviceIdFromStatusTopic(topic: string): string | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== topicPrefix || parts[2] !== 'devices' || parts[4] !== 'status') {
    return undefined;
  }
  const id = parts[3]!;
  return deviceId.safeParse(id).success ? id : undefined;
}

/**
 * Retained notice of a bundle's newest release (or its withdrawal), for CI jobs, dashboards and
 * any MQTT client of a user who may read the bundle; devices follow their group's topic instead.
 */
export function bundleReleasesTopic(bundle: string): string {
  return `${topicPrefix}/bundles/${bundle}/releases`;
}

/** Extracts the bundle name from a releases topic, or undefined if the topic is not one. */
export function bundleFromReleasesTopic(topic: string): string | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== topicPrefix || parts[2] !== 'bundles' || parts[4] !== 'releases') return undefined;
  return bundleName.safeParse(parts[3]).success ? parts[3] : undefined;
}

/** Upper bound on any MQTT payload Convoy sends or accepts. */
export const maxMessageBytes = 16 * 1024;

export const releaseNotice = z.strictObject({
  type: z.literal('release'),
  deploymentId: z.number().int().positive(),
  group: groupName,
  bundle: bundleName,
  version,
  issuedAt: z.iso.datetime(),
  /**
   * Per-device notices only: the operator's retry generation (0 first; `convoy deployment retry`
   * raises it), so a device that gave up on this deployment tries it again, and only then.
   */
  attempt: z.number().int().nonnegative().optional(),
  /** Per-device notices only: how the device retries failures of this deployment. */
  retry: z.strictObject({ attempts: z.number().int().min(1).max(100), baseMs: z.number().int().min(100), maxMs: z.number().int().min(100) }).optional(),
});
export type ReleaseNotice = z.infer<typeof releaseNotice>;

/**
 * The operator aborted the deployment: a device that has not switched to it stops (also while it
 * waits on its lock or install window) and stays on what it runs. Sent retained on the device's
 * release topic, replacing the release notice.
 */
export const abortNotice = z.strictObject({
  type: z.literal('abort'),
  deploymentId: z.number().int().positive(),
  bundle: bundleName,
  version,
  issuedAt: z.iso.datetime(),
});
export type AbortNotice = z.infer<typeof abortNotice>;

export const deviceNotice = z.discriminatedUnion('type', [releaseNotice, abortNotice]);
export type DeviceNotice = z.infer<typeof deviceNotice>;

/** What a device is doing, as it reports it. Stable strings: dashboards and scripts key on them. */
/**
 * At most 16 characters (the server's column). The device's journal has finer states
 * (device/state.ts); `phase` in a status carries the exact one, e.g. `fetching-metadata`.
 * `waiting` means the update is ready but held back by the install window or the update lock.
 */
export const deviceStates = ['idle', 'updating', 'installed', 'failed', 'downloading', 'verifying', 'staging', 'switching', 'testing', 'rolling-back', 'rolled-back', 'waiting'] as const;
export const deviceState = z.enum(deviceStates);
export type DeviceState = z.infer<typeof deviceState>;

const release = z.strictObject({ bundle: bundleName, version });

export const deviceStatus = z.strictObject({
  type: z.literal('status'),
  deviceId,
  state: deviceState,
  /** What runs now (the `current` slot), if anything. */
  installed: release.nullable(),
  /** What the device is moving to or failed to move to. */
  target: release.nullable(),
  error: z.strictObject({ code: z.enum(errorCodes), message: z.string().max(1000) }).nullable(),
  reportedAt: z.iso.datetime(),
  /** The device's own state name (its journal), finer than `state`. Optional: added later. */
  phase: z.string().regex(/^[a-z-]{1,32}$/).optional(),
  /** Why the device waits, retries or rolled back, in words for the operator. */
  detail: z.string().max(1000).optional(),
  /** Bytes of the release already verified on the device, out of the total to download. */
  progress: z.strictObject({ bytes: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).optional(),
  /** Per-device sequence number, increasing across restarts: the server ignores one it has seen. */
  seq: z.number().int().nonnegative().optional(),
  /** The deployment this report is about, when the device follows one. */
  deploymentId: z.number().int().positive().optional(),
});
export type DeviceStatus = z.infer<typeof deviceStatus>;

export const bundleReleaseNotice = z.strictObject({
  type: z.enum(['approved', 'withdrawn']),
  bundle: bundleName,
  version,
  manifestDigest: digest,
  /** User names of those who approved the version. */
  approvers: z.array(z.string()),
  /** When it was approved (or withdrawn). */
  at: z.iso.datetime(),
});
export type BundleReleaseNotice = z.infer<typeof bundleReleaseNotice>;
