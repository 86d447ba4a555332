import { createServerCsr, generateKeyPem } from '../../certs/pki.ts';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { roles, scopes, type Role, type Scope } from '../../protocol/access.ts';
import { memberOf } from '../../server/auth/permissions-doc.ts';
import { isAllowed, mayHoldSomewhere, ruleOf, type Caller } from '../../server/auth/policy.ts';
import { deviceReadScope, inScope, mayReadDeployment } from '../../server/auth/reads.ts';
import type { Route } from '../../server/http/routes.ts';
import { pushArtifact, sha256Digest, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Walks the whole permission matrix against a live server: for every route (so every action) and
 * every kind of caller (no role, each role of the ladder, the instance admin, a device), an allowed
 * request succeeds and a denied one answers 403 (404 when the caller may not even see the row acted
 * on: the read model); a token without the action's scope answers 403
 * even for the bundle's owner and the admin; no token, an expired one and a revoked one answer 401.
 * What "allowed" means comes from the policy table; what the server does comes from HTTP.
 */

type Who = 'outsider' | Role | 'admin' | 'device' | 'edge';
const everyone: Who[] = ['outsider', ...roles, 'admin', 'device', 'edge'];

interface Request {
  method?: string;
  path: string;
  json?: unknown;
  body?: Buffer;
  headers?: Record<string, string>;
  ok: number[];
  /** Undoes what the request did to the caller's own roles. */
  after?: () => Promise<void>;
  /**
   * The row the request acts on (in group g1): a user who may not see it (server/auth/reads.ts)
   * is denied with 404, as a read of it would be, never 403, which would reveal that it exists.
   */
  row?: 'deployment' | 'device';
}

/** What each case may ask of the fixture: fresh state for requests that change it. */
interface Fixture {
  server: TestServer;
  /** A bundle where every role user holds their role; approved 1.0.0 holds `a.txt`. */
  shared: string;
  sharedBlob: string;
  /** A fresh bundle with the same members, optionally with a draft, an artifact, an approval. */
  fresh(state?: 'empty' | 'draft' | 'artifact' | 'approved'): Promise<string>;
  /** The acting user's name (for routes about one's own things). */
  actor: string;
  /** A fresh running deployment to group g1 (an approved fresh bundle). */
  deployment(): Promise<number>;
  /** A fresh device registered in g1. */
  device(): Promise<string>;
  /** A fresh device group where every role user holds their role, as on g1. */
  group(): Promise<string>;
  unique(prefix: string): string;
  /** The token of the edge `matrix-edge`, whose replication tasks name the shared bundle's content. */
  edgeToken: string;
  deviceToken: string;
}

const cases: Record<string, (fx: Fixture) => Promise<Request>> = {
  'PUT /api/v1/blobs/:digest': async (fx) => {
    const bytes = randomBytes(32);
    return { path: `/api/v1/blobs/${sha256Digest(bytes)}`, body: bytes, headers: { 'content-type': 'application/octet-stream' }, ok: [201] };
  },
  'GET /api/v1/blobs/:digest': async (fx) => ({ path: `/api/v1/blobs/${fx.sharedBlob}`, ok: [200] }),
  'HEAD /api/v1/blobs/:digest': async (fx) => ({ method: 'HEAD', path: `/api/v1/blobs/${fx.sharedBlob}`, ok: [200] }),
  'POST /api/v1/bundles': async (fx) => {
    const name = fx.unique('new');
    // Its creator becomes an Owner: remove the bundle again, so the caller's roles stay as modelled.
    return { path: '/api/v1/bundles', json: { name }, ok: [201], after: async () => void (await fx.server.api('DELETE', `/api/v1/bundles/${name}`)) };
  },
  'GET /api/v1/bundles': async () => ({ path: '/api/v1/bundles', ok: [200] }),
  'GET /api/v1/bundles/:name': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}`, ok: [200] }),
  'DELETE /api/v1/bundles/:name': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('draft')}`, ok: [204] }),
  'POST /api/v1/bundles/:name/versions': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh()}/versions`, json: { version: '1.0.0' }, ok: [201] }),
  'GET /api/v1/bundles/:name/versions': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions`, ok: [200] }),
  'GET /api/v1/bundles/:name/versions/:version': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions/1.0.0`, ok: [200] }),
  'DELETE /api/v1/bundles/:name/versions/:version': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('draft')}/versions/1.0.0`, ok: [204] }),
  'GET /api/v1/bundles/:name/versions/:version/artifacts': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions/1.0.0/artifacts`, ok: [200] }),
  'GET /api/v1/bundles/:name/versions/:version/artifacts/:artifact': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions/1.0.0/artifacts/a.txt`, ok: [200] }),
  'PUT /api/v1/bundles/:name/versions/:version/artifacts/:artifact': async (fx) => ({
    path: `/api/v1/bundles/${await fx.fresh('draft')}/versions/1.0.0/artifacts/b.txt`,
    json: { type: 'file', digest: fx.sharedBlob, size: 6 },
    ok: [201],
  }),
  'DELETE /api/v1/bundles/:name/versions/:version/artifacts/:artifact': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('artifact')}/versions/1.0.0/artifacts/a.txt`, ok: [204] }),
  'POST /api/v1/bundles/:name/versions/:version/approve': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('artifact')}/versions/1.0.0/approve`, ok: [200] }),
  'GET /api/v1/bundles/:name/versions/:version/approvals': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions/1.0.0/approvals`, ok: [200] }),
  'PUT /api/v1/bundles/:name/trust-policy': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh()}/trust-policy`, json: { requiredApprovals: 1 }, ok: [200] }),
  // This server signs targets itself: an allowed caller is told to approve instead (400).
  'GET /api/v1/bundles/:name/versions/:version/signing': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('artifact')}/versions/1.0.0/signing`, ok: [400] }),
  'POST /api/v1/bundles/:name/versions/:version/signatures': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('artifact')}/versions/1.0.0/signatures`, json: { proposalId: 1, keyid: 'a'.repeat(64), sig: 'b'.repeat(128) }, ok: [404] }),
  'POST /api/v1/bundles/:name/versions/:version/revoke': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('approved')}/versions/1.0.0/revoke`, json: { reason: 'matrix' }, ok: [200] }),
  'PUT /api/v1/bundles/:name/versions/:version/rollback': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh('approved')}/versions/1.0.0/rollback`, json: { allowed: true }, ok: [200] }),
  'GET /api/v1/trust': async () => ({ path: '/api/v1/trust', ok: [200] }),
  'POST /api/v1/trust/keys': async () => ({ path: '/api/v1/trust/keys', json: { role: 'timestamp' }, ok: [201] }),
  // An unsigned root is refused by an allowed caller's request too (400), never applied.
  'POST /api/v1/trust/root': async () => ({ path: '/api/v1/trust/root', json: {}, ok: [400] }),
  'POST /api/v1/deployments': async (fx) => ({ path: '/api/v1/deployments', json: { bundle: await fx.fresh('approved'), version: '1.0.0', group: 'g1' }, ok: [201] }),
  'GET /api/v1/deployments': async () => ({ path: '/api/v1/deployments', ok: [200] }),
  'POST /api/v1/devices': async (fx) => ({ path: '/api/v1/devices', json: { id: fx.unique('dev'), group: 'g1' }, ok: [201] }),
  'GET /api/v1/devices': async () => ({ path: '/api/v1/devices', ok: [200] }),
  // An edge reads content by digest only (what its tasks name), never by target path: 404 as for any path it may not read.
  'GET /tuf/targets/*path': async (fx) => ({ path: `/tuf/targets/${fx.shared}/1.0.0/manifest.json`, ok: fx.actor === 'edge' ? [404] : [200] }),
  'GET /tuf/:file': async () => ({ path: '/tuf/timestamp.json', ok: [200] }),
  'GET /api/v1/groups/:group/release': async () => ({ path: '/api/v1/groups/g1/release', ok: [200, 204] }),
  'POST /api/v1/users': async (fx) => ({ path: '/api/v1/users', json: { name: fx.unique('user') }, ok: [201] }),
  'GET /api/v1/users': async () => ({ path: '/api/v1/users', ok: [200] }),
  'GET /api/v1/user': async () => ({ path: '/api/v1/user', ok: [200] }),
  'GET /api/v1/bundles/:name/members': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/members`, ok: [200] }),
  'POST /api/v1/bundles/:name/members': async (fx) => ({ path: `/api/v1/bundles/${await fx.fresh()}/members`, json: { user: 'extra', role: 'guest' }, ok: [201] }),
  'DELETE /api/v1/bundles/:name/members/:user': async (fx) => {
    const bundle = await fx.fresh();
    await expectOk(fx.server, 'POST', `/api/v1/bundles/${bundle}/members`, { user: 'extra', role: 'guest' });
    return { path: `/api/v1/bundles/${bundle}/members/extra`, ok: [204] };
  },
  'POST /api/v1/tokens': async () => ({ path: '/api/v1/tokens', json: { name: 'made in the matrix', scopes: ['read'] }, ok: [201] }),
  'GET /api/v1/tokens': async () => ({ path: '/api/v1/tokens', ok: [200] }),
  'DELETE /api/v1/tokens/:id': async (fx) => {
    const created = await expectOk(fx.server, 'POST', '/api/v1/tokens', { name: 'to revoke', scopes: ['read'], user: fx.actor === 'device' || fx.actor === 'edge' ? 'outsider' : fx.actor });
    return { path: `/api/v1/tokens/${created.info.id}`, ok: [200] };
  },
  'GET /api/v1/audit': async () => ({ path: '/api/v1/audit', ok: [200] }),
  'GET /api/v1/bundles/:name/versions/next': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/versions/next?bump=patch`, ok: [200] }),
  'POST /api/v1/bundles/:name/versions/:version/artifacts': async (fx) => ({
    path: `/api/v1/bundles/${await fx.fresh('draft')}/versions/1.0.0/artifacts`,
    json: { artifacts: [{ name: 'b.txt', type: 'file', digest: fx.sharedBlob, size: 6 }] },
    ok: [201],
  }),
  'PATCH /api/v1/bundles/:name/versions/:version/artifacts/:artifact': async (fx) => ({
    path: `/api/v1/bundles/${await fx.fresh('artifact')}/versions/1.0.0/artifacts/a.txt`,
    json: { type: 'script' },
    ok: [200],
  }),
  'PUT /api/v1/bundles/:name/versions/:version/files/:file': async (fx) => ({
    path: `/api/v1/bundles/${await fx.fresh()}/versions/1.0.0/files/c.txt`,
    body: Buffer.from('hello\n'),
    headers: { 'content-type': 'application/octet-stream' },
    ok: [201],
  }),
  // Rollouts: deployments are acted on through their group (g1, where every role user holds their role).
  'GET /api/v1/deployments/:id': async (fx) => ({ path: `/api/v1/deployments/${await fx.deployment()}`, ok: [200] }),
  // A finished deployment's stream sends it once and ends.
  'GET /api/v1/deployments/:id/events': async (fx) => {
    const id = await fx.deployment();
    await expectOk(fx.server, 'POST', `/api/v1/deployments/${id}/abort`);
    return { path: `/api/v1/deployments/${id}/events`, ok: [200] };
  },
  'POST /api/v1/deployments/:id/pause': async (fx) => ({ path: `/api/v1/deployments/${await fx.deployment()}/pause`, ok: [200], row: 'deployment' }),
  'POST /api/v1/deployments/:id/resume': async (fx) => {
    const id = await fx.deployment();
    await expectOk(fx.server, 'POST', `/api/v1/deployments/${id}/pause`);
    return { path: `/api/v1/deployments/${id}/resume`, ok: [200], row: 'deployment' };
  },
  'POST /api/v1/deployments/:id/abort': async (fx) => ({ path: `/api/v1/deployments/${await fx.deployment()}/abort`, ok: [200], row: 'deployment' }),
  'POST /api/v1/deployments/:id/retry': async (fx) => ({ path: `/api/v1/deployments/${await fx.deployment()}/retry`, json: {}, ok: [200], row: 'deployment' }),
  'GET /api/v1/devices/:id': async () => ({ path: '/api/v1/devices/matrix-device', ok: [200] }),
  'POST /api/v1/devices/:id/move': async (fx) => ({ path: `/api/v1/devices/${await fx.device()}/move`, json: { group: 'g1' }, ok: [200], row: 'device' }),
  'DELETE /api/v1/devices/:id': async (fx) => ({ method: 'DELETE', path: `/api/v1/devices/${await fx.device()}`, ok: [200], row: 'device' }),
  'GET /api/v1/devices/:id/release': async () => ({ path: '/api/v1/devices/matrix-device/release', ok: [200, 204] }),
  'GET /api/v1/groups': async () => ({ path: '/api/v1/groups', ok: [200] }),
  'POST /api/v1/groups': async (fx) => ({ path: '/api/v1/groups', json: { name: fx.unique('grp') }, ok: [201] }),
  'POST /api/v1/groups/preview': async () => ({ path: '/api/v1/groups/preview', json: { filter: 'model = "pos-x2"' }, ok: [200] }),
  'GET /api/v1/groups/:group': async () => ({ path: '/api/v1/groups/g1', ok: [200] }),
  'DELETE /api/v1/groups/:group': async (fx) => ({ path: `/api/v1/groups/${await fx.group()}`, ok: [204] }),
  'GET /api/v1/groups/:group/members': async () => ({ path: '/api/v1/groups/g1/members', ok: [200] }),
  'POST /api/v1/groups/:group/members': async (fx) => ({ path: `/api/v1/groups/${await fx.group()}/members`, json: { user: 'extra', role: 'guest' }, ok: [201] }),
  'DELETE /api/v1/groups/:group/members/:user': async (fx) => {
    const group = await fx.group();
    await expectOk(fx.server, 'POST', `/api/v1/groups/${group}/members`, { user: 'extra', role: 'guest' });
    return { path: `/api/v1/groups/${group}/members/extra`, ok: [204] };
  },
  // Served without a token too (anonymous): checked apart from the matrix below.
  'GET /api/v1/openapi.json': async () => ({ path: '/api/v1/openapi.json', ok: [200] }),
  'POST /api/v1/devices/:id/revoke': async (fx) => {
    const id = fx.unique('revoked');
    await expectOk(fx.server, 'POST', '/api/v1/devices', { id, group: 'g9' });
    return { path: `/api/v1/devices/${id}/revoke`, ok: [200] };
  },
  'POST /api/v1/enrollment-tokens': async () => ({ path: '/api/v1/enrollment-tokens', json: { group: 'g1', ttlSeconds: 3600 }, ok: [201] }),
  'GET /api/v1/enrollment-tokens': async () => ({ path: '/api/v1/enrollment-tokens?group=g1', ok: [200] }),
  'DELETE /api/v1/enrollment-tokens/:id': async (fx) => {
    const made = await expectOk(fx.server, 'POST', '/api/v1/enrollment-tokens', { group: 'g1', ttlSeconds: 3600 });
    return { method: 'DELETE', path: `/api/v1/enrollment-tokens/${made.id}`, ok: [200] };
  },
  'GET /api/v1/devices/:id/certificates': async (fx) => ({ path: `/api/v1/devices/${await fx.device()}/certificates`, ok: [200] }),
  // Anonymous: the credential is in the body (an enrollment token; a certificate), and these are not valid ones.
  'POST /api/v1/enroll': async () => ({ path: '/api/v1/enroll', json: { token: `cve_${'x'.repeat(43)}`, csr: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(64)}\n-----END CERTIFICATE REQUEST-----\n` }, ok: [401] }),
  'POST /api/v1/enroll/renew': async () => ({
    path: '/api/v1/enroll/renew',
    json: { certificate: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(64)}\n-----END CERTIFICATE-----\n`, csr: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(64)}\n-----END CERTIFICATE REQUEST-----\n` },
    ok: [400],
  }),
  // Replication: one shared edge and policy on the shared bundle, made once by the admin.
  'POST /api/v1/edges': async (fx) => ({ path: '/api/v1/edges', json: { name: fx.unique('edge') }, ok: [201] }),
  'GET /api/v1/edges': async () => ({ path: '/api/v1/edges', ok: [200] }),
  // An edge's own calls (edge mode).
  'GET /api/v1/edge/tasks': async () => ({ path: '/api/v1/edge/tasks', ok: [200] }),
  'POST /api/v1/edge/tasks/:task': async (fx) => {
    const pending = await fx.server.api('GET', '/api/v1/edge/tasks', { token: fx.edgeToken });
    return { path: `/api/v1/edge/tasks/${pending.body.tasks[0].id}`, json: { status: 'succeeded', bytes: 0 }, ok: [204] };
  },
  'POST /api/v1/edge/credentials': async (fx) => ({ path: '/api/v1/edge/credentials', json: { token: fx.deviceToken }, ok: [200] }),
  // A report the origin cannot parse is logged and dropped, as on its own broker: still accepted.
  'POST /api/v1/edge/certificate': async () => ({ path: '/api/v1/edge/certificate', json: { csr: createServerCsr({ name: 'edge.matrix.example', keyPem: generateKeyPem() }), dns: ['edge.matrix.example'] }, ok: [200] }),
  'GET /api/v1/edge/devices/:id/release': async () => ({ path: '/api/v1/edge/devices/matrix-device/release', ok: [200, 204] }),
  'POST /api/v1/edge/reports': async () => ({ path: '/api/v1/edge/reports', json: { device: 'matrix-device', payload: '{}' }, ok: [204] }),
  'GET /api/v1/edges/:edge': async (fx) => ({ path: `/api/v1/edges/${(await replicationFixture(fx)).edge}`, ok: [200] }),
  'PATCH /api/v1/edges/:edge': async (fx) => ({ path: `/api/v1/edges/${(await replicationFixture(fx)).edge}`, method: 'PATCH', json: { description: 'matrix' }, ok: [200] }),
  'DELETE /api/v1/edges/:edge': async (fx) => {
    const name = fx.unique('edge');
    await expectOk(fx.server, 'POST', '/api/v1/edges', { name });
    return { path: `/api/v1/edges/${name}`, ok: [200] };
  },
  'POST /api/v1/registries': async (fx) => ({ path: '/api/v1/registries', json: { name: fx.unique('reg'), url: 'http://127.0.0.1:9' }, ok: [201] }),
  'GET /api/v1/registries': async () => ({ path: '/api/v1/registries', ok: [200] }),
  'GET /api/v1/registries/:registry': async (fx) => ({ path: `/api/v1/registries/${(await replicationFixture(fx)).registry}`, ok: [200] }),
  'DELETE /api/v1/registries/:registry': async (fx) => {
    const name = fx.unique('reg');
    await expectOk(fx.server, 'POST', '/api/v1/registries', { name, url: 'http://127.0.0.1:9' });
    return { path: `/api/v1/registries/${name}`, ok: [200] };
  },
  'POST /api/v1/bundles/:name/replication-policies': async (fx) => ({
    path: `/api/v1/bundles/${fx.shared}/replication-policies`,
    json: { name: fx.unique('policy'), destinations: [(await replicationFixture(fx)).edge] },
    ok: [201],
  }),
  'GET /api/v1/bundles/:name/replication-policies': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-policies`, ok: [200] }),
  'GET /api/v1/bundles/:name/replication-policies/:policy': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}`, ok: [200] }),
  'PATCH /api/v1/bundles/:name/replication-policies/:policy': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}`, json: { enabled: true }, ok: [200] }),
  'DELETE /api/v1/bundles/:name/replication-policies/:policy': async (fx) => {
    const name = fx.unique('policy');
    await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies`, { name, destinations: [(await replicationFixture(fx)).edge] });
    return { path: `/api/v1/bundles/${fx.shared}/replication-policies/${name}`, ok: [200] };
  },
  'POST /api/v1/bundles/:name/replication-policies/:policy/enable': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}/enable`, ok: [200] }),
  'POST /api/v1/bundles/:name/replication-policies/:policy/disable': async (fx) => {
    const name = fx.unique('policy');
    await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies`, { name, destinations: [(await replicationFixture(fx)).edge] });
    return { path: `/api/v1/bundles/${fx.shared}/replication-policies/${name}/disable`, ok: [200] };
  },
  'POST /api/v1/bundles/:name/replication-policies/:policy/runs': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}/runs`, json: { version: '1.0.0' }, ok: [202] }),
  'GET /api/v1/bundles/:name/replication-runs': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-runs`, ok: [200] }),
  'POST /api/v1/bundles/:name/replication-runs/:run/cancel': async (fx) => {
    // A run to an edge stays running until the edge fetches: a fresh one to cancel.
    const run = await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}/runs`, { version: '1.0.0' });
    return { path: `/api/v1/bundles/${fx.shared}/replication-runs/${run.run.id}/cancel`, ok: [200] };
  },
  'POST /api/v1/bundles/:name/replication-runs/:run/retry': async (fx) => {
    const run = await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies/${(await replicationFixture(fx)).policy}/runs`, { version: '1.0.0' });
    await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-runs/${run.run.id}/cancel`);
    return { path: `/api/v1/bundles/${fx.shared}/replication-runs/${run.run.id}/retry`, ok: [202] };
  },
  'GET /api/v1/bundles/:name/replication-runs/:run': async (fx) => ({ path: `/api/v1/bundles/${fx.shared}/replication-runs/${(await replicationFixture(fx)).run}`, ok: [200] }),
};

