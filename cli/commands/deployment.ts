import { deployment, listOf } from '../../protocol/api.ts';
import { command, json, type Command } from '../command.ts';
import { printList } from '../output.ts';

/* `convoy deployment …`: what was deployed where. */

export const commands: Record<string, Command> = {
  'deployment list': command({
    usage: 'convoy deployment list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/deployments', { schema: listOf(deployment) });
      printList(rows, [
        { header: 'ID', value: (d) => String(d.id) },
        { header: 'RELEASE', value: (d) => `${d.bundle}@${d.version}` },
        { header: 'GROUP', value: (d) => d.group },
        { header: 'BY', value: (d) => d.createdBy },
        { header: 'AT', value: (d) => d.createdAt },
      ], flags.json === true);
    },
  }),
};
