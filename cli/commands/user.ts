import { listOf } from '../../protocol/api.ts';
import { user, userName } from '../../protocol/access.ts';
import { command, json, need, type Command } from '../command.ts';
import { printJsonOr, printList } from '../output.ts';

/* `convoy user …` (admin). */

export const commands: Record<string, Command> = {
  'user create': command({
    usage: 'convoy user create NAME [--admin] [--json]   (admin)',
    options: { admin: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(userName, positionals[0], 'user name');
      const created = await api().request('POST', '/api/v1/users', { json: { name, ...(flags.admin ? { admin: true } : {}) }, schema: user });
      printJsonOr(created, flags.json === true, `created ${created.admin ? 'admin ' : ''}user ${created.name}; give them a token with: convoy token create --user ${created.name} --scopes read`);
    },
  }),
  'user list': command({
    usage: 'convoy user list [--json]   (admin)',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/users', { schema: listOf(user) });
      printList(rows, [{ header: 'NAME', value: (u) => u.name }, { header: 'ADMIN', value: (u) => (u.admin ? 'yes' : '') }, { header: 'CREATED', value: (u) => u.createdAt }], flags.json === true);
    },
  }),
};
