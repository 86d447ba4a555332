import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, MetadataKind, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import { bundleOfRole, bundleOfTarget, bundleRoleName, bundleRolePaths } from '../protocol/targets.ts';
import { signerFor, type SigningKey } from './keys.ts';

/*
 * The pure core of the TUF repository: given keys, the previous versions and the list of targets,
 * it produces signed metadata as bytes. It never touches the disk; the trust service writes what
 * it returns. Section numbers refer to the TUF specification 1.0.
 */

export const specVersion = '1.0.31';

export const roleNames = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type RoleName = (typeof roleNames)[number];

/** How long each role's metadata stays valid, in seconds. */
export interface Expiry {
  root: number;
  targets: number;
  snapshot: number;
  timestamp: number;
}

export const defaultExpiry: Expiry = {
  root: 365 * 24 * 3600,
  targets: 365 * 24 * 3600,
  snapshot: 30 * 24 * 3600,
  timestamp: 24 * 3600,
};

/** One key per role: the zero-setup (development) layout where the server holds everything. */
export interface RoleKeys {
  root: SigningKey;
  targets: SigningKey;
  snapshot: SigningKey;
  timestamp: SigningKey;
}

/** Public keys and threshold of each role, as root names them (§4.3 "roles"). */
export type RolePolicy = Record<RoleName, { keys: Key[]; threshold: number }>;

export interface TargetEntry {
  path: string;
  length: number;
  /** Lowercase hex SHA-256. */
  sha256: string;
  /** Signed with the target (TUF "custom"): Convoy puts `{ rollback: true }` on allowed downgrades. */
  custom?: Record<string, unknown>;
}

export function expires(now: Date, seconds: number): string {
  // TUF metadata carries second precision ("2030-01-01T00:00:00Z").
  return new Date(Math.floor(now.getTime() / 1000) * 1000 + seconds * 1000).toISOString().replace('.000Z', 'Z');
}

export function toBytes(metadata: Metadata<Root | Targets | Snapshot | Timestamp>): Buffer {
  // Canonical JSON makes the bytes stable, so the hashes in snapshot/timestamp are reproducible.
  return Buffer.from(canonicalize(metadata.toJSON()));
}

/** The exact bytes a signature covers (§4.2: canonical JSON of "signed"). */
export function signedBytes(metadata: Metadata<Root | Targets | Snapshot | Timestamp>): Buffer {
  return Buffer.from(canonicalize(metadata.signed.toJSON()));
}

export function policyOf(keys: RoleKeys): RolePolicy {
  return {
    root: { keys: [keys.root.publicKey], threshold: 1 },
    targets: { keys: [keys.targets.publicKey], threshold: 1 },
    snapshot: { keys: [keys.snapshot.publicKey], threshold: 1 },
    timestamp: { keys: [keys.timestamp.publicKey], threshold: 1 },
  };
}

/** Unsigned root `version` naming each role's keys and threshold; consistent snapshots on (§5.1). */
export function buildRoot(policy: RolePolicy, version: number, now: Date, expiry: Expiry = defaultExpiry): Metadata<Root> {
  for (const role of roleNames) {
    const { keys, threshold } = policy[role];
    if (!Number.isInteger(threshold) || threshold < 1 || threshold > keys.length) {
      throw new Error(`role ${role}: threshold ${threshold} needs between 1 and ${keys.length} keys`);
    }
  }
  const keys: Record<string, unknown> = {};
  const roles: Record<string, unknown> = {};
  for (const role of roleNames) {
    for (const key of policy[role].keys) keys[key.keyID] = key.toJSON();
    roles[role] = { keyids: [...new Set(policy[role].keys.map((key) => key.keyID))], threshold: policy[role].threshold };
  }
  const signed = { _type: 'root', spec_version: specVersion, version, expires: expires(now, expiry.root), consistent_snapshot: true, keys, roles };
  return Metadata.fromJSON(MetadataKind.Root, { signed, signatures: [] } as never);
}

/** Version 1 of root in the development layout: one key per role, all held by the server. */
export function createRoot(keys: RoleKeys, now: Date, expiry: Expiry = defaultExpiry): Metadata<Root> {
  const metadata = buildRoot(policyOf(keys), 1, now, expiry);
  metadata.sign(signerFor(keys.root));
  return metadata;
}

/** Reads a role's keys and threshold back from root metadata. */
export function rolePolicyOf(root: Root): RolePolicy {
  const policy = {} as RolePolicy;
  for (const role of roleNames) {
    const entry = root.roles[role]!;
    policy[role] = { keys: entry.keyIDs.map((id) => root.keys[id]!), threshold: entry.threshold };
  }
  return policy;
}

