import * as z from 'zod';
import { pageQueryFields } from './api.ts';
import { ProtocolError } from './errors.ts';
import { maxFilterLength, parseFilter } from './filter.ts';
import { deviceState } from './messages.ts';
import { bundleName, deviceId, groupName, version } from './names.ts';
import { role } from './access.ts';
import { userName } from './access.ts';

/*
 * Rollouts (issue #10): device groups (static and dynamic), deployments with phases, soak time,
 * a failure threshold and a retry policy, device inventory and history. The server validates
 * requests with these; the CLI validates answers with them.
 */

const timestamp = z.iso.datetime();
const release = z.strictObject({ bundle: bundleName, version });

/* ---------- durations, phases, thresholds (the CLI's words, parsed once here) ---------- */

/** `30s`, `30m`, `2h`, `1d` or plain milliseconds, as a number of milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new ProtocolError('invalid_request', `${what}: expected e.g. 30s, 30m, 2h or 1d, got "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 'ms') as 'ms'];
  return Number(match[1]) * unit;
}

/**
 * One phase of a deployment, cumulative: `{ percent: 10 }` is "10 % of the targeted devices in
 * all", `{ count: 5 }` is "5 devices in all".
 */
export const phaseSpec = z.union([
  z.strictObject({ percent: z.number().int().min(1).max(100) }),
  z.strictObject({ count: z.number().int().min(1).max(1_000_000) }),
]);
export type PhaseSpec = z.infer<typeof phaseSpec>;

/** `1,10,50,100` (percentages; `10%` too) or `5dev,50dev,100%` (counts of devices). */
export function parsePhases(text: string): PhaseSpec[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.length > 20) throw new ProtocolError('invalid_request', '--phases: give 1 to 20 phases, e.g. 1,10,50,100');
  return parts.map((part) => {
    const percent = /^(\d{1,3})%?$/.exec(part);
    if (percent && Number(percent[1]) >= 1 && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
    const count = /^(\d{1,7})\s*dev(?:ices?)?$/.exec(part);
    if (count && Number(count[1]) >= 1) return { count: Number(count[1]) };
    throw new ProtocolError('invalid_request', `--phases: "${part}" is neither a percentage (1-100, e.g. 10 or 10%) nor a count of devices (e.g. 5dev)`);
  });
}

/** A failure threshold: `5%` of the devices released so far, or `5` devices. */
export const failureThreshold = z.union([
  z.strictObject({ percent: z.number().min(0).max(100) }),
  z.strictObject({ count: z.number().int().min(0).max(1_000_000) }),
]);
export type FailureThreshold = z.infer<typeof failureThreshold>;

