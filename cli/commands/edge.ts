import { listOf } from '../../protocol/api.ts';
import { createdEdge, destinationName, edge, edgeUrl } from '../../protocol/replication.ts';
import { UsageError } from '../client.ts';
import { command, enc, json, need, type Command } from '../command.ts';
import { print, printErr, printJson, printJsonOr, printList } from '../output.ts';

/* `convoy edge …`: edge nodes (Convoy in edge mode) the origin replicates to. */

/**
 * How an edge is doing, from when it last asked for tasks (an idle edge asks every
 * CONVOY_EDGE_POLL_MS, 5 s by default): `ok` within two minutes, else how long it has been silent.
 */
export function edgeHealth(lastSeenAt: string | null, now = Date.now()): string {
  if (lastSeenAt === null) return 'never seen';
  const silent = Math.max(0, now - Date.parse(lastSeenAt));
  if (silent < 120_000) return 'ok';
  const minutes = Math.round(silent / 60_000);
  return minutes < 120 ? `silent ${minutes} min` : `silent ${Math.round(minutes / 60)} h`;
}

function nameArg(positionals: string[]): string {
  if (positionals[0] === undefined) throw new UsageError('edge NAME: missing');
  return need(destinationName, positionals[0], 'edge NAME');
}

export const commands: Record<string, Command> = {
  'edge add': command({
    usage: 'convoy edge add NAME [--url URL] [--description TEXT] [--json]   (admin; prints the edge token once: give it to the edge as CONVOY_EDGE_TOKEN; --url: where the origin pushes to, needs CONVOY_SECRET_KEY on the origin)',
    options: { description: { type: 'string' }, url: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = nameArg(positionals);
      const url = typeof flags.url === 'string' ? need(edgeUrl, flags.url, '--url') : undefined;
      const created = await api().request('POST', '/api/v1/edges', { json: { name, ...(typeof flags.description === 'string' ? { description: flags.description } : {}), ...(url ? { url } : {}) }, schema: createdEdge });
      if (flags.json === true) return printJson(created);
      // The secret alone on stdout (TOKEN=$(convoy edge add …)); the note on stderr.
      printErr(`edge ${created.edge.name} added; its token is shown only now (set it as CONVOY_EDGE_TOKEN on the edge):`);
      print(`${created.token}\n`);
    },
  }),
  'edge list': command({
    usage: 'convoy edge list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/edges', { schema: listOf(edge) });
      printList(rows, [
        { header: 'NAME', value: (e) => e.name },
        { header: 'HEALTH', value: (e) => edgeHealth(e.lastSeenAt) },
        { header: 'URL', value: (e) => e.url ?? '-' },
        { header: 'LAST SEEN', value: (e) => e.lastSeenAt ?? 'never' },
        { header: 'CREATED', value: (e) => e.createdAt },
        { header: 'DESCRIPTION', value: (e) => e.description },
      ], flags.json === true);
    },
  }),
  'edge show': command({
    usage: 'convoy edge show NAME [--json]',
    options: json,
    async run({ positionals, flags, api }) {
      const found = await api().request('GET', `/api/v1/edges/${enc(nameArg(positionals))}`, { schema: edge });
      printJsonOr(found, flags.json === true, `edge ${found.name}\n  health:    ${edgeHealth(found.lastSeenAt)}\n  last seen: ${found.lastSeenAt ?? 'never'}\n  url:       ${found.url ?? 'none (it pulls)'}\n  created:   ${found.createdAt}${found.description ? `\n  ${found.description}` : ''}`);
    },
  }),
  'edge update': command({
    usage: "convoy edge update NAME [--url URL | --no-url] [--token TOKEN] [--description TEXT] [--json]   (admin; a first --url needs the edge's token again: the origin kept only its hash)",
    options: { url: { type: 'string' }, 'no-url': { type: 'boolean' }, token: { type: 'string' }, description: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = nameArg(positionals);
      if (typeof flags.url === 'string' && flags['no-url'] === true) throw new UsageError('give --url URL or --no-url, not both');
      const body = {
        ...(typeof flags.url === 'string' ? { url: need(edgeUrl, flags.url, '--url') } : {}),
        ...(flags['no-url'] === true ? { url: null } : {}),
        ...(typeof flags.token === 'string' ? { token: flags.token } : {}),
        ...(typeof flags.description === 'string' ? { description: flags.description } : {}),
      };
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --url, --no-url or --description');
      const updated = await api().request('PATCH', `/api/v1/edges/${enc(name)}`, { json: body, schema: edge });
      printJsonOr(updated, flags.json === true, `edge ${updated.name}: ${updated.url ? `the origin pushes to ${updated.url}` : 'no URL (it pulls)'}`);
    },
  }),
  'edge remove': command({
    usage: 'convoy edge remove NAME [--json]   (admin; its token stops working)',
    options: json,
    async run({ positionals, flags, api }) {
      const removed = await api().request('DELETE', `/api/v1/edges/${enc(nameArg(positionals))}`, { schema: edge });
      printJsonOr(removed, flags.json === true, `removed edge ${removed.name}`);
    },
  }),
};
