import { z } from 'zod';
import { deployment } from '../../protocol/api.ts';
import { groupName } from '../../protocol/names.ts';
import type { ApiClient } from '../client.ts';
import { command, json, need, release, versionPath, type Command } from '../command.ts';
import { printErr, printJsonOr } from '../output.ts';

/* `convoy deploy`: a release to a group of devices. */

/** `--rollback`: the signed permission to downgrade, set before the deployment. */
async function allowRollback(client: ApiClient, r: { bundle: string; version: string }): Promise<void> {
  const answer = await client.request('PUT', `${versionPath(r)}/rollback`, { json: { allowed: true }, schema: z.strictObject({ pendingSignatures: z.boolean() }) });
  if (answer.pendingSignatures) printErr(`rollback to ${r.bundle}@${r.version} allowed; approvers must sign it (convoy bundle sign ${r.bundle}@${r.version} --key FILE) before devices accept it`);
}

export const commands: Record<string, Command> = {
  deploy: command({
    usage: 'convoy deploy NAME@VERSION --group GROUP [--rollback] [--json]   (--rollback: a signed permission to downgrade)',
    options: { group: { type: 'string' }, rollback: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const group = need(groupName, flags.group, '--group');
      if (flags.rollback === true) await allowRollback(api(), r);
      const created = await api().request('POST', '/api/v1/deployments', { json: { ...r, group }, schema: deployment });
      printJsonOr(created, flags.json === true, `deployed ${r.bundle}@${r.version} to group ${group} (deployment ${created.id})`);
    },
  }),
};
