import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { renderPermissionsDoc } from '../../server/auth/permissions-doc.ts';
import { actions, policy } from '../../server/auth/policy.ts';
import { withServer } from '../helpers/server.ts';

const docPath = path.join(import.meta.dirname, '..', '..', 'docs', 'permissions.md');

test('docs/permissions.md is what the policy table and the routes say (regenerate: npm run docs:permissions)', async (t) => {
  await withServer(t, async (server) => {
    const expected = renderPermissionsDoc(server.routes, server.registryRoutes);
    const actual = await fs.readFile(docPath, 'utf8');
    t.is(actual, expected, 'docs/permissions.md differs from the code: run `npm run docs:permissions` and commit the result');
  });
});

test('every action has a rule, every route names a known action, and bundle-level routes name their bundle', async (t) => {
  await withServer(t, async (server) => {
    t.deepEqual(actions.filter((a) => policy[a] === undefined), [], 'actions without a rule in server/auth/policy.ts (they fall back to admins only)');
    t.deepEqual(Object.keys(policy).filter((a) => !(actions as readonly string[]).includes(a)), []);
    const unknown = server.routes.filter((r) => !(actions as readonly string[]).includes(r.action));
    t.deepEqual(unknown.map((r) => `${r.method} ${r.path}`), []);
    const blind = server.routes.filter((r) => policy[r.action]?.on === 'bundle' && !r.resource);
    t.deepEqual(blind.map((r) => `${r.method} ${r.path} (${r.action})`), [], 'bundle-level routes without a `resource`: only admins could use them');
  });
});
