import * as z from 'zod';
import { bumpKinds, nextVersion } from '../../protocol/api.ts';
import { bundleName } from '../../protocol/names.ts';
import { command, enc, json, need, release, releaseVersionVariable, versionPath, type Command } from '../command.ts';
import { print, printJsonOr } from '../output.ts';

/* `convoy version …`: the version variable CI carries through its steps, and draft removal. */

export const commands: Record<string, Command> = {
  'version next': command({
    usage: `convoy version next NAME --bump major|minor|patch|prerelease [--preid rc] [--dotenv] [--json]   (--preid with major|minor|patch: a pre-release of it, e.g. 1.3.0-rc.0; --dotenv prints ${releaseVersionVariable}=X.Y.Z)`,
    options: { bump: { type: 'string' }, preid: { type: 'string' }, dotenv: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const bump = need(z.enum(bumpKinds), flags.bump, '--bump');
      const query = new URLSearchParams({ bump, ...(typeof flags.preid === 'string' ? { preid: flags.preid } : {}) });
      const next = await api().request('GET', `/api/v1/bundles/${enc(name)}/versions/next?${query}`, { schema: nextVersion });
      if (flags.dotenv) print(`${releaseVersionVariable}=${next.version}`);
      else printJsonOr(next, flags.json === true, next.version);
    },
  }),
  'version delete': command({
    usage: 'convoy version delete NAME@VERSION   (a draft; approved versions are kept, revoke them instead)',
    options: {},
    async run({ positionals, api }) {
      const r = release(positionals[0]);
      await api().send('DELETE', versionPath(r));
      print(`deleted draft ${r.bundle}@${r.version}`);
    },
  }),
};
