import fs from 'node:fs/promises';
import path from 'node:path';
import { Metadata, MetadataKind, Signature, type Root, type Targets } from '@tufjs/models';
import { generateSigningKey, signerFor, signingKeyFromPem, type SigningKey } from '../../tuf/keys.ts';
import { readFileIfExists, writeFileAtomic } from '../../lib/files.ts';
import type { Logger } from '../../protocol/log.ts';
import { ApiError } from '../http/errors.ts';
import { bundleOfRole, bundleOfTarget } from '../../protocol/targets.ts';
import {
  createRoot,
  defaultExpiry,
  isSignedBy,
  planTargets,
  publishDelegatedSnapshot,
  roleNames,
  rolePolicyOf,
  signedBytes,
  toBytes,
  verifyRootRotation,
  type Expiry,
  type KeyPolicy,
  type RoleKeys,
  type RoleName,
  type TargetEntry,
  type TargetsPlan,
} from '../../tuf/repository.ts';

/**
 * The signing shell around the pure repository: keeps the online keys and the metadata files in
 * the data dir and re-signs whenever the set of approved releases changes or metadata nears expiry.
 *
 * Two layouts, told apart by which private keys are in `keys/`:
 * - development (zero setup): at first start the server generates one key per role, root
 *   included, and signs root itself. Anyone who reads the data dir owns the fleet.
 * - offline root (production): `convoy keys init` ran on an offline machine and the operator
 *   copied its `server/` folder (signed `tuf/1.root.json` and the online timestamp/snapshot keys,
 *   plus the targets key unless approvers sign offline) into the data dir. The server never sees
 *   a root key; new root versions arrive signed, through `acceptRoot`.
 * The server signs a role when it holds a threshold of that role's keys listed in the newest root.
 * When it does not hold the targets keys, approvers sign targets offline (`offlineTargets`).
 *
 * The database is the truth about what is approved; the metadata is derived from it. After a
 * crash between approving in the database and signing, `reconcile()` at start signs again.
 *
 * Layout (TUF §5.6): top-level targets.json lists no target; it delegates each bundle's paths to
 * the role `bundle-<name>` (protocol/targets.ts), signed by the same keys and threshold as
 * targets, which lists that bundle's targets. An approval re-signs its bundle's role, snapshot
 * and timestamp; targets.json only when the set of delegated bundles changes. A repository of the
 * earlier flat layout migrates the first time the server signs targets (at start when it holds
 * the targets keys, with the next offline proposal otherwise).
 */
export interface TrustService {
  /** Re-signs targets (when the server holds its keys), snapshot and timestamp. */
  publish(reason: string): Promise<void>;
  /** Signs again if the metadata does not match the database or is past half its lifetime. */
  reconcile(): Promise<void>;
  /** The newest root metadata, as devices pin it. */
  currentRoot(): Record<string, unknown>;
  /** Bytes of a metadata file by its served name (`1.root.json`, `timestamp.json`, …), if any. */
  readMetadata(name: string): Promise<Buffer | undefined>;
  /** Who signs what, for `convoy keys status`. */
  status(): Promise<TrustStatus>;
  /** Verifies root N+1 against root N (old and new thresholds) and makes it current. */
  acceptRoot(bytes: Buffer, reason: string): Promise<{ version: number }>;
  /** Generates an online key for a role (kept here, not yet trusted) and returns its public half. */
  createOnlineKey(role: Exclude<RoleName, 'root'>): Promise<{ keyId: string; publicKey: Record<string, unknown> }>;
  /** True when the server holds a threshold of targets keys (the default approval mode). */
  signsTargets(): boolean;
  /**
   * Offline targets: the unsigned documents to sign so that devices see `entries` of `bundle`, by
   * role (`targets` or a bundle role), each one version above the one devices have. Other
   * bundles keep what devices see of them now: their roles are in it only when they must be
   * signed anyway (the flat layout's migration, keys root no longer trusts, half-life passed).
   */
  proposeTargets(entries: readonly TargetEntry[], bundle: string): Promise<SignedDocument[]>;
  /** Offline targets: checks one approver's signature over one proposed document. */
  checkTargetsSignature(proposal: Metadata<Targets>, signature: { keyid: string; sig: string }): void;
  /** Offline targets: publishes fully signed documents (threshold checked against root). */
  publishSignedTargets(signed: readonly SignedDocument[], reason: string): Promise<void>;
  /** The version devices see now of each targets role (`targets` and every bundle role; 0: none). */
  targetsVersions(): Promise<Record<string, number>>;
  /** The target paths devices see now, by the role that lists them (`targets`, bundle roles). */
  publishedTargetPaths(): Promise<Record<string, string[]>>;
}

