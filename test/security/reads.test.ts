import { randomBytes } from 'node:crypto';
import test from 'ava';
import { hexOf } from '../../protocol/names.ts';
import { pushArtifact, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

/**
 * Issue #14 item 8, the read model per bundle: a blob, a TUF target file or a registry blob is
 * served only to who may read a bundle that holds it (devices: the bundles deployed to their
 * group). Anything else answers exactly as a digest never stored: 404, never 403.
 */

const scopes = ['read', 'write', 'approve', 'deploy', 'admin'];

async function ok(server: TestServer, method: string, path: string, json?: unknown): Promise<any> {
  const answer = await server.api(method, path, json === undefined ? {} : { json });
  if (answer.status >= 300) throw new Error(`${method} ${path} answered ${answer.status}: ${answer.raw}`);
  return answer.body;
}

async function userWith(server: TestServer, name: string, bundle: string, role: string): Promise<string> {
  await ok(server, 'POST', '/api/v1/users', { name });
  await ok(server, 'POST', `/api/v1/bundles/${bundle}/members`, { user: name, role });
  return (await ok(server, 'POST', '/api/v1/tokens', { name: 'all scopes', scopes, user: name })).token as string;
}

/** Two bundles, each with an approved 1.0.0 deployed to its own group; beta also has a draft 2.0.0 and a registry blob. */
async function setUp(server: TestServer) {
  for (const name of ['alpha', 'beta']) await ok(server, 'POST', '/api/v1/bundles', { name });
  const alphaBytes = randomBytes(64);
  const betaApproved = randomBytes(64);
  const betaDraft = randomBytes(64);
  const betaLayer = randomBytes(64);
  await pushArtifact(server, 'alpha', '1.0.0', 'app.bin', alphaBytes);
  const alphaManifest = (await ok(server, 'POST', '/api/v1/bundles/alpha/versions/1.0.0/approve')).manifestDigest as string;
  await pushArtifact(server, 'beta', '1.0.0', 'app.bin', betaApproved);
  const betaManifest = (await ok(server, 'POST', '/api/v1/bundles/beta/versions/1.0.0/approve')).manifestDigest as string;
  await pushArtifact(server, 'beta', '2.0.0', 'app.bin', betaDraft);
  // A layer pushed to beta's registry (linked to beta/web, named by no version yet).
  const pushed = await server.api('POST', `/v2/beta/web/blobs/uploads/?digest=${sha256Digest(betaLayer)}`, { body: betaLayer, headers: { 'content-type': 'application/octet-stream' } });
  if (pushed.status !== 201) throw new Error(`registry push answered ${pushed.status}: ${pushed.raw}`);
  await ok(server, 'POST', '/api/v1/deployments', { bundle: 'alpha', version: '1.0.0', group: 'alpha-fleet', force: true });
  await ok(server, 'POST', '/api/v1/deployments', { bundle: 'beta', version: '1.0.0', group: 'beta-fleet', force: true });
  const reporter = await userWith(server, 'alpha-reporter', 'alpha', 'reporter');
  const developer = await userWith(server, 'alpha-developer', 'alpha', 'developer');
  const betaReporter = await userWith(server, 'beta-reporter', 'beta', 'reporter');
  const device = (await ok(server, 'POST', '/api/v1/devices', { id: 'alpha-device-1', group: 'alpha-fleet' })).token as string;
  return {
    tokens: { reporter, developer, betaReporter, device },
    alpha: { blob: sha256Digest(alphaBytes), manifest: alphaManifest },
    beta: { approved: sha256Digest(betaApproved), approvedBytes: betaApproved, draft: sha256Digest(betaDraft), manifest: betaManifest, layer: sha256Digest(betaLayer) },
  };
}

test("a reporter of one bundle cannot read another bundle's blobs (draft, approved, manifest, registry layer): 404 as if never stored", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = (token: string) => ({ token });
    const unknown = sha256Digest(randomBytes(16));
    const refusal = await server.api('GET', `/api/v1/blobs/${unknown}`, as(fx.tokens.reporter));
    t.is(refusal.status, 404);
    for (const digest of [fx.beta.approved, fx.beta.draft, fx.beta.manifest, fx.beta.layer]) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await server.api(method, `/api/v1/blobs/${digest}`, as(fx.tokens.reporter));
        t.is(answer.status, 404, `${method} ${digest}`);
      }
      const answer = await server.api('GET', `/api/v1/blobs/${digest}`, as(fx.tokens.reporter));
      // The same error as for a digest never stored: existence is not confirmed.
      t.is(answer.body.error.code, refusal.body.error.code);
      // Beta's own reporter and an admin read them all.
      t.is((await server.api('GET', `/api/v1/blobs/${digest}`, as(fx.tokens.betaReporter))).status, 200, `beta reporter reads ${digest}`);
      t.is((await server.api('GET', `/api/v1/blobs/${digest}`)).status, 200, `admin reads ${digest}`);
    }
    // What alpha holds, alpha's reporter reads.
    for (const digest of [fx.alpha.blob, fx.alpha.manifest]) t.is((await server.api('GET', `/api/v1/blobs/${digest}`, as(fx.tokens.reporter))).status, 200);
  });
});

