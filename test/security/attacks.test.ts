import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { Metadata, MetadataKind } from '@tufjs/models';
import { canonicalize } from '@tufjs/canonical-json';
import { keyFromJson, rotateRole } from '../../certs/ceremony.ts';
import { generateSigningKey, signerFor, signingKeyFromPem, type SigningKey } from '../../tuf/keys.ts';
import { buildRoot, rolePolicyOf, toBytes } from '../../tuf/repository.ts';
import { readCurrent, runDaemon } from '../helpers/device.ts';
import { withServer, type TestServer } from '../helpers/server.ts';
import { answer, drip, endless, startMirror, type Attack } from './mirror.ts';
import { deploy, offlineRootDataDir, provisionThrough, publish, waitForDevice } from './setup.ts';

/*
 * The attack suite (TUF threat model §1.5.2, Uptane's attacker on the network): a malicious mirror
 * between a real convoyd and the real server performs each attack. For each one the daemon must
 * refuse, keep running its current version, report the reason over MQTT, and recover once the
 * mirror turns honest. The root is made by the offline key ceremony (2 of 3 root keys).
 * Timestamp metadata lives 8 s here, re-signed every 4 s, so a freeze shows within seconds.
 */

type Files = Record<string, Buffer>;
const blobHex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const json = (bytes: Buffer) => JSON.parse(bytes.toString('utf8'));
const canonical = (value: unknown) => Buffer.from(canonicalize(value));

function resign(metadataJson: any, kind: MetadataKind.Timestamp, keys: SigningKey[]): Buffer {
  const metadata = Metadata.fromJSON(kind, { ...metadataJson, signatures: [] });
  for (const key of keys) metadata.sign(signerFor(key));
  return toBytes(metadata);
}