const replicationFixtures = new WeakMap<TestServer, Promise<{ edge: string; registry: string; policy: string; run: number }>>();
/** An edge, a registry endpoint, a policy on the shared bundle and one run of it, made once per server. */
function replicationFixture(fx: Fixture): Promise<{ edge: string; registry: string; policy: string; run: number }> {
  let made = replicationFixtures.get(fx.server);
  if (!made) {
    made = (async () => {
      await expectOk(fx.server, 'POST', '/api/v1/edges', { name: 'mx-edge' });
      await expectOk(fx.server, 'POST', '/api/v1/registries', { name: 'mx-registry', url: 'http://127.0.0.1:9' });
      await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies`, { name: 'mx-policy', destinations: ['mx-edge'] });
      const run = await expectOk(fx.server, 'POST', `/api/v1/bundles/${fx.shared}/replication-policies/mx-policy/runs`, { version: '1.0.0' });
      return { edge: 'mx-edge', registry: 'mx-registry', policy: 'mx-policy', run: run.run.id as number };
    })();
    replicationFixtures.set(fx.server, made);
  }
  return made;
}

async function expectOk(server: TestServer, method: string, path: string, json?: unknown, token?: string): Promise<any> {
  const res = await server.api(method, path, { ...(json === undefined ? {} : { json }), ...(token ? { token } : {}) });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
  return res.body;
}

const keyOf = (route: Route) => `${route.method} ${route.path}`;

/** The caller as the policy sees them: each role user holds that role on every fixture bundle. */
function modelOf(who: Who): Caller {
  if (who === 'device') return { type: 'device', deviceId: 'd', group: 'g1' };
  if (who === 'edge') return { type: 'edge', edge: 'matrix-edge' };
  if (who === 'admin') return memberOf(undefined, true);
  return memberOf(who === 'outsider' ? undefined : who);
}

function expectedAllowed(who: Who, route: Route): boolean {
  return isAllowed(modelOf(who), route.action, route.resource ? { bundle: 'b', group: 'g1' } : undefined);
}

/**
 * The status of a denial: 404 for a user who may not see the request's row (a deployment of
 * bundle b, a device, both in g1) by the read model; 403 otherwise, and to devices and edges,
 * whose refusal does not depend on the row (mayHoldSomewhere).
 */
function denialOf(who: Who, route: Route, row: Request['row']): number {
  const model = modelOf(who);
  if (row === undefined || model.type !== 'user' || !mayHoldSomewhere(model, route.action)) return 403;
  const sees = row === 'deployment' ? mayReadDeployment(model, { bundle: 'b', group: 'g1' }) : inScope(deviceReadScope(model), { bundles: [], groups: ['g1'] });
  return sees ? 403 : 404;
}

async function setUp(server: TestServer) {
  const tokens = new Map<string, string>();
  for (const name of ['outsider', ...roles, 'extra']) {
    await expectOk(server, 'POST', '/api/v1/users', { name });
    tokens.set(name, (await expectOk(server, 'POST', '/api/v1/tokens', { name: 'all scopes', scopes: [...scopes], user: name })).token);
  }
  const registered = await expectOk(server, 'POST', '/api/v1/devices', { id: 'matrix-device', group: 'g1' });
  tokens.set('device', registered.token);
  // Device groups are owned like bundles: each role user holds their role on g1 too.
  for (const role of roles) await expectOk(server, 'POST', '/api/v1/groups/g1/members', { user: role, role });
  tokens.set('admin', (await expectOk(server, 'POST', '/api/v1/tokens', { name: 'all scopes', scopes: [...scopes] })).token);

  let n = 0;
  const unique = (prefix: string) => `${prefix}-${++n}`;
  async function fresh(state: 'empty' | 'draft' | 'artifact' | 'approved' = 'empty'): Promise<string> {
    const name = unique('b');
    await expectOk(server, 'POST', '/api/v1/bundles', { name });
    for (const role of roles) await expectOk(server, 'POST', `/api/v1/bundles/${name}/members`, { user: role, role });
    if (state === 'draft') await expectOk(server, 'POST', `/api/v1/bundles/${name}/versions`, { version: '1.0.0' });
    if (state === 'artifact' || state === 'approved') await pushArtifact(server, name, '1.0.0', 'a.txt', Buffer.from('hello\n'));
    if (state === 'approved') await expectOk(server, 'POST', `/api/v1/bundles/${name}/versions/1.0.0/approve`);
    return name;
  }
  const shared = await fresh('approved');
  // An edge whose (pending) tasks name the shared bundle's content, as a replication run plans them.
  const edge = await expectOk(server, 'POST', '/api/v1/edges', { name: 'matrix-edge' });
  tokens.set('edge', edge.token);
  await expectOk(server, 'POST', `/api/v1/bundles/${shared}/replication-policies`, { name: 'matrix-edge', destinations: ['matrix-edge'], mode: 'pull' });
  await expectOk(server, 'POST', `/api/v1/bundles/${shared}/replication-policies/matrix-edge/runs`, { version: '1.0.0' });
  // Devices read only the bundles deployed to their group (the read model per bundle).
  await expectOk(server, 'POST', '/api/v1/deployments', { bundle: shared, version: '1.0.0', group: 'g1' });
  const deployment = async () => (await expectOk(server, 'POST', '/api/v1/deployments', { bundle: await fresh('approved'), version: '1.0.0', group: 'g1' })).id as number;
  const device = async () => (await expectOk(server, 'POST', '/api/v1/devices', { id: unique('dev'), group: 'g1' })).device.id as string;
  const group = async () => {
    const name = unique('grp');
    await expectOk(server, 'POST', '/api/v1/groups', { name });
    for (const role of roles) await expectOk(server, 'POST', `/api/v1/groups/${name}/members`, { user: role, role });
    return name;
  };
  return { tokens, edgeToken: edge.token as string, deviceToken: registered.token as string, unique, fresh, shared, sharedBlob: sha256Digest(Buffer.from('hello\n')), deployment, device, group };
}

test('every route, every role: allowed → success, denied → 403, missing scope → 403, bad token → 401', async (t) => {
  await withServer(t, async (server) => {
    const setup = await setUp(server);
    const { tokens } = setup;
    const fixtureFor = (actor: string): Fixture => ({ server, edgeToken: setup.edgeToken, deviceToken: setup.deviceToken, shared: setup.shared, sharedBlob: setup.sharedBlob, fresh: setup.fresh, unique: setup.unique, actor, deployment: setup.deployment, device: setup.device, group: setup.group });

    const uncovered = server.routes.filter((r) => !cases[keyOf(r)]).map(keyOf);
    t.deepEqual(uncovered, [], 'every declared route has a case in this matrix');
    // Anonymous routes answer without a token; the matrix is about the routes that need one.
    for (const route of server.routes.filter((r) => r.anonymous)) {
      const req = { method: route.method, ...(await cases[keyOf(route)]!(fixtureFor('outsider'))) };
      const res = await server.api(req.method, req.path, { token: null, ...(req.json !== undefined ? { json: req.json } : {}) });
      t.true(req.ok.includes(res.status), `${keyOf(route)} without a token answered ${res.status}`);
    }
    const guarded = server.routes.filter((r) => !r.anonymous);

    // Tokens lacking exactly one scope, for the owner and for the admin.
    const narrow = new Map<string, string>();
    for (const who of ['owner', 'admin'] as const) {
      for (const missing of scopes) {
        const kept = scopes.filter((s) => s !== missing);
        const created = await expectOk(server, 'POST', '/api/v1/tokens', { name: `without ${missing}`, scopes: kept, ...(who === 'admin' ? {} : { user: who }) });
        narrow.set(`${who}/${missing}`, created.token);
      }
    }
    // An expired token and a revoked one, of a user who could otherwise do a lot.
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const expiring = await expectOk(server, 'POST', '/api/v1/tokens', { name: 'expiring', scopes: [...scopes], user: 'owner', expiresAt });
    const revoked = await expectOk(server, 'POST', '/api/v1/tokens', { name: 'revoked', scopes: [...scopes], user: 'owner' });
    await expectOk(server, 'DELETE', `/api/v1/tokens/${revoked.info.id}`);

    const wrong: string[] = [];
    let checked = 0;
    const send = async (req: Request, token: string | null) =>
      server.api(req.method ?? 'GET', req.path, { token, ...(req.json !== undefined ? { json: req.json } : {}), ...(req.body ? { body: req.body } : {}), ...(req.headers ? { headers: req.headers } : {}) });

    for (const route of guarded) {
      const make = cases[keyOf(route)];
      if (!make) continue;
      const rule = ruleOf(route.action);
      for (const who of everyone) {
        const req = { method: route.method, ...(await make(fixtureFor(who))) };
        const res = await send(req, tokens.get(who)!);
        await req.after?.();
        const allowed = expectedAllowed(who, route);
        const denial = denialOf(who, route, req.row);
        checked++;
        if (allowed ? !req.ok.includes(res.status) : res.status !== denial) {
          wrong.push(`${keyOf(route)} (${route.action}) as ${who}: expected ${allowed ? req.ok.join('/') : denial}, got ${res.status} ${res.raw.toString('utf8').slice(0, 160)}`);
        }
      }
      for (const who of ['owner', 'admin'] as const) {
        const req = { method: route.method, ...(await make(fixtureFor(who))) };
        const res = await send(req, narrow.get(`${who}/${rule.scope as Scope}`)!);
        checked++;
        if (res.status !== 403) wrong.push(`${keyOf(route)} as ${who} without the "${rule.scope}" scope: expected 403, got ${res.status}`);
      }
    }

    await waitFor('the expiring token to expire', () => (Date.now() > Date.parse(expiresAt) + 50 ? true : undefined));
    for (const route of guarded) {
      const make = cases[keyOf(route)];
      if (!make) continue;
      const req = { method: route.method, ...(await make(fixtureFor('owner'))) };
      for (const [label, token] of [['no token', null], ['an expired token', expiring.token], ['a revoked token', revoked.token]] as const) {
        const res = await send(req, token);
        checked++;
        if (res.status !== 401) wrong.push(`${keyOf(route)} with ${label}: expected 401, got ${res.status}`);
        else if (route.method !== 'HEAD' && res.body?.error?.code !== 'unauthenticated') wrong.push(`${keyOf(route)} with ${label}: 401 without the unauthenticated error code`);
      }
    }
    t.deepEqual(wrong, [], `${wrong.length} of ${checked} checks went wrong`);
    t.log(`${checked} checks over ${guarded.length} routes`);
  });
});

test('the ladder as the issue tells it: a reporter cannot approve, a maintainer can; a developer edits drafts only', async (t) => {
  await withServer(t, async (server) => {
    const { tokens, fresh } = await setUp(server);
    const bundle = await fresh('artifact');
    const as = (who: string) => ({ token: tokens.get(who)! });
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/versions/1.0.0/approve`, as('reporter'))).status, 403);
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/versions/1.0.0/approve`, as('developer'))).status, 403);
    const approved = await server.api('POST', `/api/v1/bundles/${bundle}/versions/1.0.0/approve`, as('maintainer'));
    t.is(approved.status, 200);
    t.is(approved.body.status, 'approved');
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/versions`, { ...as('developer'), json: { version: '1.1.0' } })).status, 201);
    t.is((await server.api('DELETE', `/api/v1/bundles/${bundle}`, as('maintainer'))).status, 403, 'deleting a bundle is for owners');

    // A maintainer manages members up to maintainer, never the owner role.
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/members`, { ...as('maintainer'), json: { user: 'extra', role: 'maintainer' } })).status, 201);
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/members`, { ...as('maintainer'), json: { user: 'extra', role: 'owner' } })).status, 403);
    t.is((await server.api('DELETE', `/api/v1/bundles/${bundle}/members/owner`, as('maintainer'))).status, 403);
    t.is((await server.api('POST', `/api/v1/bundles/${bundle}/members`, { ...as('owner'), json: { user: 'extra', role: 'owner' } })).status, 200);

    // Listing shows only the bundles one belongs to.
    const outsiderList = await server.api('GET', '/api/v1/bundles', as('outsider'));
    t.deepEqual(outsiderList.body, []);
    const guestList = await server.api('GET', '/api/v1/bundles', as('guest'));
    t.true(guestList.body.some((b: { name: string }) => b.name === bundle));
  });
});

