import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, withServer } from '../helpers/server.ts';
import { convoy } from '../helpers/cli.ts';

test('the access scenario from the CLI: users, members, scoped tokens, a refused and an accepted approval, the audit trail', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    const run = async (args: string[], token?: string) => {
      const result = await convoy(server.url, args, { token });
      t.is(result.code, 0, `convoy ${args.join(' ')}: ${result.stderr}`);
      return result;
    };
    try {
      await run(['bundle', 'create', 'pos-app']);
      for (const [user, role] of [['ci-bot', 'developer'], ['rita', 'reporter'], ['max', 'maintainer']] as const) {
        await run(['user', 'create', user]);
        const added = await run(['member', 'add', user, '--bundle', 'pos-app', '--role', role]);
        t.is(added.stdout.trim(), `${user} is ${role} of pos-app`);
      }
      const token = async (user: string, scopes: string) => (await run(['token', 'create', '--user', user, '--scopes', scopes, '--expires', '30d', '--name', `${user} token`])).stdout.trim();
      const ci = await token('ci-bot', 'read,write');
      const rita = await token('rita', 'read,approve');
      const max = await token('max', 'read,approve');
      t.regex(ci, /^cvy_/, 'the secret alone on stdout');

      const file = path.join(work, 'app.txt');
      await fs.writeFile(file, 'release\n');
      await run(['artifact', 'push', file, '--bundle', 'pos-app', '--version', '1.0.0'], ci);

      const refused = await convoy(server.url, ['bundle', 'approve', 'pos-app@1.0.0'], { token: rita });
      t.is(refused.code, 1);
      t.regex(refused.stderr, /not allowed to version:approve: needs maintainer or higher on "pos-app".*\(forbidden\)/);
      await run(['bundle', 'approve', 'pos-app@1.0.0'], max);

      const members = JSON.parse((await run(['member', 'list', '--bundle', 'pos-app', '--json'])).stdout);
      t.deepEqual(members.map((m: { user: string; role: string }) => `${m.user}:${m.role}`), ['admin:owner', 'ci-bot:developer', 'max:maintainer', 'rita:reporter']);

      const listed = JSON.parse((await run(['token', 'list', '--json'], ci)).stdout);
      t.is(listed.length, 1);
      t.truthy(listed[0].lastUsedAt);
      const expiresInDays = (Date.parse(listed[0].expiresAt) - Date.now()) / 86_400_000;
      t.true(expiresInDays > 29.9 && expiresInDays <= 30, `--expires 30d, got ${expiresInDays}`);
      const table = (await run(['token', 'list', '--user', 'ci-bot'])).stdout;
      t.regex(table, /LAST USED/);

      await run(['token', 'revoke', String(listed[0].id)], ci);
      const afterRevoke = await convoy(server.url, ['bundle', 'list'], { token: ci });
      t.is(afterRevoke.code, 1);
      t.regex(afterRevoke.stderr, /unauthenticated/);

      const audit = JSON.parse((await run(['audit', 'list', '--bundle', 'pos-app', '--json'])).stdout);
      const steps = audit.map((e: { actor: string; action: string; outcome: string }) => `${e.actor} ${e.action} ${e.outcome}`).reverse();
      for (const step of ['ci-bot bundle:write success', 'rita version:approve denied', 'max version:approve success']) t.true(steps.includes(step), `${step} in ${steps.join(', ')}`);
      const deniedOnly = (await run(['audit', 'list', '--outcome', 'denied'])).stdout;
      t.regex(deniedOnly, /rita\s+version:approve\s+POST \/api\/v1\/bundles\/pos-app\/versions\/1\.0\.0\/approve\s+denied \(403 forbidden\)/);

      const bad = await convoy(server.url, ['token', 'create', '--scopes', 'read', '--expires', 'soon']);
      t.is(bad.code, 1);
      t.regex(bad.stderr, /--expires: expected/);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