test('attack suite: a malicious mirror between a real daemon and the real server', async (t) => {
  const { dataDir, ceremony } = await offlineRootDataDir();
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }));
  await withServer(
    t,
    async (server: TestServer) => {
      const mirror = await startMirror(() => server.url);
      const rows: { attack: string; outcome: string; recovered: string }[] = [];
      const dir = await provisionThrough(server, 'till-1', 'shop', mirror.url, { timeoutSeconds: 2, trustCheckSeconds: 1 });
      const device = runDaemon('till-1', dir);
      try {
        t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } })).status, 201);
        const start = {
          timestamp: (await server.api('GET', '/tuf/timestamp.json')).raw,
          snapshot: (await server.api('GET', '/tuf/1.snapshot.json')).raw,
          targets: (await server.api('GET', '/tuf/1.targets.json')).raw,
        };
        const content = (version: string): Files => ({ 'app.bin': randomBytes(2048), 'config.json': Buffer.from(`{"version":"${version}"}\n`) });
        let minor = 0;
        let running = { version: '1.0.0', files: content('1.0.0') };
        await publish(server, 'pos-app', running.version, running.files);
        await deploy(server, 'pos-app', running.version, 'shop');
        await waitForDevice(server, 'till-1', 'first install', (r) => r.installed?.version === '1.0.0');
        const first = running;
        // The bundle's TUF role as the first release signed it (roles exist once a bundle has one).
        const firstRole = (await server.api('GET', '/tuf/1.bundle-pos-app.json')).raw;

        const sameFiles = (actual: Map<string, Buffer>, expected: Files) =>
          actual.size === Object.keys(expected).length && Object.entries(expected).every(([name, bytes]) => actual.get(name)?.equals(bytes));

        async function expectRefused(version: string, codes: string[]) {
          const record = await waitForDevice(server, 'till-1', `refusal of ${version} (${codes.join('|')})`, // A fatal refusal ends in `failed`; a transient one (a drip-fed transfer cut by the
          // slow-retrieval bound) keeps retrying and reports the error meanwhile: both are refusals.
          (r) => r.target?.version === version && r.state !== 'installed' && codes.includes(r.error?.code), 45_000);
          t.is(record.installed?.version, running.version, 'it still reports the version it runs');
          t.true(sameFiles(await readCurrent(dir), running.files), 'current/ still holds exactly the running release');
          t.is(device.process.exitCode, null, 'the daemon keeps running');
          return record;
        }

        async function expectRecovered(version: string, files: Files) {
          await deploy(server, 'pos-app', version, 'shop');
          await waitForDevice(server, 'till-1', `recovery onto ${version}`, (r) => r.installed?.version === version && r.state === 'installed', 45_000);
          t.true(sameFiles(await readCurrent(dir), files));
          running = { version, files };
          return 'yes';
        }

        /** The common shape: publish the next version honestly, attack while the device fetches it. */
        async function attack(name: string, make: (ctx: { version: string; files: Files; manifestDigest: string }) => Attack, codes: string[], options: { beforeDeploy?: () => Promise<void> } = {}) {
          const version = `1.${++minor}.0`;
          const files = content(version);
          // The attack is in place before the release is signed: the daemon's periodic metadata
          // check would otherwise fetch the new, honest metadata between signing and attack.
          const ctx = { version, files, manifestDigest: '' };
          mirror.attack(make(ctx));
          ctx.manifestDigest = (await publish(server, 'pos-app', version, files)).manifestDigest;
          await options.beforeDeploy?.();
          await deploy(server, 'pos-app', version, 'shop');
          const record = await expectRefused(version, codes);
          mirror.attack(null);
          rows.push({ attack: name, outcome: `refused: ${record.error.code}: ${String(record.error.message).slice(0, 90)}`, recovered: await expectRecovered(version, files) });
        }

        const isBlob = (p: string, bytes: Buffer) => p.startsWith(`/api/v1/blobs/sha256:${blobHex(bytes)}`);

        await attack('arbitrary software: altered artifact', ({ files }) => async (req) => {
          if (!isBlob(req.path, files['app.bin']!)) return false;
          const upstream = await req.fetchUpstream();
          upstream.body[0] = upstream.body[0]! ^ 0xff;
          return answer(req.res, upstream.body, 'application/octet-stream');
        }, ['digest_mismatch']);

        await attack('arbitrary software: altered manifest', (ctx) => async (req) => {
          if (!ctx.manifestDigest || !req.path.startsWith(`/api/v1/blobs/${ctx.manifestDigest}`)) return false;
          const upstream = await req.fetchUpstream();
          // Same length, one artifact digest changed: only the signed hash can tell.
          const text = upstream.body.toString('utf8');
          const at = text.indexOf('sha256:') + 'sha256:'.length;
          return answer(req.res, Buffer.from(text.slice(0, at) + (text[at] === '0' ? '1' : '0') + text.slice(at + 1)), 'application/octet-stream');
        }, ['digest_mismatch']);

        // The attacker adds a target and fixes up every length and hash above it (targets in
        // snapshot, snapshot in timestamp), so only the signatures can tell.
        await attack('arbitrary software: added target (hashes fixed up)', () => {
          const forged = new Map<string, Buffer>();
          return async (req) => {
            if (req.path === '/tuf/timestamp.json') {
              const timestamp = json((await req.fetchUpstream()).body);
              const snapshotPath = `/tuf/${timestamp.signed.meta['snapshot.json'].version}.snapshot.json`;
              const snapshot = (await server.api('GET', snapshotPath)).body;
              const targetsPath = `/tuf/${snapshot.signed.meta['targets.json'].version}.targets.json`;
              const targets = (await server.api('GET', targetsPath)).body;
              targets.signed.targets['pos-app/6.6.6/manifest.json'] = { length: 10, hashes: { sha256: 'ab'.repeat(32) } };
              const targetsBytes = canonical(targets);
              snapshot.signed.meta['targets.json'] = { version: snapshot.signed.meta['targets.json'].version, length: targetsBytes.length, hashes: { sha256: blobHex(targetsBytes) } };
              const snapshotBytes = canonical(snapshot);
              timestamp.signed.meta['snapshot.json'] = { version: timestamp.signed.meta['snapshot.json'].version, length: snapshotBytes.length, hashes: { sha256: blobHex(snapshotBytes) } };
              forged.set(snapshotPath, snapshotBytes).set(targetsPath, targetsBytes);
              return answer(req.res, canonical(timestamp));
            }
            const bytes = forged.get(req.path);
            return bytes ? answer(req.res, bytes) : false;
          };
        }, ['bad_signature']);

        await attack('rollback: replay of an older signed timestamp', () => (req) => req.path === '/tuf/timestamp.json' && answer(req.res, start.timestamp), ['rollback']);

        await attack('mix-and-match: snapshot from another time', () => (req) => /^\/tuf\/\d+\.snapshot\.json$/.test(req.path) && answer(req.res, start.snapshot), ['untrusted_metadata']);

        // targets.json changes only when a bundle is added or drops out, so the device already
        // holds the current one; the bundle's role changes with every release, and an older one
        // (validly signed) is refused because the snapshot names a newer version (§5.6.4).
        await attack('mix-and-match: targets and bundle role from another time', () => (req) =>
          (/^\/tuf\/\d+\.targets\.json$/.test(req.path) && answer(req.res, start.targets)) || (/^\/tuf\/\d+\.bundle-pos-app\.json$/.test(req.path) && answer(req.res, firstRole)), ['untrusted_metadata', 'rollback']);

        await attack('endless data: infinite timestamp.json', () => (req) => req.path === '/tuf/timestamp.json' && endless(req.res), ['oversized', 'download_failed']);

        await attack('endless data: oversized artifact', ({ files }) => (req) => isBlob(req.path, files['app.bin']!) && endless(req.res), ['size_mismatch']);

        await attack('slow retrieval: artifact drip-fed 10 B/s', ({ files }) => (req) => isBlob(req.path, files['app.bin']!) && drip(req.res, files['app.bin']!, 100), ['download_failed']);

        await attack('slow retrieval: timestamp.json drip-fed', () => async (req) => {
          if (req.path !== '/tuf/timestamp.json') return false;
          return drip(req.res, (await req.fetchUpstream()).body, 200);
        }, ['download_failed', 'untrusted_metadata']);

        const attacker = generateSigningKey();
        await attack('a key not in root signs timestamp', () => async (req) => {
          if (req.path !== '/tuf/timestamp.json') return false;
          const timestamp = json((await req.fetchUpstream()).body);
          timestamp.signed.version += 1000;
          return answer(req.res, resign(timestamp, MetadataKind.Timestamp, [attacker]));
        }, ['bad_signature']);

        let frozen: Buffer | undefined;
        await attack(
          'indefinite freeze: timestamp kept past its expiry',
          () => (req) => req.path === '/tuf/timestamp.json' && answer(req.res, frozen!),
          ['metadata_expired'],
          {
            async beforeDeploy() {
              frozen = (await server.api('GET', '/tuf/timestamp.json')).raw;
              const expires = Date.parse(json(frozen).signed.expires);
              // The watch between updates reports the freeze by itself once the timestamp expires.
              const watched = await waitForDevice(server, 'till-1', 'the watch to notice the freeze', (r) => r.error?.code === 'metadata_expired' && /expired/i.test(r.error.message), Math.max(0, expires - Date.now()) + 15_000);
              t.is(watched.installed.version, running.version);
            },
          },
        );

        // Threshold: root 2 of 3. An attacker holding one root key makes root v(N+1) that swaps
        // the timestamp key for theirs; the device must refuse it.
        {
          const rootNow = Metadata.fromJSON(MetadataKind.Root, json((await server.api('GET', '/tuf/root.json')).raw));
          const policy = rolePolicyOf(rootNow.signed);
          policy.timestamp = { keys: [attacker.publicKey], threshold: 1 };
          const evilRoot = buildRoot(policy, rootNow.signed.version + 1, new Date());
          evilRoot.sign(signerFor(ceremony.rootKeys[0]!));
          const evilRootPath = `/tuf/${rootNow.signed.version + 1}.root.json`;
          await attack('signatures below threshold: root signed by 1 of 2 needed keys', () => async (req) => {
            if (req.path === evilRootPath) return answer(req.res, toBytes(evilRoot));
            if (req.path !== '/tuf/timestamp.json') return false;
            const timestamp = json((await req.fetchUpstream()).body);
            timestamp.signed.version += 1000;
            return answer(req.res, resign(timestamp, MetadataKind.Timestamp, [attacker]));
          }, ['bad_signature']);
        }

        // Fast-forward: the online timestamp key is stolen; the attacker serves timestamp version
        // 1000000. It verifies, so the device takes it, and then refuses every honest timestamp
        // (lower version) until the operator rotates the timestamp key: root N+1 names a new key,
        // the fast-forwarded timestamp no longer verifies, and the device follows the chain.
        {
          const stolen = signingKeyFromPem(await fs.readFile(path.join(dataDir, 'keys', 'timestamp.pem'), 'utf8'));
          mirror.attack(async (req) => {
            if (req.path !== '/tuf/timestamp.json') return false;
            const timestamp = json((await req.fetchUpstream()).body);
            timestamp.signed.version = 1_000_000;
            return answer(req.res, resign(timestamp, MetadataKind.Timestamp, [stolen]));
          });
          const seen = mirror.requests.length;
          await waitForDevice(server, 'till-1', 'the watch to fetch the forged timestamp', () => mirror.requests.slice(seen).filter((p) => p === '/tuf/timestamp.json').length >= 2);
          mirror.attack(null);
          const version = `1.${++minor}.0`;
          const files = content(version);
          await publish(server, 'pos-app', version, files);
          await deploy(server, 'pos-app', version, 'shop');
          const record = await expectRefused(version, ['rollback']);
          t.regex(record.error.message, /1000000/);
          // `convoy keys rotate --role timestamp`, as the CLI does it: a new online key made by
          // the server, root N+1 signed offline by 2 of the 3 root keys, uploaded.
          const created = await server.api('POST', '/api/v1/trust/keys', { json: { role: 'timestamp' } });
          t.is(created.status, 201);
          const rootNow = Metadata.fromJSON(MetadataKind.Root, json((await server.api('GET', '/tuf/root.json')).raw));
          const next = rotateRole({ current: rootNow, role: 'timestamp', keys: [keyFromJson({ keyid: created.body.keyId, ...created.body.publicKey })], signers: ceremony.rootKeys.slice(0, 2), now: new Date() });
          const uploaded = await server.api('POST', '/api/v1/trust/root', { json: json(toBytes(next)) });
          t.is(uploaded.status, 201, JSON.stringify(uploaded.body));
          rows.push({ attack: 'fast-forward: stolen timestamp key, version 1000000', outcome: `refused fresh metadata afterwards: ${record.error.code}: ${String(record.error.message).slice(0, 70)}`, recovered: `after key rotation (root v${next.signed.version}): ${await expectRecovered(version, files)}` });
        }

        // Revocation, while in flight: the mirror is down while the device fetches 1.N.0; the
        // version is revoked meanwhile; the device's retry finds it gone from the signed targets.
        {
          const version = `1.${++minor}.0`;
          const files = content(version);
          await publish(server, 'pos-app', version, files);
          mirror.attack((req) => {
            if (!req.path.startsWith('/api/v1/blobs/')) return false;
            req.res.writeHead(503).end();
            return true;
          });
          await deploy(server, 'pos-app', version, 'shop');
          await expectRefused(version, ['download_failed']);
          t.is((await server.api('POST', `/api/v1/bundles/pos-app/versions/${version}/revoke`, { json: { reason: 'attack suite: broken build' } })).status, 200);
          mirror.attack(null);
          const record = await expectRefused(version, ['target_missing']);
          t.is((await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos-app', version, group: 'shop' } })).body.error.code, 'version_revoked');
          const next = `1.${++minor}.0`;
          const nextFiles = content(next);
          await publish(server, 'pos-app', next, nextFiles);
          rows.push({ attack: 'revoked version (revoked while in flight)', outcome: `refused: ${record.error.code}: ${String(record.error.message).slice(0, 90)}`, recovered: await expectRecovered(next, nextFiles) });
        }

        // Revocation of the running version: the device says so in its status and keeps running
        // it (there is nothing better to run) until a new version is deployed.
        {
          const revoked = running.version;
          t.is((await server.api('POST', `/api/v1/bundles/pos-app/versions/${revoked}/revoke`, { json: { reason: 'attack suite: CVE in app.bin' } })).status, 200);
          const record = await waitForDevice(server, 'till-1', 'the device to report its version revoked', (r) => r.error?.code === 'version_revoked' && r.installed?.version === revoked);
          t.true(sameFiles(await readCurrent(dir), running.files));
          const next = `1.${++minor}.0`;
          const nextFiles = content(next);
          await publish(server, 'pos-app', next, nextFiles);
          rows.push({ attack: 'running version revoked', outcome: `reported in status: ${record.error.code}: ${String(record.error.message).slice(0, 80)}`, recovered: await expectRecovered(next, nextFiles) });
        }

        // Anti-downgrade: an older approved version is refused unless the rollback is signed.
        {
          await deploy(server, 'pos-app', '1.0.0', 'shop');
          const record = await expectRefused('1.0.0', ['downgrade_refused']);
          t.is((await server.api('PUT', '/api/v1/bundles/pos-app/versions/1.0.0/rollback', { json: { allowed: true } })).status, 200);
          rows.push({ attack: 'downgrade to an older version, unsigned', outcome: `refused: ${record.error.code}: ${String(record.error.message).slice(0, 80)}`, recovered: `with a signed rollback: ${await expectRecovered('1.0.0', first.files)}` });
        }

        const width = Math.max(...rows.map((r) => r.attack.length));
        t.log(['', `${'ATTACK'.padEnd(width)}  OUTCOME  →  RECOVERED`, ...rows.map((r) => `${r.attack.padEnd(width)}  ${r.outcome}  →  ${r.recovered}`)].join('\n'));
      } catch (error) {
        t.log(device.logs.join('').slice(-6000));
        throw error;
      } finally {
        await device.stop();
        await mirror.close();
        await fs.rm(dir, { recursive: true, force: true });
      }
    },
    { dataDir, tufExpiry: { root: 365 * 86400, targets: 365 * 86400, snapshot: 30 * 86400, timestamp: 8 }, tufResignCheckMs: 1000 },
  );
});
