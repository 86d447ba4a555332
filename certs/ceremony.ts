import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, type Root } from '@tufjs/models';
import { buildRoot, defaultExpiry, rolePolicyOf, type Expiry, type RoleName, type RolePolicy } from '../tuf/repository.ts';
import { generateSigningKey, signerFor, type SigningKey } from '../tuf/keys.ts';

/*
 * The TUF key ceremony, as pure functions over key material: `convoy keys init` and
 * `convoy keys rotate` do the file work around them on the operator's (offline) machine.
 * TUF §5.3: a client moves from root N to N+1 only if N+1 is signed by a threshold of N's root
 * keys AND a threshold of its own, so every rotation here signs with both sets.
 */

export interface CeremonyResult {
  root: Metadata<Root>;
  /** Offline: never copied to the server. */
  rootKeys: SigningKey[];
  /** Online keys the server needs (timestamp, snapshot, and targets unless approvers sign offline). */
  online: { role: Exclude<RoleName, 'root'>; key: SigningKey }[];
}

/** Public key JSON as TUF writes it (§4.2), with its key id, for approvers' `.pub.json` files. */
export function publicKeyJson(key: SigningKey): Record<string, unknown> {
  return { keyid: key.keyId, ...(key.publicKey.toJSON() as Record<string, unknown>) };
}

export function keyFromJson(json: Record<string, unknown>): Key {
  const { keyid, ...rest } = json as { keyid?: unknown } & Record<string, unknown>;
  const key = Key.fromJSON(String(keyid ?? ''), rest as never);
  // The id is the hash of the key: recompute rather than trust the file.
  const expected = generateKeyIdFor(key);
  if (keyid !== undefined && keyid !== expected) throw new Error(`key id ${String(keyid)} does not match its public key (${expected})`);
  return Key.fromJSON(expected, rest as never);
}

function generateKeyIdFor(key: Key): string {
  const json = key.toJSON() as Record<string, unknown>;
  return createHash('sha256').update(canonicalize({ keytype: json.keytype, scheme: json.scheme, keyval: json.keyval })).digest('hex');
}

export function initCeremony(options: {
  rootKeys: number;
  rootThreshold: number;
  /** Approvers' public keys: when given, targets are signed offline by them, never by the server. */
  targetsKeys?: Key[];
  targetsThreshold?: number;
  now: Date;
  expiry?: Expiry;
}): CeremonyResult {
  if (options.rootKeys < 1 || options.rootThreshold < 1 || options.rootThreshold > options.rootKeys) {
    throw new Error(`a root threshold of ${options.rootThreshold} needs between 1 and ${options.rootKeys} root keys`);
  }
  const rootKeys = Array.from({ length: options.rootKeys }, () => generateSigningKey());
  const online: CeremonyResult['online'] = [
    { role: 'timestamp', key: generateSigningKey() },
    { role: 'snapshot', key: generateSigningKey() },
  ];
  let targets: RolePolicy['targets'];
  if (options.targetsKeys && options.targetsKeys.length > 0) {
    targets = { keys: options.targetsKeys, threshold: options.targetsThreshold ?? options.targetsKeys.length };
  } else {
    const key = generateSigningKey();
    online.push({ role: 'targets', key });
    targets = { keys: [key.publicKey], threshold: 1 };
  }
  const onlineKey = (role: string) => online.find((o) => o.role === role)!.key.publicKey;
  const policy: RolePolicy = {
    root: { keys: rootKeys.map((k) => k.publicKey), threshold: options.rootThreshold },
    targets,
    snapshot: { keys: [onlineKey('snapshot')], threshold: 1 },
    timestamp: { keys: [onlineKey('timestamp')], threshold: 1 },
  };
  const root = buildRoot(policy, 1, options.now, options.expiry ?? defaultExpiry);
  for (const key of rootKeys) root.sign(signerFor(key));
  return { root, rootKeys, online };
}

/**
 * Root N+1 with one role changed: `keys` replaces the role's keys (or `add`/`remove` edit them)
 * and `threshold` its threshold. Signed by `signers` (the old root keys held here) and, when the
 * root role itself changes, by the new root keys too. Throws unless both thresholds are met.
 */
export function rotateRole(options: {
  current: Metadata<Root>;
  role: RoleName;
  keys?: Key[];
  add?: Key[];
  remove?: string[];
  threshold?: number;
  signers: SigningKey[];
  now: Date;
  expiry?: Expiry;
}): Metadata<Root> {
  const policy = rolePolicyOf(options.current.signed);
  const entry = policy[options.role];
  let keys = options.keys ?? entry.keys;
  if (options.add) keys = [...keys, ...options.add.filter((k) => !keys.some((e) => e.keyID === k.keyID))];
  if (options.remove) keys = keys.filter((k) => !options.remove!.includes(k.keyID));
  policy[options.role] = { keys, threshold: options.threshold ?? Math.min(entry.threshold, keys.length) };
  const next = buildRoot(policy, options.current.signed.version + 1, options.now, options.expiry ?? defaultExpiry);
  const oldIds = new Set(options.current.signed.roles.root!.keyIDs);
  const newIds = new Set(next.signed.roles.root!.keyIDs);
  for (const key of options.signers) if (oldIds.has(key.keyId) || newIds.has(key.keyId)) next.sign(signerFor(key), true);
  // Check as a device will before anyone uploads it (§5.3.4, §5.3.5).
  options.current.verifyDelegate('root', next);
  next.verifyDelegate('root', next);
  return next;
}