/** One targets document (top-level `targets` or a bundle role) with the role it is for. */
export interface SignedDocument {
  role: string;
  metadata: Metadata<Targets>;
}

/**
 * The bundle whose role a served metadata file is (`<n>.bundle-<name>.json`), if it is one: the
 * route answers it only to who may read the bundle.
 */
export function bundleOfMetadataFile(name: string): string | undefined {
  const match = /^[1-9][0-9]{0,9}\.(.+)\.json$/.exec(name);
  return match ? bundleOfRole(match[1]!) : undefined;
}

export interface TrustStatus {
  mode: 'development' | 'offline-root';
  targetsSigning: 'server' | 'offline';
  rootVersion: number;
  rootExpires: string;
  roles: Record<RoleName, { keyIds: string[]; threshold: number; heldByServer: number }>;
  timestamp: { version: number; expires: string } | null;
}

const onlineRoles = ['targets', 'snapshot', 'timestamp'] as const;
const metadataName = /^(?:[1-9][0-9]{0,9}\.(?:root|targets|snapshot)|root|timestamp)\.json$/;
const isMetadataName = (name: string) => metadataName.test(name) || bundleOfMetadataFile(name) !== undefined;

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

  let rootBytes = await readFileIfExists(path.join(metaDir, 'root.json'));
  if (!rootBytes) {
    // Zero-setup development layout: the server makes (and keeps) every key, root included.
    const keys = {} as RoleKeys;
    for (const role of roleNames) keys[role] = await loadOrCreateKey(path.join(keyDir, `${role}.pem`), deps.log);
    rootBytes = toBytes(createRoot(keys, deps.now(), expiry));
    await writeFileAtomic(path.join(metaDir, '1.root.json'), rootBytes);
    await writeFileAtomic(path.join(metaDir, 'root.json'), rootBytes);
    deps.log.warn('created a development TUF root: the root key is on this server; use `convoy keys init` for production', { version: 1 });
  }
  let root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(rootBytes.toString('utf8')));
  let held = await loadKeys(keyDir);
  const signingKeys = (role: RoleName): SigningKey[] => {
    const ids = root.signed.roles[role]!.keyIDs;
    return ids.flatMap((id) => (held.has(id) ? [held.get(id)!] : []));
  };
  const canSign = (role: RoleName) => signingKeys(role).length >= root.signed.roles[role]!.threshold;
  for (const role of ['snapshot', 'timestamp'] as const) {
    if (!canSign(role)) throw new Error(`the data dir holds ${signingKeys(role).length} ${role} key(s) named in root.json; ${root.signed.roles[role]!.threshold} needed (copy the server/ folder from \`convoy keys init\`)`);
  }
  const rootDaysLeft = (Date.parse(root.signed.expires) - deps.now().getTime()) / 86_400_000;
  if (rootDaysLeft < 30) deps.log.warn('TUF root expires soon: devices refuse an expired root; run `convoy keys renew`', { expires: root.signed.expires });
  if (canSign('root')) deps.log.warn('this server holds the TUF root key: development mode, not for production');

  // Serialises signing: versions must increase by exactly one per publication.
  let queue: Promise<unknown> = Promise.resolve();
  const serialised = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  async function readSigned<T>(file: string): Promise<{ version: number; expires: string; body: T; bytes: Buffer } | undefined> {
    const bytes = await readFileIfExists(path.join(metaDir, file));
    if (!bytes) return undefined;
    const json = JSON.parse(bytes.toString('utf8')) as { signed: { version: number; expires: string } & T };
    return { version: json.signed.version, expires: json.signed.expires, body: json.signed, bytes };
  }

  type MetaMap = { meta: Record<string, { version: number }> };
  const parseTargets = (bytes: Buffer): Metadata<Targets> => Metadata.fromJSON(MetadataKind.Targets, JSON.parse(bytes.toString('utf8')));
  async function current() {
    const timestamp = await readSigned<MetaMap>('timestamp.json');
    const snapshotVersion = timestamp?.body.meta['snapshot.json']?.version ?? 0;
    const snapshot = snapshotVersion ? await readSigned<MetaMap>(`${snapshotVersion}.snapshot.json`) : undefined;
    const targetsVersion = snapshot?.body.meta['targets.json']?.version ?? 0;
    const targets = targetsVersion ? await readFileIfExists(path.join(metaDir, `${targetsVersion}.targets.json`)) : undefined;
    // Every bundle role the snapshot names, emptied ones included (they must stay listed).
    const roles = new Map<string, { version: number; metadata: Metadata<Targets> }>();
    // Versions straight from the snapshot: the next one lists every role again, even one whose
    // file went missing here, since a client refuses a snapshot that drops a role (§5.5.5).
    const roleVersions: Record<string, number> = {};
    for (const [file, meta] of Object.entries(snapshot?.body.meta ?? {})) {
      const role = file.slice(0, -'.json'.length);
      if (bundleOfRole(role) === undefined) continue;
      roleVersions[role] = meta.version;
      const bytes = await readFileIfExists(path.join(metaDir, `${meta.version}.${role}.json`));
      if (bytes) roles.set(role, { version: meta.version, metadata: parseTargets(bytes) });
    }
    return { timestamp, snapshot, targets, roles, roleVersions, versions: { timestamp: timestamp?.version ?? 0, snapshot: snapshotVersion, targets: targetsVersion } };
  }
  type Current = Awaited<ReturnType<typeof current>>;

  /** What devices see now, as entries: the flat targets.json's and every role's targets. */
  function publishedEntries(now: Current): TargetEntry[] {
    const documents = [...(now.targets ? [parseTargets(now.targets)] : []), ...[...now.roles.values()].map((r) => r.metadata)];
    return documents.flatMap((metadata) =>
      Object.values(metadata.signed.targets).map((file) => ({
        path: file.path,
        length: file.length,
        sha256: file.hashes.sha256!,
        ...(file.custom && Object.keys(file.custom).length > 0 ? { custom: file.custom as Record<string, unknown> } : {}),
      })),
    );
  }

  /** The keys and threshold root gives targets: the delegation gives the bundle roles the same. */
  const targetsPolicy = (): KeyPolicy => rolePolicyOf(root.signed).targets;

  function plan(now: Current, wanted: readonly TargetEntry[]): TargetsPlan {
    const roles = new Map([...now.roles].map(([role, { metadata }]) => [role, metadata]));
    return planTargets({ wanted, current: { ...(now.targets ? { targets: parseTargets(now.targets) } : {}), roles }, policy: targetsPolicy(), now: deps.now(), expiry });
  }

  /**
   * Writes the signed documents, then a new snapshot and timestamp over them and what devices
   * already have. Order matters for readers: roles, targets and snapshot first, under new names,
   * then the timestamp that points at them, so no client sees a timestamp naming a missing file.
   */
  async function publishDocuments(now: Current, documents: readonly SignedDocument[], reason: string): Promise<void> {
    const top = documents.find((d) => d.role === 'targets');
    const targets = top ? { bytes: toBytes(top.metadata), version: top.metadata.signed.version } : now.targets ? { bytes: now.targets, version: now.versions.targets } : undefined;
    if (!targets) {
      // Offline targets and nothing signed yet: an empty targets needs the approvers' keys too,
      // so there is nothing to publish until they sign the first release.
      return;
    }
    const roleVersions = { ...now.roleVersions };
    for (const document of documents) {
      if (document.role === 'targets') continue;
      await writeFileAtomic(path.join(metaDir, `${document.metadata.signed.version}.${document.role}.json`), toBytes(document.metadata));
      roleVersions[document.role] = document.metadata.signed.version;
    }
    const set = publishDelegatedSnapshot({ targets, roles: roleVersions, previous: now.versions, snapshotKeys: signingKeys('snapshot'), timestampKeys: signingKeys('timestamp'), now: deps.now(), expiry });
    if (top) await writeFileAtomic(path.join(metaDir, `${set.versions.targets}.targets.json`), set.targets);
    await writeFileAtomic(path.join(metaDir, `${set.versions.snapshot}.snapshot.json`), set.snapshot);
    await writeFileAtomic(path.join(metaDir, 'timestamp.json'), set.timestamp);
    deps.log.info('signed TUF metadata', { reason, ...set.versions, roles: documents.filter((d) => d.role !== 'targets').map((d) => d.role) });
  }

  /** New snapshot and timestamp over the targets devices already have. */
  async function resignSnapshot(reason: string): Promise<void> {
    await publishDocuments(await current(), [], reason);
  }

  const planned = (next: TargetsPlan): SignedDocument[] => [
    ...[...next.roles].map(([role, metadata]) => ({ role, metadata })),
    ...(next.targets ? [{ role: 'targets', metadata: next.targets }] : []),
  ];

  async function publishNow(reason: string): Promise<void> {
    if (!canSign('targets')) return resignSnapshot(reason);
    const now = await current();
    const documents = planned(plan(now, await deps.listTargets()));
    for (const { metadata } of documents) for (const key of signingKeys('targets')) metadata.sign(signerFor(key));
    await publishDocuments(now, documents, reason);
  }

  /** What reconcile must do: nothing, a new snapshot/timestamp, or new targets too. */
  async function staleness(): Promise<'current' | 'snapshot' | 'targets'> {
    const now = await current();
    const clock = deps.now().getTime();
    const halfLifePassed = (expires: string, lifetime: number) => Date.parse(expires) - clock < (lifetime * 1000) / 2;
    if (canSign('targets')) {
      // Changed targets, keys root no longer trusts, half the lifetime gone, or the flat layout.
      const next = plan(now, await deps.listTargets());
      if (next.targets || next.roles.size > 0) return 'targets';
    } else if (!now.targets) {
      return 'current';
    }
    if (!now.timestamp || !now.snapshot) return 'snapshot';
    if (halfLifePassed(now.timestamp.expires, expiry.timestamp) || halfLifePassed(now.snapshot.expires, expiry.snapshot)) return 'snapshot';
    const signedBy = (bytes: Buffer, role: RoleName) => {
      try {
        root.verifyDelegate(role, (role === 'timestamp' ? Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(bytes.toString('utf8'))) : Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(bytes.toString('utf8')))));
        return true;
      } catch {
        return false;
      }
    };
    if (!signedBy(now.timestamp.bytes, 'timestamp') || !signedBy(now.snapshot.bytes, 'snapshot')) return 'snapshot';
    return 'current';
  }

  return {
    publish: (reason) => serialised(() => publishNow(reason)),
    reconcile: () =>
      serialised(async () => {
        const state = await staleness();
        if (state === 'targets') await publishNow('reconcile');
        else if (state === 'snapshot') await resignSnapshot('refresh before expiry');
      }),
    currentRoot: () => root.toJSON() as Record<string, unknown>,
    async readMetadata(name) {
      if (!isMetadataName(name)) return undefined;
      return readFileIfExists(path.join(metaDir, name));
    },
    async status() {
      const timestamp = (await current()).timestamp;
      const roles = {} as TrustStatus['roles'];
      for (const role of roleNames) {
        roles[role] = { keyIds: [...root.signed.roles[role]!.keyIDs], threshold: root.signed.roles[role]!.threshold, heldByServer: signingKeys(role).length };
      }
      return {
        mode: canSign('root') ? 'development' : 'offline-root',
        targetsSigning: canSign('targets') ? 'server' : 'offline',
        rootVersion: root.signed.version,
        rootExpires: root.signed.expires,
        roles,
        timestamp: timestamp ? { version: timestamp.version, expires: timestamp.expires } : null,
      };
    },
    acceptRoot: (bytes, reason) =>
      serialised(async () => {
        let proposed: Metadata<Root>;
        try {
          proposed = Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString('utf8')));
          verifyRootRotation(root, proposed);
        } catch (error) {
          throw new ApiError('signature_invalid', `root refused: ${(error as Error).message}`, { cause: error });
        }
        const nextHeld = await loadKeys(keyDir);
        for (const role of ['snapshot', 'timestamp'] as const) {
          const have = proposed.signed.roles[role]!.keyIDs.filter((id) => nextHeld.has(id)).length;
          if (have < proposed.signed.roles[role]!.threshold) {
            throw new ApiError('invalid_request', `root refused: the server holds ${have} of the ${role} keys it names (create them first with \`convoy keys rotate\`)`);
          }
        }
        // Canonical bytes, so the file devices fetch is the one that was verified.
        const canonical = toBytes(proposed);
        await writeFileAtomic(path.join(metaDir, `${proposed.signed.version}.root.json`), canonical);
        await writeFileAtomic(path.join(metaDir, 'root.json'), canonical);
        root = proposed;
        held = nextHeld;
        deps.log.info('accepted a new TUF root', { version: proposed.signed.version, reason });
        // Devices follow the chain on their next refresh; snapshot and timestamp (and targets,
        // when the server signs them) are signed again at once with the keys root now names.
        if (canSign('targets')) await publishNow(`root ${proposed.signed.version}`);
        else await resignSnapshot(`root ${proposed.signed.version}`);
        return { version: proposed.signed.version };
      }),
    async createOnlineKey(role) {
      if (!onlineRoles.includes(role)) throw new ApiError('invalid_request', `${role} keys are never online`);
      const key = generateSigningKey();
      await writeFileAtomic(path.join(keyDir, `${role}-${key.keyId.slice(0, 16)}.pem`), key.privateKeyPem, 0o600);
      held.set(key.keyId, key);
      deps.log.info('generated an online TUF key', { role, keyId: key.keyId });
      return { keyId: key.keyId, publicKey: key.publicKey.toJSON() as Record<string, unknown> };
    },
    signsTargets: () => canSign('targets'),
    async proposeTargets(entries, bundle) {
      // The caller stores the proposal, so every approver signs the same bytes. A pending change
      // of another bundle (a revocation waiting for signatures) is that bundle's own proposal.
      const now = await current();
      const others = publishedEntries(now).filter((entry) => bundleOfTarget(entry.path) !== bundle);
      return planned(plan(now, [...others, ...entries.filter((entry) => bundleOfTarget(entry.path) === bundle)]));
    },
    checkTargetsSignature(proposal, signature) {
      const role = root.signed.roles.targets!;
      if (!role.keyIDs.includes(signature.keyid)) throw new ApiError('forbidden', `key ${signature.keyid.slice(0, 16)}… is not a targets key in root version ${root.signed.version}`);
      const key = root.signed.keys[signature.keyid]!;
      const single = new Metadata(proposal.signed, { [signature.keyid]: new Signature({ keyID: signature.keyid, sig: signature.sig }) });
      try {
        key.verifySignature(single);
      } catch {
        throw new ApiError('signature_invalid', 'the signature does not verify over the proposed targets');
      }
    },
    publishSignedTargets: (documents, reason) =>
      serialised(async () => {
        // Top-level targets is checked against root (§5.6.3); a bundle role against the same keys
        // and threshold, which the delegation in targets.json names.
        for (const { role, metadata } of documents) {
          if (!isSignedBy(metadata, targetsPolicy())) {
            throw new ApiError('signature_invalid', `${role} not signed by a threshold of targets keys (${targetsPolicy().threshold})`);
          }
        }
        await publishDocuments(await current(), documents, reason);
      }),
    async targetsVersions() {
      const now = await current();
      return { targets: now.versions.targets, ...now.roleVersions };
    },
    async publishedTargetPaths() {
      const now = await current();
      const paths: Record<string, string[]> = { targets: now.targets ? Object.keys(parseTargets(now.targets).signed.targets) : [] };
      for (const [role, { metadata }] of now.roles) paths[role] = Object.keys(metadata.signed.targets);
      return paths;
    },
  };
}

export { signedBytes };

async function loadKeys(keyDir: string): Promise<Map<string, SigningKey>> {
  const keys = new Map<string, SigningKey>();
  for (const entry of await fs.readdir(keyDir)) {
    if (!entry.endsWith('.pem')) continue;
    const key = signingKeyFromPem(await fs.readFile(path.join(keyDir, entry), 'utf8'));
    keys.set(key.keyId, key);
  }
  return keys;
}

async function loadOrCreateKey(file: string, log: Logger): Promise<SigningKey> {
  const existing = await readFileIfExists(file);
  if (existing) return signingKeyFromPem(existing.toString('utf8'));
  const key = generateSigningKey();
  await writeFileAtomic(file, key.privateKeyPem, 0o600);
  log.info('generated a TUF signing key', { file: path.basename(file), keyId: key.keyId });
  return key;
}