/** Unsigned targets metadata naming every entry with length and SHA-256 (§4.5). */
export function buildTargets(entries: readonly TargetEntry[], version: number, now: Date, expiry: Expiry = defaultExpiry): Metadata<Targets> {
  const targetFiles: Record<string, TargetFile> = {};
  for (const entry of entries) {
    targetFiles[entry.path] = new TargetFile({
      path: entry.path,
      length: entry.length,
      hashes: { sha256: entry.sha256 },
      ...(entry.custom ? { unrecognizedFields: { custom: entry.custom as never } } : {}),
    });
  }
  return new Metadata(new Targets({ version, specVersion, expires: expires(now, expiry.targets), targets: targetFiles }));
}

export interface PublishedSet {
  targets: Buffer;
  snapshot: Buffer;
  timestamp: Buffer;
  versions: { targets: number; snapshot: number; timestamp: number };
}

/** Public keys and threshold that sign a targets role. Bundle roles use top-level targets' (root's). */
export interface KeyPolicy {
  keys: Key[];
  threshold: number;
}

/**
 * Unsigned top-level targets that lists no target itself and delegates (§5.6, `delegations`)
 * each bundle's paths to its own terminating role, signed by the same keys and threshold as
 * targets: an approval means what it meant when targets.json listed everything.
 */
export function buildDelegatingTargets(bundles: readonly string[], policy: KeyPolicy, version: number, now: Date, expiry: Expiry = defaultExpiry): Metadata<Targets> {
  const keys: Record<string, unknown> = {};
  for (const key of policy.keys) keys[key.keyID] = key.toJSON();
  const keyids = [...new Set(policy.keys.map((key) => key.keyID))].sort();
  const roles = [...new Set(bundles)].sort().map((bundle) => ({ name: bundleRoleName(bundle), keyids, threshold: policy.threshold, terminating: true, paths: bundleRolePaths(bundle) }));
  const signed = { _type: 'targets', spec_version: specVersion, version, expires: expires(now, expiry.targets), targets: {}, delegations: { keys, roles } };
  return Metadata.fromJSON(MetadataKind.Targets, { signed, signatures: [] } as never);
}

/** What devices see now, as the snapshot names it. */
export interface RepositoryView {
  /** The top-level targets (undefined before the first publication). */
  targets?: Metadata<Targets>;
  /** Every bundle role the snapshot lists, by role name. */
  roles: ReadonlyMap<string, Metadata<Targets>>;
}

/** The documents to sign next, unsigned, each one version above the one devices have. */
export interface TargetsPlan {
  targets?: Metadata<Targets>;
  roles: Map<string, Metadata<Targets>>;
}

/**
 * Which targets documents must be signed again so that devices see `wanted`: the role of each
 * bundle whose targets changed (or whose signature is untrusted or past half its lifetime), and
 * top-level targets only when the set of delegated bundles, their keys or the layout changed.
 * A repository of the flat layout (one targets.json listing every target) plans a delegating
 * targets.json and one role per bundle: its migration. A role whose bundle has no target left
 * stays in the snapshot, emptied and no longer delegated: a client refuses a snapshot that drops
 * a file its trusted snapshot listed (§5.5.5), so a role name, once published, stays.
 */
export function planTargets(input: { wanted: readonly TargetEntry[]; current: RepositoryView; policy: KeyPolicy; now: Date; expiry?: Expiry }): TargetsPlan {
  const expiry = input.expiry ?? defaultExpiry;
  const clock = input.now.getTime();
  const halfLifePassed = (metadata: Metadata<Targets>) => Date.parse(metadata.signed.expires) - clock < (expiry.targets * 1000) / 2;
  const byBundle = new Map<string, TargetEntry[]>();
  for (const entry of input.wanted) {
    const bundle = bundleOfTarget(entry.path);
    byBundle.set(bundle, [...(byBundle.get(bundle) ?? []), entry]);
  }
  const plan: TargetsPlan = { roles: new Map() };
  const top = buildDelegatingTargets([...byBundle.keys()], input.policy, (input.current.targets?.signed.version ?? 0) + 1, input.now, expiry);
  const current = input.current.targets;
  if (
    !current ||
    Object.keys(current.signed.targets).length > 0 ||
    canonicalize(current.signed.delegations?.toJSON() ?? null) !== canonicalize(top.signed.delegations!.toJSON()) ||
    halfLifePassed(current) ||
    !isSignedBy(current, input.policy)
  ) {
    plan.targets = top;
  }
  const roles = new Set([...[...byBundle.keys()].map(bundleRoleName), ...input.current.roles.keys()]);
  for (const role of [...roles].sort()) {
    const entries = byBundle.get(bundleOfRole(role) ?? '') ?? [];
    const existing = input.current.roles.get(role);
    const stale = !existing || !sameTargets(existing.signed, entries) || (entries.length > 0 && (halfLifePassed(existing) || !isSignedBy(existing, input.policy)));
    if (stale) plan.roles.set(role, buildTargets(entries, (existing?.signed.version ?? 0) + 1, input.now, expiry));
  }
  return plan;
}

