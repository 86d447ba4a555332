import fs from 'node:fs/promises';
import path from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import * as z from 'zod';
import { initCeremony, keyFromJson, publicKeyJson, rotateRole } from '../../certs/ceremony.ts';
import { generateSigningKey, type SigningKey } from '../../tuf/keys.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import { createdKey, rootAccepted, trustStatus } from '../../protocol/trust.ts';
import { toBytes } from '../../tuf/repository.ts';
import { CliError, UsageError, type ApiClient } from '../client.ts';
import { command, count, json, needText, type Command } from '../command.ts';
import { print, printJson, printJsonOr, printList } from '../output.ts';
import { readKey, readPublicKey } from '../sign.ts';

/*
 * `convoy keys …`: the key ceremony, run on the operator's offline machine where it says so. Root
 * keys never go to the server: the CLI signs root metadata here and uploads only the signed result.
 */

function list(value: unknown): string[] {
  return Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
}

async function fetchRoot(client: ApiClient): Promise<Metadata<Root>> {
  const raw = await client.request('GET', '/tuf/root.json', { schema: z.record(z.string(), z.unknown()) });
  return Metadata.fromJSON(MetadataKind.Root, raw as never);
}

async function writeSecret(file: string, pem: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, pem, 0o600);
}

export const commands: Record<string, Command> = {
  'keys init': command({
    usage: 'convoy keys init --out DIR [--root-keys 3] [--root-threshold 2] [--targets-key A.pub.json ... --targets-threshold M]   (offline)',
    options: { out: { type: 'string' }, 'root-keys': { type: 'string' }, 'root-threshold': { type: 'string' }, 'targets-key': { type: 'string', multiple: true }, 'targets-threshold': { type: 'string' } },
    async run({ flags }) {
      const out = path.resolve(needText(flags.out, '--out DIR', 'where to write the root keys and the server folder'));
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
      print(
        [
          `root version 1: ${rootThreshold} of ${rootKeys} root keys; targets ${targetsKeys.length ? `signed offline by ${targetsThreshold} of ${targetsKeys.length} approver keys` : 'signed by the server'}`,
          `  ${path.join(out, 'root-keys')}/   root private keys: keep OFFLINE, one per custodian; never copy them to the server`,
          `  ${path.join(out, 'server')}/      copy into CONVOY_DATA_DIR before the server's first start (online keys + signed root)`,
        ].join('\n'),
      );
    },
  }),
  'keys generate': command({
    usage: 'convoy keys generate --out PREFIX   (an approver key: PREFIX.pem stays with you, PREFIX.pub.json goes to the ceremony)',
    options: { out: { type: 'string' } },
    async run({ flags }) {
      const prefix = path.resolve(needText(flags.out, '--out PREFIX'));
      const key = generateSigningKey();
      if (await fs.stat(`${prefix}.pem`).catch(() => undefined)) throw new CliError(`${prefix}.pem exists: refusing to overwrite a key`);
      await writeSecret(`${prefix}.pem`, key.privateKeyPem);
      await writeFileAtomic(`${prefix}.pub.json`, JSON.stringify(publicKeyJson(key), null, 2) + '\n');
      print(`key ${key.keyId}\n  ${prefix}.pem (private, mode 0600)\n  ${prefix}.pub.json (public)`);
    },
  }),
  'keys status': command({
    usage: 'convoy keys status [--json]',
    options: json,
    async run({ flags, api }) {
      const status = await api().request('GET', '/api/v1/trust', { schema: trustStatus });
      if (flags.json === true) return printJson(status);
      print(`mode ${status.mode}${status.mode === 'development' ? ' (the server holds the root key: not for production)' : ''}; targets signed ${status.targetsSigning === 'server' ? 'by the server' : 'offline by approvers'}\nroot version ${status.rootVersion}, expires ${status.rootExpires}`);
      printList(Object.entries(status.roles), [
        { header: 'ROLE', value: ([role]) => role },
        { header: 'THRESHOLD', value: ([, r]) => `${r.threshold} of ${r.keyIds.length}` },
        { header: 'ON SERVER', value: ([, r]) => String(r.heldByServer) },
        { header: 'KEYS', value: ([, r]) => r.keyIds.map((id) => id.slice(0, 12)).join(' ') },
      ], false);
    },
  }),
  'keys rotate': command({
    usage: 'convoy keys rotate --role root|targets|snapshot|timestamp --root-key FILE... [--out DIR] [--new-keys N] [--threshold M] [--add-key A.pub.json...] [--remove-key KEYID...]',
    options: {
      role: { type: 'string' }, 'root-key': { type: 'string', multiple: true }, out: { type: 'string' }, 'new-keys': { type: 'string' },
      threshold: { type: 'string' }, 'add-key': { type: 'string', multiple: true }, 'remove-key': { type: 'string', multiple: true }, ...json,
    },
    async run({ flags, api }) {
      const role = z.enum(['root', 'targets', 'snapshot', 'timestamp']).safeParse(flags.role);
      if (flags.role === undefined) throw new UsageError('--role: missing (root, targets, snapshot or timestamp)');
      if (!role.success) throw new CliError('--role must be root, targets, snapshot or timestamp');
      const signers = await Promise.all(list(flags['root-key']).map(readKey));
      if (signers.length === 0) throw new UsageError('--root-key FILE is required (repeat it to reach the root threshold)');
      const client = api();
      const current = await fetchRoot(client);
      const threshold = flags.threshold === undefined ? undefined : count(flags.threshold, '--threshold', 1);
      let change: { keys?: ReturnType<typeof keyFromJson>[]; add?: ReturnType<typeof keyFromJson>[]; remove?: string[] } = {};
      const newRootKeys: SigningKey[] = [];
      if (role.data === 'root') {
        needText(flags.out, '--out DIR', 'where to write the new root keys');
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
  }),
  'keys renew': command({
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
  }),
};
