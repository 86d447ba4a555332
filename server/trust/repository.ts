import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import { signerFor, type SigningKey } from '../../certs/tuf-keys.ts';

/*
 * The pure core of the TUF repository: given keys, the previous versions and the list of targets,
 * it produces signed metadata as bytes. It never touches the disk; the trust service writes what
 * it returns. Section numbers refer to the TUF specification 1.0.
 */

export const specVersion = '1.0.31';

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

export interface RoleKeys {
  root: SigningKey;
  targets: SigningKey;
  snapshot: SigningKey;
  timestamp: SigningKey;
}

export interface TargetEntry {
  path: string;
  length: number;
  /** Lowercase hex SHA-256. */
  sha256: string;
}

function expires(now: Date, seconds: number): string {
  // TUF metadata carries second precision ("2030-01-01T00:00:00Z").
  return new Date(Math.floor(now.getTime() / 1000) * 1000 + seconds * 1000).toISOString().replace('.000Z', 'Z');
}

export function toBytes(metadata: Metadata<Root | Targets | Snapshot | Timestamp>): Buffer {
  // Canonical JSON makes the bytes stable, so the hashes in snapshot/timestamp are reproducible.
  return Buffer.from(canonicalize(metadata.toJSON()));
}

/** Version 1 of root: one key per role, threshold 1, consistent snapshots on (§5.1). */
export function createRoot(keys: RoleKeys, now: Date, expiry: Expiry = defaultExpiry): Metadata<Root> {
  const root = new Root({ version: 1, specVersion, expires: expires(now, expiry.root), consistentSnapshot: true });
  root.addKey(keys.root.publicKey, 'root');
  root.addKey(keys.targets.publicKey, 'targets');
  root.addKey(keys.snapshot.publicKey, 'snapshot');
  root.addKey(keys.timestamp.publicKey, 'timestamp');
  const metadata = new Metadata(root);
  metadata.sign(signerFor(keys.root));
  return metadata;
}

export interface PublishedSet {
  targets: Buffer;
  snapshot: Buffer;
  timestamp: Buffer;
  versions: { targets: number; snapshot: number; timestamp: number };
}

/**
 * Signs a new targets/snapshot/timestamp triple, each version one above the previous (§5.5.5:
 * clients refuse a version that goes backwards).
 */
export function publishTargets(input: {
  keys: RoleKeys;
  previous: { targets: number; snapshot: number; timestamp: number };
  targets: readonly TargetEntry[];
  now: Date;
  expiry?: Expiry;
}): PublishedSet {
  const expiry = input.expiry ?? defaultExpiry;
  const versions = {
    targets: input.previous.targets + 1,
    snapshot: input.previous.snapshot + 1,
    timestamp: input.previous.timestamp + 1,
  };
  const targetFiles: Record<string, TargetFile> = {};
  for (const entry of input.targets) {
    targetFiles[entry.path] = new TargetFile({ path: entry.path, length: entry.length, hashes: { sha256: entry.sha256 } });
  }
  const targets = new Metadata(new Targets({ version: versions.targets, specVersion, expires: expires(input.now, expiry.targets), targets: targetFiles }));
  targets.sign(signerFor(input.keys.targets));
  const targetsBytes = toBytes(targets);

  const snapshot = new Metadata(
    new Snapshot({
      version: versions.snapshot,
      specVersion,
      expires: expires(input.now, expiry.snapshot),
      meta: { 'targets.json': new MetaFile({ version: versions.targets, length: targetsBytes.length, hashes: { sha256: sha256Hex(targetsBytes) } }) },
    }),
  );
  snapshot.sign(signerFor(input.keys.snapshot));
  const snapshotBytes = toBytes(snapshot);

  const timestamp = new Metadata(
    new Timestamp({
      version: versions.timestamp,
      specVersion,
      expires: expires(input.now, expiry.timestamp),
      snapshotMeta: new MetaFile({ version: versions.snapshot, length: snapshotBytes.length, hashes: { sha256: sha256Hex(snapshotBytes) } }),
    }),
  );
  timestamp.sign(signerFor(input.keys.timestamp));
  return { targets: targetsBytes, snapshot: snapshotBytes, timestamp: toBytes(timestamp), versions };
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
