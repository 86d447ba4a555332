import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'ava';
import { silentLogger } from '../../protocol/log.ts';
import { bundleRoleName, manifestTargetPath } from '../../protocol/targets.ts';
import { AuthorizedFetcher, openTrustClient, type TrustClient } from '../../tuf/client.ts';
import { TrustError } from '../../tuf/errors.ts';
import { signingKeyFromPem } from '../../tuf/keys.ts';
import { signProposal } from '../../cli/sign.ts';
import { publishTargets } from '../../tuf/repository.ts';
import { tufMetadataFiles } from '../../server/replication/metadata.ts';
import { convoy } from '../helpers/cli.ts';
import { adminToken, makeTempDir, pushArtifact, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Issue #14 item 8, per-bundle TUF roles: top-level targets.json delegates each bundle's paths to
 * the role `bundle-<name>`, whose file is served only to who may read the bundle; devices follow
 * the delegation through tuf-js; an approval re-signs its bundle's role only; a repository of the
 * earlier flat layout migrates without breaking a device that trusted it.
 */

async function ok(server: TestServer, method: string, urlPath: string, json?: unknown): Promise<any> {
  const answer = await server.api(method, urlPath, json === undefined ? {} : { json });
  if (answer.status >= 300) throw new Error(`${method} ${urlPath} answered ${answer.status}: ${answer.raw}`);
  return answer.body;
}

async function release(server: TestServer, bundle: string, version: string): Promise<void> {
  await pushArtifact(server, bundle, version, 'app.bin', randomBytes(48));
  await ok(server, 'POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`);
}

/** Every metadata file a token can read by walking from timestamp.json, as a client would. */
async function readableMetadata(server: TestServer, token: string): Promise<Map<string, { status: number; raw: string; json: any }>> {
  const files = new Map<string, { status: number; raw: string; json: any }>();
  const get = async (name: string) => {
    const answer = await server.api('GET', `/tuf/${name}`, { token });
    const entry = { status: answer.status, raw: answer.raw.toString('utf8'), json: answer.status === 200 ? JSON.parse(answer.raw.toString('utf8')) : undefined };
    files.set(name, entry);
    return entry;
  };
  await get('root.json');
  const timestamp = await get('timestamp.json');
  const snapshot = await get(`${timestamp.json.signed.meta['snapshot.json'].version}.snapshot.json`);
  for (const [file, meta] of Object.entries(snapshot.json.signed.meta as Record<string, { version: number }>)) await get(`${meta.version}.${file}`);
  return files;
}

async function snapshotMeta(server: TestServer): Promise<Record<string, number>> {
  const timestamp = await ok(server, 'GET', '/tuf/timestamp.json');
  const snapshot = await ok(server, 'GET', `/tuf/${timestamp.signed.meta['snapshot.json'].version}.snapshot.json`);
  return Object.fromEntries(Object.entries(snapshot.signed.meta as Record<string, { version: number }>).map(([file, meta]) => [file, meta.version]));
}

async function trustClient(t: { teardown(fn: () => Promise<void>): void }, server: TestServer | { url: string }, token: string, options: { dir?: string; fetcher?: AuthorizedFetcher } = {}): Promise<{ client: TrustClient; dir: string }> {
  const dir = options.dir ?? (await makeTempDir('convoy-delegations-'));
  if (!options.dir) t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const pinned = path.join(dir, 'pinned-root.json');
  if (!options.dir) await fs.writeFile(pinned, await fs.readFile(path.join((server as TestServer).dataDir, 'tuf', '1.root.json')));
  const client = await openTrustClient({ metadataDir: path.join(dir, 'metadata'), goodDir: path.join(dir, 'good'), pinnedRootFile: pinned, serverUrl: server.url, token, timeoutMs: 5_000, log: silentLogger, ...(options.fetcher ? { fetcher: options.fetcher } : {}) });
  return { client, dir };
}

async function twoBundles(server: TestServer) {
  for (const name of ['alpha', 'beta']) await ok(server, 'POST', '/api/v1/bundles', { name });
  await release(server, 'alpha', '1.0.0');
  await release(server, 'beta', '1.0.0');
  await ok(server, 'POST', '/api/v1/deployments', { bundle: 'alpha', version: '1.0.0', group: 'alpha-fleet', force: true });
  await ok(server, 'POST', '/api/v1/deployments', { bundle: 'beta', version: '1.0.0', group: 'beta-fleet', force: true });
  await ok(server, 'POST', '/api/v1/users', { name: 'beta-reporter' });
  await ok(server, 'POST', '/api/v1/bundles/beta/members', { user: 'beta-reporter', role: 'reporter' });
  const betaReporter = (await ok(server, 'POST', '/api/v1/tokens', { name: 'read', scopes: ['read'], user: 'beta-reporter' })).token as string;
  const betaDevice = (await ok(server, 'POST', '/api/v1/devices', { id: 'beta-device-1', group: 'beta-fleet' })).token as string;
  const alphaDevice = (await ok(server, 'POST', '/api/v1/devices', { id: 'alpha-device-1', group: 'alpha-fleet' })).token as string;
  return { betaReporter, betaDevice, alphaDevice };
}

test("top-level targets names only delegations; a reporter of beta gets 404 for alpha's role and finds alpha's targets nowhere it can read", async (t) => {
  await withServer(t, async (server) => {
    const { betaReporter } = await twoBundles(server);
    const meta = await snapshotMeta(server);
    const alphaRole = `${meta[`${bundleRoleName('alpha')}.json`]}.${bundleRoleName('alpha')}.json`;
    const top = await ok(server, 'GET', `/tuf/${meta['targets.json']}.targets.json`);
    t.deepEqual(top.signed.targets, {}, 'targets.json lists no target itself');
    t.deepEqual(top.signed.delegations.roles.map((r: { name: string; terminating: boolean; paths: string[] }) => [r.name, r.terminating, r.paths]), [
      ['bundle-alpha', true, ['alpha/*/manifest.json', 'alpha/*/artifacts/*']],
      ['bundle-beta', true, ['beta/*/manifest.json', 'beta/*/artifacts/*']],
    ]);

    const refused = await server.api('GET', `/tuf/${alphaRole}`, { token: betaReporter });
    t.is(refused.status, 404);
    t.is(refused.body.error.code, (await server.api('GET', '/tuf/99.bundle-nothing.json', { token: betaReporter })).body.error.code, 'the same answer as a role that does not exist');
    t.is((await server.api('GET', `/tuf/${alphaRole}`)).status, 200, 'an admin reads it');

    const readable = await readableMetadata(server, betaReporter);
    t.is(readable.get(alphaRole)?.status, 404);
    const betaRole = readable.get(`${meta[`${bundleRoleName('beta')}.json`]}.${bundleRoleName('beta')}.json`);
    t.is(betaRole?.status, 200);
    t.truthy(betaRole?.json.signed.targets['beta/1.0.0/manifest.json'], "beta's own role lists its targets");
    const alphaTargets = Object.entries((await ok(server, 'GET', `/tuf/${alphaRole}`)).signed.targets as Record<string, { hashes: { sha256: string } }>);
    t.true(alphaTargets.length > 0);
    for (const [name, entry] of readable) {
      if (entry.status !== 200) continue;
      for (const [targetPath, info] of alphaTargets) {
        t.false(entry.raw.includes(targetPath), `${name} names ${targetPath}`);
        t.false(entry.raw.includes(info.hashes.sha256), `${name} holds the hash of ${targetPath}`);
      }
    }
  });
});

test("a device deployed only beta cannot fetch alpha's role, and its TUF client finds beta's targets but not alpha's", async (t) => {
  await withServer(t, async (server) => {
    const { betaDevice } = await twoBundles(server);
    const meta = await snapshotMeta(server);
    t.is((await server.api('GET', `/tuf/${meta['bundle-alpha.json']}.bundle-alpha.json`, { token: betaDevice })).status, 404);
    t.is((await server.api('GET', `/tuf/${meta['bundle-beta.json']}.bundle-beta.json`, { token: betaDevice })).status, 200);
    const { client } = await trustClient(t, server, betaDevice);
    await client.refresh();
    t.truthy(await client.targetInfo(manifestTargetPath('beta', '1.0.0')));
    const error = await t.throwsAsync(client.targetInfo(manifestTargetPath('alpha', '1.0.0')), { instanceOf: TrustError });
    t.is(error?.code, 'untrusted_metadata', 'a 404 on the role of a bundle it may not read');
    // Once alpha is deployed to its group too, the same device follows the delegation to alpha.
    await ok(server, 'POST', '/api/v1/deployments', { bundle: 'alpha', version: '1.0.0', group: 'beta-fleet' });
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.0.0')));
  });
});

test("approving a version re-signs only its bundle's role (and snapshot, timestamp); targets.json only when a bundle is added or drops out", async (t) => {
  await withServer(t, async (server) => {
    await twoBundles(server);
    const before = await snapshotMeta(server);
    await release(server, 'alpha', '1.1.0');
    const after = await snapshotMeta(server);
    t.is(after['bundle-alpha.json'], before['bundle-alpha.json']! + 1);
    t.is(after['bundle-beta.json'], before['bundle-beta.json']);
    t.is(after['targets.json'], before['targets.json'], 'same delegations: targets.json untouched');

    await ok(server, 'POST', '/api/v1/bundles', { name: 'gamma' });
    await release(server, 'gamma', '1.0.0');
    const added = await snapshotMeta(server);
    t.is(added['targets.json'], before['targets.json']! + 1, 'a new delegation re-signs targets.json');
    t.is(added['bundle-gamma.json'], 1);

    // Revoking gamma's only version drops its delegation; its emptied role stays in the snapshot,
    // since a client refuses a snapshot that leaves out a file its trusted one listed (§5.5.5).
    await ok(server, 'POST', '/api/v1/bundles/gamma/versions/1.0.0/revoke', { reason: 'bad build' });
    const revoked = await snapshotMeta(server);
    t.is(revoked['targets.json'], added['targets.json']! + 1);
    t.is(revoked['bundle-gamma.json'], 2);
    const top = await ok(server, 'GET', `/tuf/${revoked['targets.json']}.targets.json`);
    t.deepEqual(top.signed.delegations.roles.map((r: { name: string }) => r.name), ['bundle-alpha', 'bundle-beta']);
    t.deepEqual((await ok(server, 'GET', '/tuf/2.bundle-gamma.json')).signed.targets, {});

    // A device that trusted gamma's role keeps verifying the repository.
    const { client } = await trustClient(t, server, adminToken);
    await client.refresh();
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.1.0')));
    t.is(await client.targetInfo(manifestTargetPath('gamma', '1.0.0')), undefined, 'revoked: no longer signed');
  });
});

/** The real fetcher, with one metadata file replaced by what `swap` makes of it. */
class SwappingFetcher extends AuthorizedFetcher {
  swap: ((name: string, bytes: Buffer) => Promise<Buffer> | Buffer) | undefined;
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const honest = await super.fetch(url);
    const swap = this.swap;
    if (!swap) return honest;
    const bytes = Buffer.from(await new Response(honest).arrayBuffer());
    return new Blob([await swap(path.posix.basename(new URL(url).pathname), bytes)]).stream() as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

test("a tampered bundle role is refused as bad_signature, a replayed older one as rollback", async (t) => {
  await withServer(t, async (server) => {
    const { alphaDevice } = await twoBundles(server);
    const fetcher = new SwappingFetcher(alphaDevice, 5_000);
    const { client } = await trustClient(t, server, alphaDevice, { fetcher });
    await client.refresh();
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.0.0')));

    // A byte of alpha's next role changed in transit: its signature no longer verifies (§5.6.3).
    await release(server, 'alpha', '1.1.0');
    fetcher.swap = (name, bytes) => {
      if (!name.endsWith('.bundle-alpha.json')) return bytes;
      const json = JSON.parse(bytes.toString('utf8'));
      json.signed.targets['alpha/1.1.0/manifest.json'].length += 1;
      return Buffer.from(JSON.stringify(json));
    };
    await client.refresh();
    const forged = await t.throwsAsync(client.targetInfo(manifestTargetPath('alpha', '1.1.0')), { instanceOf: TrustError });
    t.is(forged?.code, 'bad_signature', forged?.message);
    t.false(forged?.transient);

    // The honest role is accepted; then an older, validly signed version is replayed (§5.6.4).
    fetcher.swap = undefined;
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.1.0')));
    const old = (await server.api('GET', '/tuf/1.bundle-alpha.json')).raw;
    await release(server, 'alpha', '1.2.0');
    fetcher.swap = (name, bytes) => (name.endsWith('.bundle-alpha.json') ? old : bytes);
    await client.refresh();
    const replayed = await t.throwsAsync(client.targetInfo(manifestTargetPath('alpha', '1.2.0')), { instanceOf: TrustError });
    t.is(replayed?.code, 'rollback', replayed?.message);
    fetcher.swap = undefined;
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.2.0')));
  });
});

/** Rewrites the server's metadata as the flat layout (one targets.json listing every target, same keys). */
async function rewriteAsFlat(server: TestServer): Promise<string> {
  const tufDir = path.join(server.dataDir, 'tuf');
  const meta = await snapshotMeta(server);
  const targets = [];
  for (const [file, version] of Object.entries(meta)) {
    if (!file.startsWith('bundle-')) continue;
    const role = await ok(server, 'GET', `/tuf/${version}.${file}`);
    for (const [targetPath, info] of Object.entries(role.signed.targets as Record<string, { length: number; hashes: { sha256: string } }>)) targets.push({ path: targetPath, length: info.length, sha256: info.hashes.sha256 });
  }
  for (const file of await fs.readdir(tufDir)) if (!file.endsWith('root.json')) await fs.rm(path.join(tufDir, file));
  const key = async (role: string) => signingKeyFromPem(await fs.readFile(path.join(server.dataDir, 'keys', `${role}.pem`), 'utf8'));
  const flat = publishTargets({ keys: { targets: [await key('targets')], snapshot: [await key('snapshot')], timestamp: [await key('timestamp')] }, previous: { targets: 0, snapshot: 0, timestamp: 0 }, targets, now: new Date() });
  await fs.writeFile(path.join(tufDir, '1.targets.json'), flat.targets);
  await fs.writeFile(path.join(tufDir, '1.snapshot.json'), flat.snapshot);
  await fs.writeFile(path.join(tufDir, 'timestamp.json'), flat.timestamp);
  return tufDir;
}

test('offline targets: a flat repository migrates with the next proposal, which carries targets.json and every bundle role; convoy bundle sign signs them all', async (t) => {
  await withServer(t, async (server) => {
    for (const name of ['alpha', 'beta']) await ok(server, 'POST', '/api/v1/bundles', { name });
    await release(server, 'alpha', '1.0.0');
    await release(server, 'beta', '1.0.0');
    await rewriteAsFlat(server);
    // The approvers take the targets key away: the server now signs targets offline only.
    const keyDir = await makeTempDir('convoy-approver-');
    t.teardown(() => fs.rm(keyDir, { recursive: true, force: true }));
    await fs.rename(path.join(server.dataDir, 'keys', 'targets.pem'), path.join(keyDir, 'targets.pem'));
    await server.restart();
    t.is((await ok(server, 'GET', '/api/v1/trust')).targetsSigning, 'offline');
    t.deepEqual(Object.keys(await snapshotMeta(server)), ['targets.json'], 'the server cannot migrate by itself');
    const { client } = await trustClient(t, server, adminToken);
    await client.refresh();
    t.truthy(await client.targetInfo(manifestTargetPath('beta', '1.0.0')));

    // Beta's revocation waits for beta's approvers: alpha's approvers are never asked to sign it.
    await ok(server, 'POST', '/api/v1/bundles/beta/versions/1.0.0/revoke', { reason: 'bad build' });
    await pushArtifact(server, 'alpha', '1.1.0', 'app.bin', randomBytes(48));
    const proposal = await ok(server, 'GET', '/api/v1/bundles/alpha/versions/1.1.0/signing');
    t.is(proposal.role, 'bundle-alpha');
    t.deepEqual(proposal.also.map((d: { role: string }) => d.role).sort(), ['bundle-beta', 'targets']);
    t.deepEqual(proposal.added.sort(), ['alpha/1.1.0/artifacts/app.bin', 'alpha/1.1.0/manifest.json']);
    t.deepEqual(proposal.removed, []);
    // A signature over the bundle's role alone does not publish a change that needs the others.
    const key = signingKeyFromPem(await fs.readFile(path.join(keyDir, 'targets.pem'), 'utf8'));
    const partial = await server.api('POST', '/api/v1/bundles/alpha/versions/1.1.0/signatures', { json: { proposalId: proposal.proposalId, keyid: key.keyId, sig: signProposal(proposal.signed, key).sig } });
    t.is(partial.status, 400);
    t.regex(partial.body.error.message, /signature over (targets|bundle-beta) is missing/);

    const signed = await convoy(server.url, ['bundle', 'sign', 'alpha@1.1.0', '--key', path.join(keyDir, 'targets.pem')]);
    t.is(signed.code, 0, signed.stderr);
    t.regex(signed.stderr, /targets version 2 delegates to bundle-alpha, bundle-beta/);
    t.regex(signed.stdout, /1 of 1 signatures, published/);
    const meta = await snapshotMeta(server);
    t.deepEqual(meta, { 'targets.json': 2, 'bundle-alpha.json': 1, 'bundle-beta.json': 1 });
    await client.refresh();
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.1.0')), 'the device that trusted the flat layout follows the delegation');
    t.truthy(await client.targetInfo(manifestTargetPath('beta', '1.0.0')), "beta's targets carried over into its role");

    const betaProposal = await ok(server, 'GET', '/api/v1/bundles/beta/versions/1.0.0/signing');
    t.deepEqual(betaProposal.also.map((d: { role: string }) => d.role), ['targets'], 'beta drops out of the delegations');
    t.deepEqual(betaProposal.removed.sort(), ['beta/1.0.0/artifacts/app.bin', 'beta/1.0.0/manifest.json']);
    const betaSigned = await convoy(server.url, ['bundle', 'sign', 'beta@1.0.0', '--key', path.join(keyDir, 'targets.pem')]);
    t.is(betaSigned.code, 0, betaSigned.stderr);
    t.regex(betaSigned.stderr, /targets version 3 delegates to bundle-alpha\n/);
    await client.refresh();
    t.is(await client.targetInfo(manifestTargetPath('beta', '1.0.0')), undefined);
    t.truthy(await client.targetInfo(manifestTargetPath('alpha', '1.1.0')));
  });
});

/** Serves a directory of metadata files over HTTP, as a server of the flat layout did. */
async function serveDirectory(t: { teardown(fn: () => Promise<void>): void }, dir: string): Promise<string> {
  const server = http.createServer((req, res) => {
    fs.readFile(path.join(dir, path.posix.basename(new URL(req.url ?? '/', 'http://x').pathname))).then(
      (bytes) => res.writeHead(200, { 'content-type': 'application/json' }).end(bytes),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('a repository of the flat layout migrates at start, and a device that trusted it accepts the delegated metadata', async (t) => {
  await withServer(t, async (server) => {
    await ok(server, 'POST', '/api/v1/bundles', { name: 'alpha' });
    await release(server, 'alpha', '1.0.0');
    // The data dir as a server before bundle roles left it: one targets.json listing every target,
    // signed with the same keys; the device pinned to the same root 1 installed from it.
    const tufDir = await rewriteAsFlat(server);
    const flatUrl = await serveDirectory(t, tufDir);
    const { client: before, dir } = await trustClient(t, { ...server, url: flatUrl, dataDir: server.dataDir } as TestServer, 'unused');
    await before.refresh();
    t.truthy(await before.targetInfo(manifestTargetPath('alpha', '1.0.0')), 'the device verified alpha 1.0.0 under the flat layout');
    t.truthy(JSON.parse(await fs.readFile(path.join(dir, 'metadata', 'targets.json'), 'utf8')).signed.targets['alpha/1.0.0/manifest.json'], 'it holds the flat targets.json');

    // An upgraded server migrates at start; then a new version is approved.
    await server.restart();
    const migrated = await snapshotMeta(server);
    t.is(migrated['targets.json'], 2);
    t.is(migrated['bundle-alpha.json'], 1);
    await release(server, 'alpha', '1.1.0');
    const { client: after } = await trustClient(t, server, adminToken, { dir });
    await after.refresh();
    t.truthy(await after.targetInfo(manifestTargetPath('alpha', '1.1.0')), 'the same device verifies the new version through the delegation');
    t.truthy(await after.targetInfo(manifestTargetPath('alpha', '1.0.0')));
    const held = JSON.parse(await fs.readFile(path.join(dir, 'metadata', 'targets.json'), 'utf8'));
    t.deepEqual(held.signed.targets, {});
    t.deepEqual(held.signed.delegations.roles.map((r: { name: string }) => r.name), ['bundle-alpha']);
  });
});

test("an edge's metadata list names the bundle roles the snapshot names: all of them, or one bundle's for its policy", async (t) => {
  await withServer(t, async (server) => {
    await twoBundles(server);
    await release(server, 'alpha', '1.1.0');
    const trust = {
      readMetadata: async (name: string) => {
        const answer = await server.api('GET', `/tuf/${name}`);
        return answer.status === 200 ? answer.raw : undefined;
      },
      currentRoot: () => ({ signed: { version: 1 } }),
    };
    const meta = await snapshotMeta(server);
    const names = (files: { name: string; size: number }[]) => files.map((f) => f.name);
    const all = await tufMetadataFiles(trust);
    t.is(names(all)[0], '1.root.json');
    t.deepEqual(names(all).slice(1), [
      `${(await ok(server, 'GET', '/tuf/timestamp.json')).signed.meta['snapshot.json'].version}.snapshot.json`,
      `${meta['targets.json']}.targets.json`,
      `${meta['bundle-alpha.json']}.bundle-alpha.json`,
      `${meta['bundle-beta.json']}.bundle-beta.json`,
      'timestamp.json',
    ]);
    t.true(all.every((f) => f.size > 0));
    t.deepEqual(names(await tufMetadataFiles(trust, 'beta')).filter((n) => n.includes('bundle-')), [`${meta['bundle-beta.json']}.bundle-beta.json`]);
  });
});
