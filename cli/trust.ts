import { createPrivateKey, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { z } from 'zod';
import { initCeremony, keyFromJson, publicKeyJson, rotateRole } from '../certs/ceremony.ts';
import { generateSigningKey, signingKeyFromPem, type SigningKey } from '../tuf/keys.ts';
import { writeFileAtomic } from '../lib/files.ts';
import { bundleVersion } from '../protocol/api.ts';
import { bundleName, parseRelease } from '../protocol/names.ts';
import { createdKey, rootAccepted, signatureReceipt, signingProposal, trustPolicy, trustStatus } from '../protocol/trust.ts';
import { signedBytes, toBytes } from '../tuf/repository.ts';
import { CliError, type ApiClient } from './client.ts';
import { printJsonOr, printList } from './output.ts';

/*
 * `convoy keys …` (the key ceremony, run on the operator's offline machine where it says so) and
 * the trust commands on bundles: approvals, offline signing, revocation. Root keys never go to
 * the server: the CLI signs root metadata here and uploads only the signed result.
 */

type Flags = Record<string, string | boolean | string[] | undefined>;
interface Command {
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;
  run(args: { positionals: string[]; flags: Flags; api: () => ApiClient }): Promise<void>;
}

const json = { json: { type: 'boolean' } } as const;
const enc = encodeURIComponent;

function release(text: string | undefined): { bundle: string; version: string } {
  const parsed = text ? parseRelease(text) : undefined;
  if (!parsed) throw new CliError(`expected NAME@VERSION such as pos-app@1.2.0, got "${text ?? ''}"`);
  return parsed;
}
const versionPath = (r: { bundle: string; version: string }) => `/api/v1/bundles/${enc(r.bundle)}/versions/${enc(r.version)}`;

function count(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^[1-9][0-9]?$/.test(value)) throw new CliError(`${what} must be a whole number from 1 to 99, got "${String(value)}"`);
  return n;
}

function list(value: unknown): string[] {
  return Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
}

async function readKey(file: string): Promise<SigningKey> {
  try {
    return signingKeyFromPem(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new CliError(`cannot use ${file} as an Ed25519 private key: ${(error as Error).message}`);
  }
}

async function readPublicKey(file: string) {
  try {
    return keyFromJson(JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>);
  } catch (error) {
    throw new CliError(`cannot use ${file} as a public key (.pub.json from \`convoy keys generate\`): ${(error as Error).message}`);
  }
}

async function fetchRoot(client: ApiClient): Promise<Metadata<Root>> {
  const raw = await client.request('GET', '/tuf/root.json', { schema: z.record(z.string(), z.unknown()) });
  return Metadata.fromJSON(MetadataKind.Root, raw as never);
}

async function writeSecret(file: string, pem: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, pem, 0o600);
}

