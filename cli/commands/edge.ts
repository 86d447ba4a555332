import { listOf } from '../../protocol/api.ts';
import { createdEdge, destinationName, edge } from '../../protocol/replication.ts';
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
    usage: 'convoy edge add NAME [--description TEXT] [--json]   (admin; prints the edge token once: give it to the edge as CONVOY_EDGE_TOKEN)',
    options: { description: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = nameArg(positionals);
      const created = await api().request('POST', '/api/v1/edges', { json: { name, ...(typeof flags.description === 'string' ? { description: flags.description } : {}) }, schema: createdEdge });
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
      printJsonOr(found, flags.json === true, `edge ${found.name}\n  health:    ${edgeHealth(found.lastSeenAt)}\n  last seen: ${found.lastSeenAt ?? 'never'}\n  created:   ${found.createdAt}${found.description ? `\n  ${found.description}` : ''}`);
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
