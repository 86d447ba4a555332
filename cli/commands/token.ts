import { listOf } from '../../protocol/api.ts';
import { accessToken, createdToken, scope, userName } from '../../protocol/access.ts';
import { CliError, UsageError } from '../client.ts';
import { command, enc, json, need, needText, type Command } from '../command.ts';
import { print, printErr, printJson, printJsonOr, printList } from '../output.ts';

/* `convoy token …`: access tokens (scoped, expiring). */

export /** `30d`, `12h`, `90m`, an ISO date, or `never`: when a token should stop working. */
function parseExpiry(text: string, now = new Date()): string | undefined {
  if (text === 'never') return undefined;
  const relative = /^(\d{1,4})([dhm])$/.exec(text);
  if (relative) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() + Number(relative[1]) * unit).toISOString();
  }
  const absolute = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(absolute)) return new Date(absolute).toISOString();
  throw new CliError(`--expires: expected e.g. 30d, 12h, 2027-01-31 or never, got "${text}"`);
}

export const commands: Record<string, Command> = {
  'token create': command({
    usage: 'convoy token create --scopes read,write,approve,deploy,admin [--expires 30d|12h|2027-01-31|never] [--name TEXT] [--user NAME] [--json]   (prints the token once)',
    options: { scopes: { type: 'string' }, expires: { type: 'string' }, name: { type: 'string' }, user: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const scopes = needText(flags.scopes, '--scopes', 'e.g. --scopes read,write').split(',').map((s) => need(scope, s.trim(), '--scopes'));
      const expiresAt = parseExpiry(typeof flags.expires === 'string' ? flags.expires : '30d');
      const owner = typeof flags.user === 'string' ? need(userName, flags.user, '--user') : undefined;
      const name = typeof flags.name === 'string' ? flags.name : `cli ${new Date().toISOString().slice(0, 10)}`;
      const created = await api().request('POST', '/api/v1/tokens', {
        json: { name, scopes, expiresAt: expiresAt ?? null, ...(owner ? { user: owner } : {}) },
        schema: createdToken,
      });
      if (flags.json === true) {
        printJson(created);
        return;
      }
      // The secret alone on stdout (so `TOKEN=$(convoy token create …)` works); the rest on stderr.
      printErr(`token ${created.info.id} for ${created.info.user} (${created.info.scopes.join(',')}), expires ${created.info.expiresAt ?? 'never'}; it is shown only now:`);
      print(`${created.token}\n`);
    },
  }),
  'token list': command({
    usage: 'convoy token list [--user NAME] [--json]   (another user: admin)',
    options: { user: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = typeof flags.user === 'string' ? `?user=${enc(need(userName, flags.user, '--user'))}` : '';
      const rows = await api().request('GET', `/api/v1/tokens${query}`, { schema: listOf(accessToken) });
      printList(rows, [
        { header: 'ID', value: (t) => String(t.id) },
        { header: 'USER', value: (t) => t.user },
        { header: 'NAME', value: (t) => t.name },
        { header: 'SCOPES', value: (t) => t.scopes.join(',') },
        { header: 'EXPIRES', value: (t) => t.expiresAt ?? 'never' },
        { header: 'LAST USED', value: (t) => t.lastUsedAt ?? 'never' },
        { header: 'REVOKED', value: (t) => t.revokedAt ?? '' },
      ], flags.json === true);
    },
  }),
  'token revoke': command({
    usage: 'convoy token revoke ID [--json]   (your own tokens; any token: admin)',
    options: json,
    async run({ positionals, flags, api }) {
      const id = positionals[0];
      if (id === undefined) throw new UsageError('token ID: missing (see convoy token list)');
      if (!/^\d+$/.test(id)) throw new CliError(`expected a token ID (see convoy token list), got "${id ?? ''}"`);
      const revoked = await api().request('DELETE', `/api/v1/tokens/${id}`, { schema: accessToken });
      printJsonOr(revoked, flags.json === true, `revoked token ${revoked.id} (${revoked.name}) of ${revoked.user}`);
    },
  }),
};