export const trustCommands: Record<string, Command> = {
  'keys init': {
    usage: 'convoy keys init --out DIR [--root-keys 3] [--root-threshold 2] [--targets-key A.pub.json ... --targets-threshold M]   (offline)',
    options: { out: { type: 'string' }, 'root-keys': { type: 'string' }, 'root-threshold': { type: 'string' }, 'targets-key': { type: 'string', multiple: true }, 'targets-threshold': { type: 'string' } },
    async run({ flags }) {
      if (typeof flags.out !== 'string') throw new CliError('--out DIR is required: where to write the root keys and the server folder');
      const out = path.resolve(flags.out);
      if ((await fs.readdir(out).catch(() => [])).length > 0) throw new CliError(`${out} is not empty: refusing to overwrite key material`);
      const rootKeys = count(flags['root-keys'], '--root-keys', 3);
      const rootThreshold = count(flags['root-threshold'], '--root-threshold', Math.min(2, rootKeys));
      const targetsKeys = await Promise.all(list(flags['targets-key']).map(readPublicKey));
      const targetsThreshold = count(flags['targets-threshold'], '--targets-threshold', Math.min(2, Math.max(1, targetsKeys.length)));
      let result;
      try {
        result = initCeremony({ rootKeys, rootThreshold, targetsKeys, targetsThreshold, now: new Date() });
      } catch (error) {
        throw new CliError((error as Error).message);
      }
      for (const [i, key] of result.rootKeys.entries()) await writeSecret(path.join(out, 'root-keys', `root-${i + 1}.pem`), key.privateKeyPem);
      for (const { role, key } of result.online) await writeSecret(path.join(out, 'server', 'keys', `${role}.pem`), key.privateKeyPem);
      const bytes = toBytes(result.root);
      await fs.mkdir(path.join(out, 'server', 'tuf'), { recursive: true });
      await writeFileAtomic(path.join(out, 'server', 'tuf', '1.root.json'), bytes);
      await writeFileAtomic(path.join(out, 'server', 'tuf', 'root.json'), bytes);
      process.stdout.write(
        [
          `root version 1: ${rootThreshold} of ${rootKeys} root keys; targets ${targetsKeys.length ? `signed offline by ${targetsThreshold} of ${targetsKeys.length} approver keys` : 'signed by the server'}`,
          `  ${path.join(out, 'root-keys')}/   root private keys: keep OFFLINE, one per custodian; never copy them to the server`,
          `  ${path.join(out, 'server')}/      copy into CONVOY_DATA_DIR before the server's first start (online keys + signed root)`,
        ].join('\n') + '\n',
      );
    },
  },
  'keys generate': {
    usage: 'convoy keys generate --out PREFIX   (an approver key: PREFIX.pem stays with you, PREFIX.pub.json goes to the ceremony)',
    options: { out: { type: 'string' } },
    async run({ flags }) {
      if (typeof flags.out !== 'string') throw new CliError('--out PREFIX is required');
      const key = generateSigningKey();
      const prefix = path.resolve(flags.out);
      if (await fs.stat(`${prefix}.pem`).catch(() => undefined)) throw new CliError(`${prefix}.pem exists: refusing to overwrite a key`);
      await writeSecret(`${prefix}.pem`, key.privateKeyPem);
      await writeFileAtomic(`${prefix}.pub.json`, JSON.stringify(publicKeyJson(key), null, 2) + '\n');
      process.stdout.write(`key ${key.keyId}\n  ${prefix}.pem (private, mode 0600)\n  ${prefix}.pub.json (public)\n`);
    },
  },
  'keys status': {
    usage: 'convoy keys status [--json]',
    options: json,
    async run({ flags, api }) {
      const status = await api().request('GET', '/api/v1/trust', { schema: trustStatus });
      if (flags.json === true) return printJsonOr(status, true, '');
      process.stdout.write(`mode ${status.mode}${status.mode === 'development' ? ' (the server holds the root key: not for production)' : ''}; targets signed ${status.targetsSigning === 'server' ? 'by the server' : 'offline by approvers'}\nroot version ${status.rootVersion}, expires ${status.rootExpires}\n`);
      printList(Object.entries(status.roles), [
        { header: 'ROLE', value: ([role]) => role },
        { header: 'THRESHOLD', value: ([, r]) => `${r.threshold} of ${r.keyIds.length}` },
        { header: 'ON SERVER', value: ([, r]) => String(r.heldByServer) },
        { header: 'KEYS', value: ([, r]) => r.keyIds.map((id) => id.slice(0, 12)).join(' ') },
      ], false);
    },
  },
  'keys rotate': {
    usage: 'convoy keys rotate --role root|targets|snapshot|timestamp --root-key FILE... [--out DIR] [--new-keys N] [--threshold M] [--add-key A.pub.json...] [--remove-key KEYID...]',
    options: {
      role: { type: 'string' }, 'root-key': { type: 'string', multiple: true }, out: { type: 'string' }, 'new-keys': { type: 'string' },
      threshold: { type: 'string' }, 'add-key': { type: 'string', multiple: true }, 'remove-key': { type: 'string', multiple: true }, ...json,
    },
    async run({ flags, api }) {
      const role = z.enum(['root', 'targets', 'snapshot', 'timestamp']).safeParse(flags.role);
      if (!role.success) throw new CliError('--role must be root, targets, snapshot or timestamp');
      const signers = await Promise.all(list(flags['root-key']).map(readKey));
      if (signers.length === 0) throw new CliError('--root-key FILE is required (repeat it to reach the root threshold)');
      const client = api();
      const current = await fetchRoot(client);
      const threshold = flags.threshold === undefined ? undefined : count(flags.threshold, '--threshold', 1);
      let change: { keys?: ReturnType<typeof keyFromJson>[]; add?: ReturnType<typeof keyFromJson>[]; remove?: string[] } = {};
      const newRootKeys: SigningKey[] = [];
      if (role.data === 'root') {
        if (typeof flags.out !== 'string') throw new CliError('--out DIR is required: where to write the new root keys');
        const n = count(flags['new-keys'], '--new-keys', current.signed.roles.root!.keyIDs.length);
        for (let i = 0; i < n; i++) newRootKeys.push(generateSigningKey());
        change = { keys: newRootKeys.map((k) => k.publicKey) };
      } else if (list(flags['add-key']).length > 0 || list(flags['remove-key']).length > 0) {
        change = { add: await Promise.all(list(flags['add-key']).map(readPublicKey)), remove: list(flags['remove-key']) };
      } else {
        // An online role: the server makes the new key and keeps its private half.
        const created = await client.request('POST', '/api/v1/trust/keys', { json: { role: role.data }, schema: createdKey });
        change = { keys: [keyFromJson({ keyid: created.keyId, ...created.publicKey })] };
      }
      let next;
      try {
        next = rotateRole({ current, role: role.data, ...change, ...(threshold ? { threshold } : {}), signers: [...signers, ...newRootKeys], now: new Date() });
      } catch (error) {
        throw new CliError(`the new root would not be trusted by devices: ${(error as Error).message} (pass more --root-key files)`);
      }
      if (newRootKeys.length > 0) {
        const out = path.resolve(flags.out as string);
        for (const [i, key] of newRootKeys.entries()) await writeSecret(path.join(out, `root-${next.signed.version}-${i + 1}.pem`), key.privateKeyPem);
      }
      const accepted = await client.request('POST', '/api/v1/trust/root', { json: JSON.parse(toBytes(next).toString('utf8')), schema: rootAccepted });
      printJsonOr(accepted, flags.json === true, `root version ${accepted.version} is live: ${role.data} keys rotated; devices follow on their next refresh`);
    },
  },
  'keys renew': {
    usage: 'convoy keys renew --root-key FILE... [--json]   (root N+1 with the same keys and a fresh expiry; do it before root expires)',
    options: { 'root-key': { type: 'string', multiple: true }, ...json },
    async run({ flags, api }) {
      const signers = await Promise.all(list(flags['root-key']).map(readKey));
      const client = api();
      const current = await fetchRoot(client);
      let next;
      try {
        next = rotateRole({ current, role: 'root', signers, now: new Date() });
      } catch (error) {
        throw new CliError(`the renewed root would not be trusted by devices: ${(error as Error).message} (pass more --root-key files)`);
      }
      const accepted = await client.request('POST', '/api/v1/trust/root', { json: JSON.parse(toBytes(next).toString('utf8')), schema: rootAccepted });
      printJsonOr(accepted, flags.json === true, `root version ${accepted.version} is live, expires ${next.signed.expires}`);
    },
  },
  'bundle policy': {
    usage: 'convoy bundle policy NAME --approvals M   (distinct users who must approve each version)',
    options: { approvals: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = bundleName.safeParse(positionals[0]);
      if (!name.success) throw new CliError('bundle name: missing or invalid');
      const required = count(flags.approvals, '--approvals', 0);
      const set = await api().request('PUT', `/api/v1/bundles/${enc(name.data)}/trust-policy`, { json: { requiredApprovals: required }, schema: trustPolicy });
      printJsonOr(set, flags.json === true, `${set.bundle}: each version needs ${set.requiredApprovals} approval(s) from distinct users`);
    },
  },
  'bundle approvals': {
    usage: 'convoy bundle approvals NAME@VERSION [--json]',
    options: json,
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const shown = await api().request('GET', `${versionPath(r)}/approvals`, { schema: bundleVersion });
      if (flags.json === true) return printJsonOr(shown, true, '');
      process.stdout.write(`${r.bundle}@${r.version}: ${shown.status}, ${shown.approvals?.by.length ?? 0} of ${shown.approvals?.required ?? 1} approval(s)${shown.revocation ? `; revoked by ${shown.revocation.by} at ${shown.revocation.at}: ${shown.revocation.reason}` : ''}\n`);
      printList(shown.approvals?.by ?? [], [{ header: 'BY', value: (a) => a.principal }, { header: 'AT', value: (a) => a.at }, { header: 'KEY', value: (a) => a.keyId ?? '(server key)' }], false);
    },
  },
  'bundle sign': {
    usage: 'convoy bundle sign NAME@VERSION --key FILE [--json]   (offline mode: sign the proposed targets with your key)',
    options: { key: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      if (typeof flags.key !== 'string') throw new CliError('--key FILE is required: your approver private key');
      const key = await readKey(flags.key);
      const client = api();
      const proposal = await client.request('GET', `${versionPath(r)}/signing`, { schema: signingProposal });
      const metadata = Metadata.fromJSON(MetadataKind.Targets, { signed: proposal.signed, signatures: [] } as never);
      // Review before signing: what this signature would add to and remove from the fleet.
      process.stderr.write(`targets version ${metadata.signed.version}, expires ${metadata.signed.expires}\n`);
      for (const p of proposal.added) process.stderr.write(`  + ${p} (${metadata.signed.targets[p]?.length} bytes, sha256 ${metadata.signed.targets[p]?.hashes.sha256})\n`);
      for (const p of proposal.removed) process.stderr.write(`  - ${p}\n`);
      const unrelated = proposal.added.filter((p) => !p.startsWith(`${r.bundle}/${r.version}/`));
      if (unrelated.length > 0) throw new CliError(`refusing to sign: the proposal adds targets outside ${r.bundle}@${r.version}: ${unrelated.join(', ')}`);
      const sig = sign(null, signedBytes(metadata), createPrivateKey(key.privateKeyPem)).toString('hex');
      const receipt = await client.request('POST', `${versionPath(r)}/signatures`, { json: { proposalId: proposal.proposalId, keyid: key.keyId, sig }, schema: signatureReceipt });
      printJsonOr(receipt, flags.json === true, receipt.published
        ? `signed ${r.bundle}@${r.version}: ${receipt.signatures.length} of ${receipt.threshold} signatures, published to devices`
        : `signed ${r.bundle}@${r.version}: ${receipt.signatures.length} of ${receipt.threshold} signatures, waiting for more approvers`);
    },
  },
  'bundle revoke': {
    usage: 'convoy bundle revoke NAME@VERSION --reason TEXT [--json]',
    options: { reason: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      if (typeof flags.reason !== 'string' || flags.reason.trim() === '') throw new CliError('--reason TEXT is required: it is recorded with the revocation');
      const revoked = await api().request('POST', `${versionPath(r)}/revoke`, { json: { reason: flags.reason }, schema: bundleVersion.extend({ pendingSignatures: z.boolean() }) });
      printJsonOr(revoked, flags.json === true, revoked.pendingSignatures
        ? `revoked ${r.bundle}@${r.version}; devices stop seeing it once approvers sign: convoy bundle sign ${r.bundle}@${r.version} --key FILE`
        : `revoked ${r.bundle}@${r.version}: removed from the signed targets; devices will not install it and devices running it report it`);
    },
  },
};

/** `convoy deploy --rollback`: the signed permission to downgrade, set before the deployment. */
export async function allowRollback(client: ApiClient, r: { bundle: string; version: string }): Promise<void> {
  const answer = await client.request('PUT', `${versionPath(r)}/rollback`, { json: { allowed: true }, schema: z.strictObject({ pendingSignatures: z.boolean() }) });
  if (answer.pendingSignatures) process.stderr.write(`rollback to ${r.bundle}@${r.version} allowed; approvers must sign it (convoy bundle sign ${r.bundle}@${r.version} --key FILE) before devices accept it\n`);
}
