import test from 'ava';
import { pushArtifact, withServer } from '../helpers/server.ts';
import { addUsers } from './users.ts';

/*
 * Approval rules through the API (default mode: the server signs targets): M distinct users,
 * approvals count only for the content they saw, revocation and its refusals.
 */

const base = '/api/v1/bundles/pos-app/versions/1.0.0';

test('M-of-N counts distinct users, and an edit to the draft makes earlier approvals moot', async (t) => {
  await withServer(t, async (server) => {
    const users = await addUsers(server, ['alice', 'bob']);
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    t.is((await server.api('PUT', '/api/v1/bundles/pos-app/trust-policy', { json: { requiredApprovals: 0 } })).status, 400);
    t.is((await server.api('PUT', '/api/v1/bundles/pos-app/trust-policy', { json: { requiredApprovals: 2 } })).status, 200);
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('first\n'));

    const alice = await server.api('POST', `${base}/approve`, { token: users.alice! });
    t.like(alice.body, { status: 'draft', manifestDigest: null, approvals: { required: 2 } });
    t.deepEqual(alice.body.approvals.by.map((a: { principal: string }) => a.principal), ['alice']);

    // The draft changes after Alice looked at it: her approval was for other bytes.
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('second\n'));
    const bob = await server.api('POST', `${base}/approve`, { token: users.bob! });
    t.is(bob.body.status, 'draft');
    t.deepEqual(bob.body.approvals.by.map((a: { principal: string }) => a.principal), ['bob']);

    const again = await server.api('POST', `${base}/approve`, { token: users.alice! });
    t.like(again.body, { status: 'approved' });
    t.regex(again.body.manifestDigest, /^sha256:/);
    t.deepEqual(again.body.approvals.by.map((a: { principal: string }) => a.principal), ['bob', 'alice']);
    t.is((await server.api('POST', `${base}/approve`, { token: users.bob! })).body.error.code, 'version_immutable');
    const shown = await server.api('GET', `${base}/approvals`);
    t.true(shown.body.approvals.by.every((a: { at: string; keyId: string | null }) => !Number.isNaN(Date.parse(a.at)) && a.keyId === null));
  });
});

test('revocation: only approved versions, a reason is required, and it is final', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('x'));
    t.is((await server.api('POST', `${base}/revoke`, { json: { reason: 'early' } })).body.error.code, 'version_not_approved');
    await server.api('POST', `${base}/approve`);
    t.is((await server.api('POST', `${base}/revoke`, { json: { reason: '  ' } })).status, 400);
    const revoked = await server.api('POST', `${base}/revoke`, { json: { reason: 'broken build' } });
    t.like(revoked.body, { status: 'revoked', pendingSignatures: false, revocation: { reason: 'broken build', by: 'admin' } });
    t.is((await server.api('POST', `${base}/revoke`, { json: { reason: 'again' } })).body.error.code, 'version_revoked');
    t.is((await server.api('PUT', `${base}/rollback`, { json: { allowed: true } })).body.error.code, 'version_revoked');
    const targets = await server.api('GET', `/tuf/${(await server.api('GET', '/tuf/timestamp.json')).body.signed.meta['snapshot.json'].version}.snapshot.json`);
    const signed = await server.api('GET', `/tuf/${targets.body.signed.meta['targets.json'].version}.targets.json`);
    t.deepEqual(Object.keys(signed.body.signed.targets), [], 'gone from the signed targets');
    t.is((await server.api('GET', '/tuf/targets/pos-app/1.0.0/manifest.json')).status, 404);
  });
});

test('devices may not approve, sign, revoke or touch keys; offline routes say this server signs itself', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('x'));
    const device = (await server.api('POST', '/api/v1/devices', { json: { id: 'till-1', group: 'shop' } })).body.token;
    for (const [method, url, json] of [
      ['POST', `${base}/approve`, undefined],
      ['GET', `${base}/signing`, undefined],
      ['POST', `${base}/revoke`, { reason: 'x' }],
      ['POST', '/api/v1/trust/keys', { role: 'timestamp' }],
      ['GET', '/api/v1/trust', undefined],
    ] as const) {
      t.is((await server.api(method, url, { token: device, ...(json ? { json } : {}) })).status, 403, `${method} ${url}`);
    }
    const signing = await server.api('GET', `${base}/signing`);
    t.is(signing.status, 400);
    t.regex(signing.body.error.message, /convoy bundle approve/);
    t.like((await server.api('GET', '/api/v1/trust')).body, { mode: 'development', targetsSigning: 'server', roles: { root: { heldByServer: 1 } } });
  });
});
