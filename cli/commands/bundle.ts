import fs from 'node:fs/promises';
import * as z from 'zod';
import { bundle, bundleVersion } from '../../protocol/api.ts';
import { bundleName, version as versionSchema } from '../../protocol/names.ts';
import { signatureReceipt, signingProposal, trustPolicy } from '../../protocol/trust.ts';
import { artifact } from '../../protocol/api.ts';
import { CliError } from '../client.ts';
import { command, count, enc, json, need, needText, release, versionPath, type Command } from '../command.ts';
import { print, printErr, printJson, printJsonOr, printList } from '../output.ts';

/* `convoy bundle …`: bundles, their versions' life (approve, sign, revoke, delete), the consumer's checks. */

export const commands: Record<string, Command> = {
  'bundle create': command({
    usage: 'convoy bundle create NAME [--description TEXT] [--json]',
    options: { description: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const created = await api().request('POST', '/api/v1/bundles', { json: { name, ...(flags.description ? { description: flags.description } : {}) }, schema: bundle });
      printJsonOr(created, flags.json === true, `created bundle ${created.name}`);
    },
  }),
  'bundle list': command({
    usage: 'convoy bundle list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().requestAll('/api/v1/bundles', bundle);
      printList(rows, [{ header: 'NAME', value: (r) => r.name }, { header: 'CREATED', value: (r) => r.createdAt }, { header: 'DESCRIPTION', value: (r) => r.description }], flags.json === true);
    },
  }),
  'bundle show': command({
    usage: 'convoy bundle show NAME [--json]   (lists its versions)',
    options: json,
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const rows = await api().requestAll(`/api/v1/bundles/${enc(name)}/versions`, bundleVersion);
      printList(rows, [
        { header: 'VERSION', value: (r) => r.version },
        { header: 'STATUS', value: (r) => r.status },
        { header: 'APPROVED', value: (r) => r.approvedAt ?? '-' },
        { header: 'MANIFEST', value: (r) => r.manifestDigest ?? '-' },
      ], flags.json === true);
    },
  }),
  'bundle delete': command({
    usage: 'convoy bundle delete NAME   (only a bundle with no approved version)',
    options: {},
    async run({ positionals, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      await api().send('DELETE', `/api/v1/bundles/${enc(name)}`);
      print(`deleted bundle ${name}`);
    },
  }),
  'bundle approve': command({
    usage: 'convoy bundle approve NAME@VERSION [--json]   (NAME alone: the version is $CONVOY_RELEASE_VERSION)',
    options: json,
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const approved = await api().request('POST', `${versionPath(r)}/approve`, { schema: bundleVersion });
      const by = approved.approvals ? ` (${approved.approvals.by.length} of ${approved.approvals.required} approvals: ${approved.approvals.by.map((a) => a.principal).join(', ')})` : '';
      printJsonOr(approved, flags.json === true, approved.status === 'approved'
        ? `approved ${r.bundle}@${r.version} (manifest ${approved.manifestDigest})${by}`
        : `recorded your approval of ${r.bundle}@${r.version}${by}; it is signed once enough distinct users approve`);
    },
  }),
  'bundle copy': command({
    usage: 'convoy bundle copy NAME@VERSION --to NEW_VERSION [--json]   (a new draft holding the same artifacts)',
    options: { to: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const from = release(positionals[0]);
      const to = need(versionSchema, flags.to, '--to');
      const created = await api().request('POST', `/api/v1/bundles/${enc(from.bundle)}/versions`, { json: { version: to, copyFrom: from.version }, schema: bundleVersion });
      printJsonOr(created, flags.json === true, `created draft ${from.bundle}@${to} from ${from.bundle}@${from.version}`);
    },
  }),
  'bundle verify': command({
    usage: 'convoy bundle verify NAME@VERSION --dir DIR --root ROOT.json [--json]   (checks the files in DIR against the signed metadata, trusting only ROOT.json)',
    options: { dir: { type: 'string' }, root: { type: 'string' }, ...json },
    async run({ positionals, flags, api, env }) {
      const r = release(positionals[0]);
      const dir = needText(flags.dir, '--dir DIR', 'the directory holding the files to check');
      const root = needText(flags.root, '--root ROOT.json', 'the TUF root you trust (e.g. the root.json written by `convoy device add`, or 1.root.json obtained out of band)');
      const dirStat = await fs.stat(dir).catch(() => undefined);
      if (!dirStat?.isDirectory()) throw new CliError(`${dir} is not a directory`);
      const client = api();
      const { verifyRelease, describeMismatch } = await import('../verify.ts');
      const { expected, mismatches } = await verifyRelease({ client, token: env.CONVOY_TOKEN ?? '', bundle: r.bundle, version: r.version, dir, rootFile: root });
      if (flags.json) printJson({ release: r, verified: mismatches.length === 0, files: expected.length, mismatches });
      else for (const m of mismatches) print(describeMismatch(m));
      if (mismatches.length > 0) throw new CliError(`${mismatches.length} mismatch${mismatches.length === 1 ? '' : 'es'} against the signed ${r.bundle}@${r.version}`, 'verify_failed');
      if (!flags.json) print(`verified ${expected.length} file${expected.length === 1 ? '' : 's'} of ${r.bundle}@${r.version} against the signed metadata`);
    },
  }),
  'bundle diff': command({
    usage: 'convoy bundle diff NAME@A NAME@B [--json]   (what was added, removed and changed from A to B)',
    options: json,
    async run({ positionals, flags, api }) {
      const a = release(positionals[0]);
      const b = release(positionals[1]);
      const client = api();
      const { diffArtifacts, short } = await import('../diff.ts');
      const diff = diffArtifacts(await client.requestAll(`${versionPath(a)}/artifacts`, artifact), await client.requestAll(`${versionPath(b)}/artifacts`, artifact));
      if (flags.json) return printJson(diff);
      const lines = [
        ...diff.added.map((x) => `+ ${x.name}  ${x.type}  ${x.size}  ${short(x.digest)}`),
        ...diff.removed.map((x) => `- ${x.name}  ${x.type}  ${x.size}  ${short(x.digest)}`),
        ...diff.changed.map((c) => `~ ${c.name}  ${c.fields.map((f) => (f === 'digest' ? `${short(c.from.digest)} → ${short(c.to.digest)}` : f === 'package' ? `package ${c.from.package?.version ?? '-'} → ${c.to.package?.version ?? '-'}` : `${f} ${String(c.from[f as 'type'])} → ${String(c.to[f as 'type'])}`)).join(', ')}`),
      ];
      print(lines.length ? lines.join('\n') : `no difference between ${a.bundle}@${a.version} and ${b.bundle}@${b.version}`);
    },
  }),
  'bundle policy': command({
    usage: 'convoy bundle policy NAME --approvals M   (distinct users who must approve each version)',
    options: { approvals: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const required = count(flags.approvals, '--approvals', 0);
      const set = await api().request('PUT', `/api/v1/bundles/${enc(name)}/trust-policy`, { json: { requiredApprovals: required }, schema: trustPolicy });
      printJsonOr(set, flags.json === true, `${set.bundle}: each version needs ${set.requiredApprovals} approval(s) from distinct users`);
    },
  }),
  'bundle approvals': command({
    usage: 'convoy bundle approvals NAME@VERSION [--json]   (NAME alone: the version is $CONVOY_RELEASE_VERSION)',
    options: json,
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const shown = await api().request('GET', `${versionPath(r)}/approvals`, { schema: bundleVersion });
      if (flags.json === true) return printJson(shown);
      print(`${r.bundle}@${r.version}: ${shown.status}, ${shown.approvals?.by.length ?? 0} of ${shown.approvals?.required ?? 1} approval(s)${shown.revocation ? `; revoked by ${shown.revocation.by} at ${shown.revocation.at}: ${shown.revocation.reason}` : ''}`);
      printList(shown.approvals?.by ?? [], [{ header: 'BY', value: (a) => a.principal }, { header: 'AT', value: (a) => a.at }, { header: 'KEY', value: (a) => a.keyId ?? '(server key)' }], false);
    },
  }),
  'bundle sign': command({
    usage: "convoy bundle sign NAME@VERSION --key FILE [--json]   (offline mode: sign the proposed TUF metadata with your key: the bundle's role, and top-level targets when its delegations change)",
    options: { key: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const keyFile = needText(flags.key, '--key FILE', 'your approver private key');
      const { readKey, signProposal, checkDelegating } = await import('../sign.ts');
      const key = await readKey(keyFile);
      const client = api();
      const proposal = await client.request('GET', `${versionPath(r)}/signing`, { schema: signingProposal });
      const { metadata, sig } = signProposal(proposal.signed, key);
      // Every other document the change needs (top-level targets when a delegation is added or
      // removed, other bundles' roles when a flat repository migrates), signed with the same key.
      const also = proposal.also.map((document) => ({ role: document.role, ...signProposal(document.signed, key) }));
      // Review before signing: what this signature would add to and remove from the fleet.
      printErr(`${proposal.role} version ${metadata.signed.version}, expires ${metadata.signed.expires}`);
      for (const document of also) {
        if (document.role === 'targets') {
          // Top-level targets only delegates: a target or a delegation of another shape is refused.
          const problem = checkDelegating(document.metadata);
          if (problem) throw new CliError(`refusing to sign: ${problem}`);
          printErr(`targets version ${document.metadata.signed.version} delegates to ${Object.keys(document.metadata.signed.delegations?.roles ?? {}).join(', ') || 'no bundle'}`);
        } else {
          printErr(`${document.role} version ${document.metadata.signed.version}: ${Object.keys(document.metadata.signed.targets).length} target(s)`);
        }
      }
      const listed = (p: string) => [metadata, ...also.map((d) => d.metadata)].map((m) => m.signed.targets[p]).find(Boolean);
      for (const p of proposal.added) printErr(`  + ${p} (${listed(p)?.length} bytes, sha256 ${listed(p)?.hashes.sha256})`);
      for (const p of proposal.removed) printErr(`  - ${p}`);
      const unrelated = proposal.added.filter((p) => !p.startsWith(`${r.bundle}/${r.version}/`));
      if (unrelated.length > 0) throw new CliError(`refusing to sign: the proposal adds targets outside ${r.bundle}@${r.version}: ${unrelated.join(', ')}`);
      const receipt = await client.request('POST', `${versionPath(r)}/signatures`, { json: { proposalId: proposal.proposalId, keyid: key.keyId, sig, ...(also.length > 0 ? { also: also.map((d) => ({ role: d.role, sig: d.sig })) } : {}) }, schema: signatureReceipt });
      printJsonOr(receipt, flags.json === true, receipt.published
        ? `signed ${r.bundle}@${r.version}: ${receipt.signatures.length} of ${receipt.threshold} signatures, published to devices`
        : `signed ${r.bundle}@${r.version}: ${receipt.signatures.length} of ${receipt.threshold} signatures, waiting for more approvers`);
    },
  }),
  'bundle revoke': command({
    usage: 'convoy bundle revoke NAME@VERSION --reason TEXT [--json]   (NAME alone: the version is $CONVOY_RELEASE_VERSION)',
    options: { reason: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const reason = needText(flags.reason, '--reason TEXT', 'it is recorded with the revocation');
      const revoked = await api().request('POST', `${versionPath(r)}/revoke`, { json: { reason }, schema: bundleVersion.extend({ pendingSignatures: z.boolean() }) });
      printJsonOr(revoked, flags.json === true, revoked.pendingSignatures
        ? `revoked ${r.bundle}@${r.version}; devices stop seeing it once approvers sign: convoy bundle sign ${r.bundle}@${r.version} --key FILE`
        : `revoked ${r.bundle}@${r.version}: removed from the signed targets; devices will not install it and devices running it report it`);
    },
  }),
};
