import fs from 'node:fs/promises';
import path from 'node:path';
import { Metadata, MetadataKind, type Targets } from '@tufjs/models';
import { generateSigningKey, signingKeyFromPem, type SigningKey } from '../../certs/tuf-keys.ts';
import { readFileIfExists, writeFileAtomic } from '../../lib/files.ts';
import type { Logger } from '../../protocol/log.ts';
import { createRoot, defaultExpiry, publishTargets, toBytes, type Expiry, type RoleKeys, type TargetEntry } from './repository.ts';

/**
 * The signing shell around the pure repository: keeps the keys and the metadata files in the data
 * dir and re-signs whenever the set of approved releases changes or metadata nears expiry.
 *
 * The database is the truth about what is approved; the metadata is derived from it. After a
 * crash between approving in the database and signing, `reconcile()` at start signs again.
 */
export interface TrustService {
  /** Re-signs targets, snapshot and timestamp from the current list of approved targets. */
  publish(reason: string): Promise<void>;
  /** Signs again if the metadata does not match the database or is past half its lifetime. */
  reconcile(): Promise<void>;
  /** The newest root metadata, as devices pin it. */
  currentRoot(): Record<string, unknown>;
  /** Bytes of a metadata file by its served name (`1.root.json`, `timestamp.json`, …), if any. */
  readMetadata(name: string): Promise<Buffer | undefined>;
}

const roles = ['root', 'targets', 'snapshot', 'timestamp'] as const;
const metadataName = /^(?:[1-9][0-9]{0,9}\.(?:root|targets|snapshot)|root|timestamp)\.json$/;

export async function openTrustService(deps: {
  dataDir: string;
  listTargets: () => Promise<TargetEntry[]>;
  now: () => Date;
  log: Logger;
  expiry?: Expiry;
}): Promise<TrustService> {
  const expiry = deps.expiry ?? defaultExpiry;
  const keyDir = path.join(deps.dataDir, 'keys');
  const metaDir = path.join(deps.dataDir, 'tuf');
  await fs.mkdir(keyDir, { recursive: true, mode: 0o700 });
  await fs.mkdir(metaDir, { recursive: true });

  const keys = {} as RoleKeys;
  for (const role of roles) keys[role] = await loadOrCreateKey(path.join(keyDir, `${role}.pem`), deps.log);

  let rootBytes = await readFileIfExists(path.join(metaDir, 'root.json'));
  if (!rootBytes) {
    rootBytes = toBytes(createRoot(keys, deps.now(), expiry));
    await writeFileAtomic(path.join(metaDir, '1.root.json'), rootBytes);
    await writeFileAtomic(path.join(metaDir, 'root.json'), rootBytes);
    deps.log.info('created TUF root metadata', { version: 1 });
  }
  const root = JSON.parse(rootBytes.toString('utf8')) as Record<string, unknown>;

  // Serialises signing: versions must increase by exactly one per publication.
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  async function readSigned<T>(file: string): Promise<{ version: number; expires: string; body: T } | undefined> {
    const bytes = await readFileIfExists(path.join(metaDir, file));
    if (!bytes) return undefined;
    const json = JSON.parse(bytes.toString('utf8')) as { signed: { version: number; expires: string } & T };
    return { version: json.signed.version, expires: json.signed.expires, body: json.signed };
  }

  async function publishNow(reason: string): Promise<void> {
    const timestamp = await readSigned<{ meta: Record<string, { version: number }> }>('timestamp.json');
    const snapshotVersion = timestamp?.body.meta['snapshot.json']?.version ?? 0;
    const snapshot = snapshotVersion ? await readSigned<{ meta: Record<string, { version: number }> }>(`${snapshotVersion}.snapshot.json`) : undefined;
    const previous = {
      timestamp: timestamp?.version ?? 0,
      snapshot: snapshotVersion,
      targets: snapshot?.body.meta['targets.json']?.version ?? 0,
    };
    const set = publishTargets({ keys, previous, targets: await deps.listTargets(), now: deps.now(), expiry });
    // Order matters for readers: targets and snapshot first, under new names, then the timestamp
    // that points at them, so no client ever sees a timestamp naming a file not yet written.
    await writeFileAtomic(path.join(metaDir, `${set.versions.targets}.targets.json`), set.targets);
    await writeFileAtomic(path.join(metaDir, `${set.versions.snapshot}.snapshot.json`), set.snapshot);
    await writeFileAtomic(path.join(metaDir, 'timestamp.json'), set.timestamp);
    deps.log.info('signed TUF metadata', { reason, ...set.versions });
  }

  async function isCurrent(): Promise<boolean> {
    const timestamp = await readSigned<{ meta: Record<string, { version: number }> }>('timestamp.json');
    if (!timestamp) return false;
    const snapshot = await readSigned<{ meta: Record<string, { version: number }> }>(`${timestamp.body.meta['snapshot.json']?.version}.snapshot.json`);
    if (!snapshot) return false;
    const targetsFile = await readFileIfExists(path.join(metaDir, `${snapshot.body.meta['targets.json']?.version}.targets.json`));
    if (!targetsFile) return false;
    const targets: Metadata<Targets> = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(targetsFile.toString('utf8')));
    const now = deps.now().getTime();
    const halfLifePassed = (expires: string, lifetime: number) => Date.parse(expires) - now < (lifetime * 1000) / 2;
    if (halfLifePassed(timestamp.expires, expiry.timestamp) || halfLifePassed(snapshot.expires, expiry.snapshot) || halfLifePassed(targets.signed.expires, expiry.targets)) {
      return false;
    }
    const wanted = await deps.listTargets();
    const signed = targets.signed.targets;
    return wanted.length === Object.keys(signed).length && wanted.every((entry) => signed[entry.path]?.length === entry.length && signed[entry.path]?.hashes.sha256 === entry.sha256);
  }

  return {
    publish: (reason) => serialised(() => publishNow(reason)),
    reconcile: () =>
      serialised(async () => {
        if (!(await isCurrent())) await publishNow('reconcile');
      }),
    currentRoot: () => root,
    async readMetadata(name) {
      if (!metadataName.test(name)) return undefined;
      return readFileIfExists(path.join(metaDir, name));
    },
  };
}

async function loadOrCreateKey(file: string, log: Logger): Promise<SigningKey> {
  const existing = await readFileIfExists(file);
  if (existing) return signingKeyFromPem(existing.toString('utf8'));
  const key = generateSigningKey();
  await writeFileAtomic(file, key.privateKeyPem, 0o600);
  log.info('generated a TUF signing key', { file: path.basename(file), keyId: key.keyId });
  return key;
}
