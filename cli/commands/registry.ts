import { listOf } from '../../protocol/api.ts';
import { destinationName, registryEndpoint, registryNamespace, registryUrl } from '../../protocol/replication.ts';
import { CliError, UsageError } from '../client.ts';
import { command, enc, json, need, needText, type Command } from '../command.ts';
import { printJsonOr, printList } from '../output.ts';

/* `convoy registry …`: OCI registries a replication policy pushes images to. */

function nameArg(positionals: string[]): string {
  if (positionals[0] === undefined) throw new UsageError('registry NAME: missing');
  return need(destinationName, positionals[0], 'registry NAME');
}

/** The password from stdin, never from a flag (flags land in shell history and `ps`). */
async function readPassword(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password === '') throw new CliError('--password-stdin: nothing was read from standard input');
  return password;
}

export const commands: Record<string, Command> = {
  'registry add': command({
    usage: 'convoy registry add NAME --url URL [--namespace PREFIX] [--username U --password-stdin] [--json]   (admin; needs CONVOY_SECRET_KEY on the server to store credentials)',
    options: { url: { type: 'string' }, namespace: { type: 'string' }, username: { type: 'string' }, 'password-stdin': { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const name = nameArg(positionals);
      const url = need(registryUrl, needText(flags.url, '--url', 'e.g. --url https://registry.example.com'), '--url');
      const namespace = typeof flags.namespace === 'string' ? need(registryNamespace, flags.namespace, '--namespace') : undefined;
      if ((typeof flags.username === 'string') !== (flags['password-stdin'] === true)) throw new UsageError('--username and --password-stdin go together');
      const credentials = typeof flags.username === 'string' ? { username: flags.username, password: await readPassword() } : {};
      const added = await api().request('POST', '/api/v1/registries', { json: { name, url, ...(namespace ? { namespace } : {}), ...credentials }, schema: registryEndpoint });
      printJsonOr(added, flags.json === true, `added registry endpoint ${added.name} (${added.url}${added.credentials ? ', credentials stored encrypted' : ', no credentials'})`);
    },
  }),
  'registry list': command({
    usage: 'convoy registry list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/registries', { schema: listOf(registryEndpoint) });
      printList(rows, [
        { header: 'NAME', value: (r) => r.name },
        { header: 'URL', value: (r) => r.url },
        { header: 'NAMESPACE', value: (r) => r.namespace ?? '' },
        { header: 'CREDENTIALS', value: (r) => (r.credentials ? 'yes' : 'no') },
      ], flags.json === true);
    },
  }),
  'registry show': command({
    usage: 'convoy registry show NAME [--json]',
    options: json,
    async run({ positionals, flags, api }) {
      const found = await api().request('GET', `/api/v1/registries/${enc(nameArg(positionals))}`, { schema: registryEndpoint });
      printJsonOr(found, flags.json === true, `registry ${found.name}\n  url:         ${found.url}\n  namespace:   ${found.namespace ?? '(none)'}\n  credentials: ${found.credentials ? 'yes (encrypted)' : 'no'}`);
    },
  }),
  'registry remove': command({
    usage: 'convoy registry remove NAME [--json]   (admin)',
    options: json,
    async run({ positionals, flags, api }) {
      const removed = await api().request('DELETE', `/api/v1/registries/${enc(nameArg(positionals))}`, { schema: registryEndpoint });
      printJsonOr(removed, flags.json === true, `removed registry endpoint ${removed.name}`);
    },
  }),
};
