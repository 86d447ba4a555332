import { listOf } from '../../protocol/api.ts';
import { member, role, userName } from '../../protocol/access.ts';
import { bundleName } from '../../protocol/names.ts';
import { command, enc, json, need, type Command } from '../command.ts';
import { print, printJsonOr, printList } from '../output.ts';

/* `convoy member …`: who holds which role on a bundle. */

export const commands: Record<string, Command> = {
  'member add': command({
    usage: 'convoy member add USER --bundle NAME --role guest|reporter|developer|maintainer|owner [--json]   (also changes a role)',
    options: { bundle: { type: 'string' }, role: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const bundle = need(bundleName, flags.bundle, '--bundle');
      const granted = need(role, flags.role, '--role');
      const added = await api().request('POST', `/api/v1/bundles/${enc(bundle)}/members`, { json: { user: who, role: granted }, schema: member });
      printJsonOr(added, flags.json === true, `${added.user} is ${added.role} of ${added.bundle}`);
    },
  }),
  'member list': command({
    usage: 'convoy member list --bundle NAME [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const bundle = need(bundleName, flags.bundle, '--bundle');
      const rows = await api().request('GET', `/api/v1/bundles/${enc(bundle)}/members`, { schema: listOf(member) });
      printList(rows, [{ header: 'USER', value: (m) => m.user }, { header: 'ROLE', value: (m) => m.role }, { header: 'SINCE', value: (m) => m.createdAt }], flags.json === true);
    },
  }),
  'member remove': command({
    usage: 'convoy member remove USER --bundle NAME',
    options: { bundle: { type: 'string' } },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const bundle = need(bundleName, flags.bundle, '--bundle');
      await api().send('DELETE', `/api/v1/bundles/${enc(bundle)}/members/${enc(who)}`);
      print(`removed ${who} from ${bundle}\n`);
    },
  }),
};
