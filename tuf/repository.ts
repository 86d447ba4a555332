import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, MetadataKind, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
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

/**
 * Signs snapshot and timestamp over already signed targets bytes, each version one above the
 * previous (§5.5.5: clients refuse a version that goes backwards).
 */
export function publishSnapshot(input: {
  targets: Buffer;
  targetsVersion: number;
  previous: { snapshot: number; timestamp: number };
  snapshotKeys: readonly SigningKey[];
  timestampKeys: readonly SigningKey[];
  now: Date;
  expiry?: Expiry;
}): PublishedSet {
  const expiry = input.expiry ?? defaultExpiry;
  const versions = { targets: input.targetsVersion, snapshot: input.previous.snapshot + 1, timestamp: input.previous.timestamp + 1 };
  const snapshot = new Metadata(
    new Snapshot({
      version: versions.snapshot,
      specVersion,
      expires: expires(input.now, expiry.snapshot),
      meta: { 'targets.json': new MetaFile({ version: versions.targets, length: input.targets.length, hashes: { sha256: sha256Hex(input.targets) } }) },
    }),
  );
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
  return { targets: input.targets, snapshot: snapshotBytes, timestamp: toBytes(timestamp), versions };
}

/** Signs a new targets/snapshot/timestamp triple with online keys (the default approval mode). */
export function publishTargets(input: {
  keys: { targets: readonly SigningKey[]; snapshot: readonly SigningKey[]; timestamp: readonly SigningKey[] };
  previous: { targets: number; snapshot: number; timestamp: number };
  targets: readonly TargetEntry[];
  now: Date;
  expiry?: Expiry;
}): PublishedSet {
  const targets = buildTargets(input.targets, input.previous.targets + 1, input.now, input.expiry);
  for (const key of input.keys.targets) targets.sign(signerFor(key));
  return publishSnapshot({
    targets: toBytes(targets),
    targetsVersion: input.previous.targets + 1,
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
