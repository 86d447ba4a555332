import { listOf } from '../../protocol/api.ts';
import { auditEvent, auditOutcome } from '../../protocol/access.ts';
import { command, json, need, type Command } from '../command.ts';
import { printList } from '../output.ts';

/* `convoy audit list` (admin): who did what, and what was refused. */

export const commands: Record<string, Command> = {
  'audit list': command({
    usage: 'convoy audit list [--actor USER] [--action ACTION] [--bundle NAME] [--outcome success|denied|unauthenticated|failed] [--since ISO] [--until ISO] [--page N] [--per-page N] [--json]   (admin)',
    options: { actor: { type: 'string' }, action: { type: 'string' }, bundle: { type: 'string' }, outcome: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, page: { type: 'string' }, 'per-page': { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = new URLSearchParams();
      for (const key of ['actor', 'action', 'bundle', 'since', 'until', 'page'] as const) if (typeof flags[key] === 'string') query.set(key, flags[key]);
      if (typeof flags.outcome === 'string') query.set('outcome', need(auditOutcome, flags.outcome, '--outcome'));
      if (typeof flags['per-page'] === 'string') query.set('per_page', flags['per-page']);
      const rows = await api().request('GET', `/api/v1/audit${query.size ? `?${query}` : ''}`, { schema: listOf(auditEvent) });
      printList(rows, [
        { header: 'AT', value: (e) => e.at },
        { header: 'ACTOR', value: (e) => e.actor ?? '-' },
        { header: 'ACTION', value: (e) => e.action },
        { header: 'TARGET', value: (e) => `${e.method} ${e.target}` },
        { header: 'OUTCOME', value: (e) => (e.error ? `${e.outcome} (${e.status} ${e.error})` : `${e.outcome} (${e.status})`) },
        { header: 'REQUEST', value: (e) => e.requestId },
      ], flags.json === true);
    },
  }),
};