export function parseFailureThreshold(text: string): FailureThreshold {
  const percent = /^(\d{1,3}(?:\.\d+)?)%$/.exec(text.trim());
  if (percent && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  const count = /^(\d{1,7})$/.exec(text.trim());
  if (count) return { count: Number(count[1]) };
  throw new ProtocolError('invalid_request', `--max-failures: expected a percentage (5%) or a count of devices (5), got "${text}"`);
}

/** How devices retry a deployment that fails on them (verification failures included). */
export const retryPolicy = z.strictObject({
  /** Attempts in all before the device reports the deployment failed. */
  attempts: z.number().int().min(1).max(100),
  /** First wait between attempts; doubles each time (with ±50 % jitter) up to maxMs. */
  baseMs: z.number().int().min(100).max(86_400_000),
  maxMs: z.number().int().min(100).max(86_400_000),
});
export type RetryPolicy = z.infer<typeof retryPolicy>;
export const defaultRetryPolicy: RetryPolicy = { attempts: 3, baseMs: 30_000, maxMs: 15 * 60_000 };

/* ---------- groups ---------- */

/** A filter as text, checked by the parser (the server stores the text, evaluates the tree). */
export const filterText = z
  .string()
  .min(1)
  .max(maxFilterLength)
  .superRefine((text, ctx) => {
    try {
      parseFilter(text);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });

export const groupKinds = ['static', 'dynamic'] as const;
export const createGroupRequest = z.strictObject({
  name: groupName,
  description: z.string().max(1000).optional(),
  /** Present: a dynamic group, whose members are the devices matching it. */
  filter: filterText.optional(),
});

export const deviceGroup = z.strictObject({
  name: groupName,
  kind: z.enum(groupKinds),
  description: z.string(),
  filter: z.string().nullable(),
  /** Devices in the group now (a dynamic group: matching now). */
  devices: z.number().int().nonnegative(),
  createdBy: z.string(),
  createdAt: timestamp,
});
export type DeviceGroup = z.infer<typeof deviceGroup>;

export const groupPreviewRequest = z.strictObject({ filter: filterText });
export const groupPreview = z.strictObject({ filter: z.string(), total: z.number().int().nonnegative(), devices: z.array(deviceId) });

export const putGroupMemberRequest = z.strictObject({ user: userName, role });
export const groupMember = z.strictObject({ group: groupName, user: userName, role, createdAt: timestamp });
export type GroupMember = z.infer<typeof groupMember>;

/* ---------- inventory and devices ---------- */

/** Attribute names as the filter language reads them. */
export const attributeName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, "_", "." or "-", starting with a letter or "_"');
export const attributeValue = z.union([z.string().max(256), z.number().finite(), z.boolean()]);
export const attributes = z.record(attributeName, attributeValue).refine((a) => Object.keys(a).length <= 64, 'at most 64 attributes');
export type InventoryAttributes = z.infer<typeof attributes>;

/**
 * A device's inventory, sent on its status topic at start and whenever it changes. The server
 * keeps the latest. Well-known keys: model, os, arch, disk_free_mb, daemon_version, plus the
 * installed release (bundle, version); anything else comes from the device's inventory command.
 */
export const inventoryReport = z.strictObject({
  type: z.literal('inventory'),
  deviceId,
  /** Per-device sequence number, increasing: a report the server has seen (or older) is ignored. */
  seq: z.number().int().nonnegative().optional(),
  attributes,
  reportedAt: timestamp,
});
export type InventoryReport = z.infer<typeof inventoryReport>;

export const deviceListQuery = z.strictObject({
  ...pageQueryFields,
  group: groupName.optional(),
  state: deviceState.optional(),
  online: z.enum(['true', 'false']).optional(),
  /** A filter over inventory, in the language of dynamic groups. */
  filter: filterText.optional(),
});

export const deviceDetail = z.strictObject({
  id: deviceId,
  group: groupName,
  /** Every group the device is in: its static group first, then matching dynamic groups. */
  groups: z.array(groupName),
  state: deviceState.nullable(),
  online: z.boolean(),
  installed: release.nullable(),
  target: release.nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  inventory: z.record(z.string(), attributeValue),
  lastSeenAt: timestamp.nullable(),
  createdAt: timestamp,
  decommissionedAt: timestamp.nullable(),
  /** What the server says the device should run, and why (see "multi-group rule" in the README). */
  assigned: z.strictObject({ deploymentId: z.number().int().positive(), bundle: bundleName, version, group: groupName }).nullable(),
  history: z.array(z.strictObject({ at: timestamp, state: z.string(), deploymentId: z.number().int().nullable(), detail: z.string().nullable() })),
});
export type DeviceDetail = z.infer<typeof deviceDetail>;

export const moveDeviceRequest = z.strictObject({ group: groupName });

/* ---------- deployments ---------- */

export const deploymentStates = ['scheduled', 'running', 'paused', 'completed', 'aborted', 'superseded'] as const;
export const deploymentState = z.enum(deploymentStates);
export type DeploymentState = z.infer<typeof deploymentState>;

/**
 * A device's progress within one deployment. Stable strings. `left`: the device left the targeted
 * group (moved, decommissioned, no longer matching a dynamic filter) before it installed this
 * release; it no longer counts in the deployment's bars.
 */
export const targetStates = ['pending', 'notified', 'updating', 'installed', 'failed', 'aborted', 'superseded', 'left'] as const;
export const targetState = z.enum(targetStates);
export type TargetState = z.infer<typeof targetState>;

export const createRolloutRequest = z.strictObject({
  bundle: bundleName,
  version,
  group: groupName,
  phases: z.array(phaseSpec).min(1).max(20).optional(),
  /** Time each phase runs before the next may start, in ms. */
  soakMs: z.number().int().min(0).max(30 * 86_400_000).optional(),
  maxFailures: failureThreshold.optional(),
  retry: retryPolicy.optional(),
  /** A downgrade: allowed when a signed rollback exists for the version (convoy deploy --rollback). */
  rollback: z.boolean().optional(),
  /** Deploy to an empty group or a lower version anyway. */
  force: z.boolean().optional(),
  /** Start later (ISO time); until then the deployment is `scheduled`. */
  startAt: timestamp.optional(),
});

const counts = z.record(z.string(), z.number().int().nonnegative());

export const rolloutSummary = z.strictObject({
  id: z.number().int().positive(),
  bundle: bundleName,
  version,
  group: groupName,
  state: deploymentState,
  /** Index of the phase released last (0-based). */
  phase: z.number().int().nonnegative(),
  phases: z.array(phaseSpec),
  soakMs: z.number().int().nonnegative(),
  maxFailures: failureThreshold.nullable(),
  retry: retryPolicy,
  rollback: z.boolean(),
  reason: z.string().nullable(),
  counts,
  createdAt: timestamp,
  createdBy: z.string(),
  updatedAt: timestamp,
});
export type RolloutSummary = z.infer<typeof rolloutSummary>;

export const rolloutDetail = rolloutSummary.extend({
  perPhase: z.array(z.strictObject({ phase: z.number().int().nonnegative(), size: z.number().int().nonnegative(), startedAt: timestamp.nullable(), counts })),
  devices: z.array(
    z.strictObject({
      id: deviceId,
      phase: z.number().int().nonnegative(),
      state: targetState,
      attempt: z.number().int().nonnegative(),
      error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
      transitions: z.array(z.strictObject({ at: timestamp, state: z.string(), detail: z.string().nullable() })),
    }),
  ),
});
export type RolloutDetail = z.infer<typeof rolloutDetail>;

export const deploymentListQuery = z.strictObject({ ...pageQueryFields, group: groupName.optional(), state: deploymentState.optional(), bundle: bundleName.optional() });

/* Path parameters of the rollout routes (the router parses them before the handler). */
export const deploymentPath = z.strictObject({ id: z.string().regex(/^[1-9]\d{0,9}$/, 'must be a deployment id (a whole number from 1)').transform(Number) });
export const devicePath = z.strictObject({ id: deviceId });
export const groupMemberPath = z.strictObject({ group: groupName, user: userName });

export const retryRequest = z.strictObject({ device: deviceId.optional() });
export const rolloutActionResult = z.strictObject({ deployment: rolloutSummary, devices: z.number().int().nonnegative() });
