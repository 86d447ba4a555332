import { createHash } from 'node:crypto';
import test from 'ava';
import { openDatabase } from '../../server/db/knex.ts';
import { migrationSource } from '../../server/db/migrations.ts';
import { pushArtifact, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';
import { addUsers } from './users.ts';

/*
 * Migration 0007 merges the release notices' `approvals` table into trust's `trust_approvals`
 * and moves approvals to the fingerprint that covers package metadata. A database as 0005 left
 * it (rolled back with 0007's own `down`, then given the old fingerprints) keeps every approval.
 */

/** The content fingerprint before 0007, as the server computed it then. */
function fingerprintBefore0007(artifacts: { name: string; type: string; digest: string; size: number }[]): string {
  const canonical = JSON.stringify([...artifacts].sort((a, b) => (a.name < b.name ? -1 : 1)).map((a) => [a.name, a.type, a.digest, a.size]));
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

const approvers = async (server: TestServer, version: string) =>
  (await server.api('GET', `/api/v1/bundles/pos-app/versions/${version}/approvals`)).body.approvals.by.map((a: { principal: string }) => a.principal);

test('upgrading to one approvals table keeps every approval, of approved versions and of drafts', async (t) => {
  await withServer(t, async (server) => {
    const users = await addUsers(server, ['alice', 'bob']);
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    t.is((await server.api('PUT', '/api/v1/bundles/pos-app/trust-policy', { json: { requiredApprovals: 2 } })).status, 200);
    for (const version of ['1.0.0', '1.1.0']) {
      await pushArtifact(server, 'pos-app', version, 'app.txt', Buffer.from(`${version}\n`));
      const bytes = Buffer.from(`firmware for ${version}\n`);
      await server.api('PUT', `/api/v1/blobs/${sha256Digest(bytes)}`, { body: bytes });
      const put = await server.api('PUT', `/api/v1/bundles/pos-app/versions/${version}/artifacts/fw.bin`, {
        json: { type: 'package', digest: sha256Digest(bytes), size: bytes.length, package: { format: 'generic', name: 'fw', version, architecture: 'any' } },
      });
      t.is(put.status, 201);
      t.is((await server.api('POST', `/api/v1/bundles/pos-app/versions/${version}/approve`, { token: users.alice! })).status, 200);
    }
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve', { token: users.bob! })).body.status, 'approved');

    // Back to the 0005 schema, as a server before this change left it: bob's approval of 1.0.0
    // only in the old `approvals` table, every fingerprint the old one.
    const db = await openDatabase({ databaseUrl: server.databaseUrl, dataDir: server.dataDir });
    try {
      // Down to just before 0007 (later migrations are undone first, as knex does one at a time).
      await db.migrate.down({ migrationSource, name: '0007_one_approvals_table' });
      t.true(await db.schema.hasTable('approvals'));
      await db('trust_approvals').where({ bundle: 'pos-app', version: '1.0.0', principal: 'bob' }).delete();
      for (const version of ['1.0.0', '1.1.0']) {
        const artifacts = (await server.api('GET', `/api/v1/bundles/pos-app/versions/${version}/artifacts`)).body;
        await db('trust_approvals').where({ bundle: 'pos-app', version }).update({ content_digest: fingerprintBefore0007(artifacts) });
      }
      t.deepEqual(await approvers(server, '1.0.0'), [], 'under the old fingerprints the approvals are not found');
    } finally {
      await db.destroy();
    }

    await server.restart(); // migrates up again
    t.deepEqual(await approvers(server, '1.0.0'), ['alice', 'bob']);
    t.deepEqual(await approvers(server, '1.1.0'), ['alice'], "a draft's approval still counts for its unchanged content");
    const after = await openDatabase({ databaseUrl: server.databaseUrl, dataDir: server.dataDir });
    try {
      t.false(await after.schema.hasTable('approvals'), 'one approvals table');
    } finally {
      await after.destroy();
    }
    // And the draft's next approval completes it.
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.1.0/approve', { token: users.bob! })).body.status, 'approved');
  });
});