/** Whether a threshold of the policy's keys signed the metadata (§5.6.3). */
export function isSignedBy(metadata: Metadata<Targets>, policy: KeyPolicy): boolean {
  const valid = policy.keys.filter((key) => {
    try {
      key.verifySignature(metadata);
      return true;
    } catch {
      return false;
    }
  });
  return new Set(valid.map((key) => key.keyID)).size >= policy.threshold;
}

function sameTargets(signed: Targets, entries: readonly TargetEntry[]): boolean {
  const listed = signed.targets;
  return (
    entries.length === Object.keys(listed).length &&
    entries.every((entry) => listed[entry.path]?.length === entry.length && listed[entry.path]?.hashes.sha256 === entry.sha256 && canonicalize((listed[entry.path]?.custom ?? {}) as never) === canonicalize((entry.custom ?? {}) as never))
  );
}

/**
 * Signs snapshot and timestamp over a delegated layout: top-level targets (length and hash, as
 * before) and each bundle role by version only (§4.4 allows it), so snapshot.json, which every
 * client reads, tells nothing of a role's size. Versions one above the previous (§5.5.5).
 */
export function publishDelegatedSnapshot(input: {
  targets: { bytes: Buffer; version: number };
  roles: Readonly<Record<string, number>>;
  previous: { snapshot: number; timestamp: number };
  snapshotKeys: readonly SigningKey[];
  timestampKeys: readonly SigningKey[];
  now: Date;
  expiry?: Expiry;
}): PublishedSet {
  const expiry = input.expiry ?? defaultExpiry;
  const versions = { targets: input.targets.version, snapshot: input.previous.snapshot + 1, timestamp: input.previous.timestamp + 1 };
  const meta: Record<string, MetaFile> = {
    'targets.json': new MetaFile({ version: versions.targets, length: input.targets.bytes.length, hashes: { sha256: sha256Hex(input.targets.bytes) } }),
  };
  for (const [role, version] of Object.entries(input.roles).sort(([a], [b]) => (a < b ? -1 : 1))) meta[`${role}.json`] = new MetaFile({ version });
  const snapshot = new Metadata(new Snapshot({ version: versions.snapshot, specVersion, expires: expires(input.now, expiry.snapshot), meta }));
  for (const key of input.snapshotKeys) snapshot.sign(signerFor(key));
  const snapshotBytes = toBytes(snapshot);
  const timestamp = new Metadata(
    new Timestamp({
      version: versions.timestamp,
      specVersion,
      expires: expires(input.now, expiry.timestamp),
      snapshotMeta: new MetaFile({ version: versions.snapshot, length: snapshotBytes.length, hashes: { sha256: sha256Hex(snapshotBytes) } }),
    }),
  );
  for (const key of input.timestampKeys) timestamp.sign(signerFor(key));
  return { targets: input.targets.bytes, snapshot: snapshotBytes, timestamp: toBytes(timestamp), versions };
}

/**
 * Signs a new targets/snapshot/timestamp triple in the flat layout (one targets.json listing every
 * target), as Convoy did before bundle roles: kept for tests of clients and of the migration.
 */
export function publishTargets(input: {
  keys: { targets: readonly SigningKey[]; snapshot: readonly SigningKey[]; timestamp: readonly SigningKey[] };
  previous: { targets: number; snapshot: number; timestamp: number };
  targets: readonly TargetEntry[];
  now: Date;
  expiry?: Expiry;
}): PublishedSet {
  const targets = buildTargets(input.targets, input.previous.targets + 1, input.now, input.expiry);
  for (const key of input.keys.targets) targets.sign(signerFor(key));
  // The flat layout is the delegated one with no bundle roles: snapshot names targets.json only.
  return publishDelegatedSnapshot({
    targets: { bytes: toBytes(targets), version: input.previous.targets + 1 },
    roles: {},
    previous: input.previous,
    snapshotKeys: input.keys.snapshot,
    timestampKeys: input.keys.timestamp,
    now: input.now,
    ...(input.expiry ? { expiry: input.expiry } : {}),
  });
}

/**
 * Checks a proposed root N+1 against the trusted root N as a client will (§5.3.4–5.3.5): signed
 * by a threshold of the old root keys and of its own, version exactly one higher. Throws if not.
 */
export function verifyRootRotation(trusted: Metadata<Root>, proposed: Metadata<Root>): void {
  trusted.verifyDelegate('root', proposed);
  if (proposed.signed.version !== trusted.signed.version + 1) {
    throw new Error(`root version must be ${trusted.signed.version + 1}, got ${proposed.signed.version}`);
  }
  proposed.verifyDelegate('root', proposed);
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