test('admins create bundles and become their owner; the last owner cannot be removed', async (t) => {
  await withServer(t, async (server) => {
    await expectOk(server, 'POST', '/api/v1/users', { name: 'lead' });
    const lead = (await expectOk(server, 'POST', '/api/v1/tokens', { name: 'lead', scopes: ['read', 'write'], user: 'lead' })).token;
    t.is((await server.api('POST', '/api/v1/bundles', { token: lead, json: { name: 'team-app' } })).status, 403, 'bundles are created by admins');
    await expectOk(server, 'POST', '/api/v1/bundles', { name: 'team-app' });
    const initial = await server.api('GET', '/api/v1/bundles/team-app/members');
    t.deepEqual(initial.body.map((m: { user: string; role: string }) => `${m.user}:${m.role}`), ['admin:owner'], 'the creator is its owner');
    await expectOk(server, 'POST', '/api/v1/bundles/team-app/members', { user: 'lead', role: 'owner' });
    t.is((await server.api('DELETE', '/api/v1/bundles/team-app/members/admin')).status, 204, 'with two owners, one may go');
    // Now lead is the only owner.
    const removed = await server.api('DELETE', '/api/v1/bundles/team-app/members/lead', { token: lead });
    t.is(removed.status, 403);
    t.regex(removed.body.error.message, /last owner/);
  });
});
