import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { Metadata, MetadataKind } from '@tufjs/models';
import { Updater } from 'tuf-js';
import { signerFor, signingKeyFromPem } from '../../tuf/keys.ts';
import { buildRoot, rolePolicyOf } from '../../tuf/repository.ts';
import { manifestTargetPath } from '../../protocol/targets.ts';
import { convoyBin, readCurrent, startDevice } from '../helpers/device.ts';
import { addUsers } from './users.ts';
import { adminToken, makeTempDir, pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';
import { convoy } from '../helpers/cli.ts';

const convoyAs = (url: string, token: string, args: string[]) => convoy(url, args, { token });

/*
 * The key ceremony and approvals as a user does them, through the real CLI: `convoy keys init`
 * offline, the server started on its server/ folder, 2-of-3 approvals in both modes, rotation,
 * revocation. A stock tuf-js client checks what devices would see after each step.
 */

/** What a device would see: a stock tuf-js client pinned to root version 1. */
async function signedTargets(server: TestServer, root1: Buffer): Promise<{ has(path: string): Promise<boolean>; rootVersion: number }> {
  const dir = await makeTempDir();
  await fs.writeFile(path.join(dir, 'root.json'), root1);
  const updater = new Updater({ metadataDir: dir, metadataBaseUrl: `${server.url}/tuf` });
  await updater.refresh();
  const rootVersion = JSON.parse(await fs.readFile(path.join(dir, 'root.json'), 'utf8')).signed.version;
  return { has: async (p) => (await updater.getTargetInfo(p)) !== undefined, rootVersion };
}

async function ceremonyDataDir(args: string[]): Promise<{ keysDir: string; dataDir: string; root1: Buffer }> {
  const keysDir = path.join(await makeTempDir('convoy-ceremony-'), 'keys');
  const init = await convoyAs('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'init', '--out', keysDir, ...args]);
  if (init.code !== 0) throw new Error(`keys init failed: ${init.stderr}`);
  const dataDir = await makeTempDir('convoy-data-');
  await fs.cp(path.join(keysDir, 'server'), dataDir, { recursive: true });
  return { keysDir, dataDir, root1: await fs.readFile(path.join(dataDir, 'tuf', '1.root.json')) };
}

test('offline root, 2-of-3 approvals signed by the server, rotation and revocation from the CLI', async (t) => {
  const { keysDir, dataDir, root1 } = await ceremonyDataDir(['--root-keys', '3', '--root-threshold', '2']);
  t.teardown(() => fs.rm(path.dirname(keysDir), { recursive: true, force: true }));
  t.deepEqual((await fs.readdir(path.join(keysDir, 'root-keys'))).sort(), ['root-1.pem', 'root-2.pem', 'root-3.pem']);
  t.deepEqual((await fs.readdir(path.join(dataDir, 'keys'))).sort(), ['snapshot.pem', 'targets.pem', 'timestamp.pem'], 'no root key goes to the server');
  t.is(((await fs.stat(path.join(keysDir, 'root-keys', 'root-1.pem'))).mode & 0o777), 0o600);
  await withServer(
    t,
    async (server) => {
      const status = JSON.parse((await convoyAs(server.url, adminToken, ['keys', 'status', '--json'])).stdout);
      t.like(status, { mode: 'offline-root', targetsSigning: 'server', rootVersion: 1, roles: { root: { threshold: 2, heldByServer: 0 } } });

      const users = await addUsers(server, ['alice', 'bob', 'carol'], dataDir);
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
      t.is((await convoyAs(server.url, adminToken, ['bundle', 'policy', 'pos-app', '--approvals', '2'])).code, 0);
      await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('release one\n'));

      const first = await convoyAs(server.url, users.alice!, ['bundle', 'approve', 'pos-app@1.0.0']);
      t.regex(first.stdout, /recorded your approval.*1 of 2 approvals: alice/);
      const again = await convoyAs(server.url, users.alice!, ['bundle', 'approve', 'pos-app@1.0.0']);
      t.is(again.code, 1);
      t.regex(again.stderr, /alice already approved .*another user must approve \(already_exists\)/);
      t.false(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')), 'one approval signs nothing');
      const second = await convoyAs(server.url, users.bob!, ['bundle', 'approve', 'pos-app@1.0.0']);
      t.regex(second.stdout, /approved pos-app@1\.0\.0 .*2 of 2 approvals: alice, bob/);
      t.true(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')));
      const shown = JSON.parse((await convoyAs(server.url, adminToken, ['bundle', 'approvals', 'pos-app@1.0.0', '--json'])).stdout);
      t.deepEqual(shown.approvals.by.map((a: { principal: string }) => a.principal), ['alice', 'bob']);
      t.true(shown.approvals.by.every((a: { at: string }) => !Number.isNaN(Date.parse(a.at))));

      // Rotation: one root key is below the threshold of 2; two make root version 2.
      const rootKey = (n: number) => path.join(keysDir, 'root-keys', `root-${n}.pem`);
      const weak = await convoyAs(server.url, adminToken, ['keys', 'rotate', '--role', 'timestamp', '--root-key', rootKey(1)]);
      t.is(weak.code, 1);
      t.regex(weak.stderr, /would not be trusted by devices/);
      const rotated = await convoyAs(server.url, adminToken, ['keys', 'rotate', '--role', 'timestamp', '--root-key', rootKey(1), '--root-key', rootKey(3)]);
      t.is(rotated.code, 0, rotated.stderr);
      t.regex(rotated.stdout, /root version \d+ is live/);
      const newRootDir = path.join(keysDir, 'root-keys-v3');
      const rootRotated = await convoyAs(server.url, adminToken, ['keys', 'rotate', '--role', 'root', '--root-key', rootKey(2), '--root-key', rootKey(3), '--out', newRootDir, '--new-keys', '3', '--threshold', '2']);
      t.is(rootRotated.code, 0, rootRotated.stderr);
      t.is((await fs.readdir(newRootDir)).length, 3);
      const after = await signedTargets(server, root1);
      t.true(after.rootVersion >= 3, 'a client pinned to root 1 follows the chain');
      t.true(await after.has(manifestTargetPath('pos-app', '1.0.0')));
      // The server checks an uploaded root itself, whatever the client did: one root key is not enough.
      const live = Metadata.fromJSON(MetadataKind.Root, (await server.api('GET', '/tuf/root.json')).body);
      const forged = buildRoot(rolePolicyOf(live.signed), live.signed.version + 1, new Date());
      forged.sign(signerFor(signingKeyFromPem(await fs.readFile(path.join(newRootDir, (await fs.readdir(newRootDir))[0]!), 'utf8'))));
      const refused = await server.api('POST', '/api/v1/trust/root', { json: forged.toJSON() });
      t.is(refused.status, 400);
      t.is(refused.body.error.code, 'signature_invalid');
      t.regex(refused.body.error.message, /root was signed by 1\/2 keys/);
      const oldKeysNow = await convoyAs(server.url, adminToken, ['keys', 'rotate', '--role', 'timestamp', '--root-key', rootKey(1), '--root-key', rootKey(2)]);
      t.is(oldKeysNow.code, 1, 'retired root keys sign nothing any more');

      // Revocation, with its reason and who did it.
      const revoked = await convoyAs(server.url, users.carol!, ['bundle', 'revoke', 'pos-app@1.0.0', '--reason', 'CVE-2026-0001 in app.bin']);
      t.is(revoked.code, 0, revoked.stderr);
      t.false(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')));
      const record = JSON.parse((await convoyAs(server.url, adminToken, ['bundle', 'approvals', 'pos-app@1.0.0', '--json'])).stdout);
      t.like(record, { status: 'revoked', revocation: { reason: 'CVE-2026-0001 in app.bin', by: 'carol' } });
      const deploy = await convoyAs(server.url, adminToken, ['deploy', 'pos-app@1.0.0', '--group', 'shop']);
      t.regex(deploy.stderr, /version_revoked/);
    },
    { dataDir, anonymousTufRead: true },
  );
  await fs.rm(dataDir, { recursive: true, force: true });
});

test('offline targets: approvers sign 2-of-3 with their own keys; the server never holds a targets key', async (t) => {
  const approverDir = await makeTempDir('convoy-approvers-');
  t.teardown(() => fs.rm(approverDir, { recursive: true, force: true }));
  const key = (name: string) => path.join(approverDir, name);
  for (const name of ['alice', 'bob', 'carol']) {
    const generated = await convoyAs('http://127.0.0.1:1', 'unused-token-0123456789', ['keys', 'generate', '--out', key(name)]);
    t.is(generated.code, 0, generated.stderr);
  }
  const { keysDir, dataDir, root1 } = await ceremonyDataDir([
    '--targets-key', `${key('alice')}.pub.json`, '--targets-key', `${key('bob')}.pub.json`, '--targets-key', `${key('carol')}.pub.json`, '--targets-threshold', '2',
  ]);
  t.teardown(() => fs.rm(path.dirname(keysDir), { recursive: true, force: true }));
  t.deepEqual((await fs.readdir(path.join(dataDir, 'keys'))).sort(), ['snapshot.pem', 'timestamp.pem']);
  await withServer(
    t,
    async (server) => {
      t.like(JSON.parse((await convoyAs(server.url, adminToken, ['keys', 'status', '--json'])).stdout), { targetsSigning: 'offline', roles: { targets: { threshold: 2, heldByServer: 0 } } });
      const users = await addUsers(server, ['alice', 'bob', 'carol'], dataDir);
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
      await pushArtifact(server, 'pos-app', '1.0.0', 'app.bin', Buffer.from('release one\n'));

      const approve = await convoyAs(server.url, users.alice!, ['bundle', 'approve', 'pos-app@1.0.0']);
      t.regex(approve.stderr, /signed offline.*convoy bundle sign/);
      const aliceSigns = await convoyAs(server.url, users.alice!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key('alice')}.pem`]);
      t.is(aliceSigns.code, 0, aliceSigns.stderr);
      t.regex(aliceSigns.stderr, /\+ pos-app\/1\.0\.0\/manifest\.json/, 'the approver sees what they sign');
      // The bundle's first release adds its delegation: the approver signs its role and targets.json.
      t.regex(aliceSigns.stderr, /bundle-pos-app version 1/);
      t.regex(aliceSigns.stderr, /targets version 1 delegates to bundle-pos-app/);
      t.regex(aliceSigns.stdout, /1 of 2 signatures, waiting/);
      const aliceTwice = await convoyAs(server.url, users.alice!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key('carol')}.pem`]);
      t.regex(aliceTwice.stderr, /alice already signed/, 'M-of-N counts distinct users, not keys');
      const stranger = await convoyAs(server.url, users.carol!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', path.join(keysDir, 'root-keys', 'root-1.pem')]);
      t.regex(stranger.stderr, /not a targets key/);
      const bobSigns = await convoyAs(server.url, users.bob!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key('bob')}.pem`]);
      t.regex(bobSigns.stdout, /2 of 2 signatures, published/);
      t.true(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')));
      // A real daemon installs what the approvers signed.
      const device = await startDevice(server, 'till-1', 'shop');
      try {
        await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version: '1.0.0', group: 'shop' } });
        await waitFor('till-1 on 1.0.0', async () => ((await server.api('GET', '/api/v1/devices')).body.find((d: { id: string }) => d.id === 'till-1')?.installed?.version === '1.0.0' ? true : undefined));
        t.deepEqual([...(await readCurrent(device.dir)).entries()].map(([name, bytes]) => [name, bytes.toString()]), [['app.bin', 'release one\n']]);
      } finally {
        await device.stop();
        await fs.rm(device.dir, { recursive: true, force: true });
      }
      const shown = JSON.parse((await convoyAs(server.url, adminToken, ['bundle', 'approvals', 'pos-app@1.0.0', '--json'])).stdout);
      t.is(shown.status, 'approved');
      t.deepEqual(shown.approvals.by.map((a: { principal: string; keyId: string | null }) => a.principal), ['alice', 'bob']);
      t.true(shown.approvals.by.every((a: { keyId: string | null }) => /^[0-9a-f]{64}$/.test(a.keyId ?? '')));
      const topLevel = async () => {
        const timestamp = (await server.api('GET', '/tuf/timestamp.json', { token: null })).body;
        const snapshot = (await server.api('GET', `/tuf/${timestamp.signed.meta['snapshot.json'].version}.snapshot.json`, { token: null })).body;
        return (await server.api('GET', `/tuf/${snapshot.signed.meta['targets.json'].version}.targets.json`, { token: null })).body.signed;
      };
      t.deepEqual((await topLevel()).targets, {}, 'targets.json only delegates');

      // A second release of the same bundle: only its role is signed, targets.json stays.
      await pushArtifact(server, 'pos-app', '1.0.1', 'app.bin', Buffer.from('release two\n'));
      const secondAlice = await convoyAs(server.url, users.alice!, ['bundle', 'sign', 'pos-app@1.0.1', '--key', `${key('alice')}.pem`]);
      t.regex(secondAlice.stderr, /bundle-pos-app version 2/);
      t.notRegex(secondAlice.stderr, /delegates to/);
      const secondBob = await convoyAs(server.url, users.bob!, ['bundle', 'sign', 'pos-app@1.0.1', '--key', `${key('bob')}.pem`]);
      t.regex(secondBob.stdout, /2 of 2 signatures, published/);
      t.is((await topLevel()).version, 1);
      t.true(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.1')));

      // Revocation needs the approvers too: devices keep seeing it until they sign.
      const revoke = await convoyAs(server.url, adminToken, ['bundle', 'revoke', 'pos-app@1.0.0', '--reason', 'bad build']);
      t.regex(revoke.stdout, /once approvers sign/);
      t.true(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')));
      const carolRevokes = await convoyAs(server.url, users.carol!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key('carol')}.pem`]);
      t.regex(carolRevokes.stderr, /- pos-app\/1\.0\.0\/manifest\.json/);
      await convoyAs(server.url, users.bob!, ['bundle', 'sign', 'pos-app@1.0.0', '--key', `${key('bob')}.pem`]);
      t.false(await (await signedTargets(server, root1)).has(manifestTargetPath('pos-app', '1.0.0')));
    },
    { dataDir, anonymousTufRead: true },
  );
  await fs.rm(dataDir, { recursive: true, force: true });
});