test("a reporter of one bundle cannot fetch another bundle's TUF target files", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.reporter };
    for (const target of ['beta/1.0.0/manifest.json', 'beta/1.0.0/artifacts/app.bin', `beta/1.0.0/artifacts/${hexOf(fx.beta.approved)}.app.bin`]) {
      t.is((await server.api('GET', `/tuf/targets/${target}`, as)).status, 404, target);
      t.is((await server.api('GET', `/tuf/targets/${target}`, { token: fx.tokens.betaReporter })).status, 200, `beta reporter: ${target}`);
    }
    t.is((await server.api('GET', '/tuf/targets/alpha/1.0.0/manifest.json', as)).status, 200);
    t.is((await server.api('GET', '/tuf/targets/alpha/1.0.0/artifacts/app.bin', as)).status, 200);
  });
});

test("the registry under /v2 serves a layer only through the bundle holding it, to that bundle's readers", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.reporter };
    // Through beta's repository: not a reader of beta (DENIED); through alpha's: not there.
    t.is((await server.api('GET', `/v2/beta/web/blobs/${fx.beta.layer}`, as)).status, 403);
    t.is((await server.api('GET', `/v2/alpha/web/blobs/${fx.beta.layer}`, as)).status, 404);
    t.is((await server.api('HEAD', `/v2/alpha/web/blobs/${fx.beta.layer}`, as)).status, 404);
    t.is((await server.api('GET', `/v2/beta/web/blobs/${fx.beta.layer}`, { token: fx.tokens.betaReporter })).status, 200);
  });
});

test("a developer cannot read another bundle's blob by naming its digest in a draft", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.developer };
    await ok(server, 'POST', '/api/v1/bundles/alpha/versions', { version: '2.0.0' });
    const named = await server.api('PUT', '/api/v1/bundles/alpha/versions/2.0.0/artifacts/stolen.bin', { ...as, json: { type: 'file', digest: fx.beta.approved, size: 64 } });
    t.is(named.status, 400);
    t.regex(named.body.error.message, /not in the store/);
    const many = await server.api('POST', '/api/v1/bundles/alpha/versions/2.0.0/artifacts', { ...as, json: { artifacts: [{ name: 'stolen.bin', type: 'file', digest: fx.beta.draft, size: 64 }] } });
    t.is(many.status, 400);
    t.is((await server.api('GET', `/api/v1/blobs/${fx.beta.approved}`, as)).status, 404);
    // Sending the bytes proves they are the caller's: through alpha's registry, the name then holds.
    const sent = await server.api('POST', `/v2/alpha/convoy-upload/blobs/uploads/?digest=${fx.beta.approved}`, { ...as, body: fx.beta.approvedBytes, headers: { 'content-type': 'application/octet-stream' } });
    t.is(sent.status, 201);
    t.is((await server.api('PUT', '/api/v1/bundles/alpha/versions/2.0.0/artifacts/own.bin', { ...as, json: { type: 'file', digest: fx.beta.approved, size: 64 } })).status, 201);
    // A fresh upload no bundle holds yet may be named, as every push does.
    const fresh = randomBytes(32);
    t.is((await server.api('PUT', `/api/v1/blobs/${sha256Digest(fresh)}`, { ...as, body: fresh, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
    t.is((await server.api('PUT', '/api/v1/bundles/alpha/versions/2.0.0/artifacts/fresh.bin', { ...as, json: { type: 'file', digest: sha256Digest(fresh), size: 32 } })).status, 201);
  });
});

test("a device reads only the bundles deployed to its group", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.device };
    for (const digest of [fx.alpha.blob, fx.alpha.manifest]) t.is((await server.api('GET', `/api/v1/blobs/${digest}`, as)).status, 200);
    for (const digest of [fx.beta.approved, fx.beta.draft, fx.beta.manifest, fx.beta.layer]) t.is((await server.api('GET', `/api/v1/blobs/${digest}`, as)).status, 404, digest);
    t.is((await server.api('GET', '/tuf/targets/alpha/1.0.0/artifacts/app.bin', as)).status, 200);
    t.is((await server.api('GET', '/tuf/targets/beta/1.0.0/artifacts/app.bin', as)).status, 404);
    // Once beta is deployed to the device's group, the device may read it.
    await ok(server, 'POST', '/api/v1/deployments', { bundle: 'beta', version: '1.0.0', group: 'alpha-fleet' });
    t.is((await server.api('GET', `/api/v1/blobs/${fx.beta.approved}`, as)).status, 200);
    t.is((await server.api('GET', '/tuf/targets/beta/1.0.0/artifacts/app.bin', as)).status, 200);
  });
});
