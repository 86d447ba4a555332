import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { parseWith } from '../../protocol/parse.ts';
import { replicationRunDetail } from '../../protocol/replication.ts';
import { deviceRecord, provisionDevice, runDaemon, type TestDevice } from '../helpers/device.ts';
import { freePort } from '../helpers/ports.ts';
import { startRegistry } from '../helpers/registry.ts';
import { deploy } from '../helpers/release.ts';
import { adminToken, makeTempDir, pushArtifact, waitFor, withServer } from '../helpers/server.ts';
import { runShell, startShell, walkBin, walkBlock, type LongShell } from '../helpers/walk.ts';
import { skopeo, writeLayout } from '../oci/layout.ts';

/*
 * docs/replication.md run as written (issue #12, "done when"): the shell blocks marked
 * `<!-- walk: … -->` are run by bash, in the order a release manager and an operator meet them,
 * with `convoy` on the PATH: a registry endpoint and its policy, a pull-mode edge and a push-mode
 * edge set up step by step (each a real `convoy serve --mode edge` process), one approval, then
 * the image pulled from the site's registry by skopeo (`ID`: the registry run's id) and a device behind each edge installing
 * the release. Only what cannot be real here is replaced: host names by loopback ports, /etc and
 * /var/lib by a temp dir, the `cvye_…` placeholder by the token `convoy edge add` printed, and
 * skopeo told the loopback registry speaks plain HTTP. The bundle's first version (an image
 * `till` and a file) is pushed before the walk, as the guide assumes a bundle exists.
 */

const doc = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/replication.md');
const secretKey = Buffer.alloc(32, 11);
const block = (name: string) => walkBlock(doc, name);

test('docs/replication.md, as written: a registry and two edges by policy, one approval, a site pull and a device behind each edge', async (t) => {
  const work = await makeTempDir('convoy-replication-walk-');
  const bin = await walkBin(work);
  const registry = await startRegistry({ username: 'convoy' });
  const edges: LongShell[] = [];
  const devices: TestDevice[] = [];
  // Devices and edges stop before the origin does, so nothing calls a closed origin.
  const stopAll = async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await Promise.all(edges.map((edge) => edge.stop()));
  };
  t.teardown(async () => {
    await registry.stop();
    await fs.rm(work, { recursive: true, force: true });
  });
  await withServer(
    t,
    async (origin) => {
      try {
        // The bundle as the guide finds it: version 2.1.0, an image `till` and a file.
        t.is((await origin.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } })).status, 201);
        const image = await writeLayout(path.join(work, 'till-src'), 'build', [64 * 1024, 16 * 1024]);
        await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://127.0.0.1:${origin.httpPort}/pos-app/till:2.1.0`]);
        await pushArtifact(origin, 'pos-app', '2.1.0', 'settings.json', Buffer.from('{"till":true}\n'));

        const edgePorts = { 'shop-eu': { http: await freePort(), mqtt: await freePort() }, 'shop-dmz': { http: await freePort(), mqtt: await freePort() } };
        const local = (script: string) =>
          script
            .replaceAll('https://registry.shop.example:5000', registry.url)
            .replaceAll('registry.shop.example:5000', registry.host)
            .replaceAll('skopeo copy ', 'skopeo copy --src-tls-verify=false ')
            .replaceAll('https://shop-dmz.example.com:8443', `http://127.0.0.1:${edgePorts['shop-dmz'].http}`)
            .replaceAll('https://convoy.example.com', origin.url)
            .replaceAll('/etc/convoy/root.json', path.join(work, 'root.json'));
        const env = { PATH: `${bin}:${process.env.PATH}`, CONVOY_URL: origin.url, CONVOY_TOKEN: adminToken, SITE_PASSWORD: registry.password };
        const run = async (name: string) => {
          const result = await runShell(local(await block(name)), { cwd: work, env });
          t.is(result.code, 0, `walk: ${name}\n${result.stderr}`);
          return result;
        };
        /** The edge block up to its first `convoy serve` (the next line is the TLS variant of the same command). */
        const startEdge = async (name: keyof typeof edgePorts, token: string) => {
          const lines = local(await block('edge-start')).split('\n');
          const script = lines
            .slice(0, lines.findIndex((line) => line.startsWith('convoy serve')) + 1)
            .join('\n')
            .replace('cvye_…', token)
            .replace('/var/lib/convoy-edge', path.join(work, name))
            .replace('CONVOY_HTTP_PORT=8080', `CONVOY_HTTP_PORT=${edgePorts[name].http}`)
            .replace('CONVOY_MQTT_PORT=1883', `CONVOY_MQTT_PORT=${edgePorts[name].mqtt}`);
          // Test tuning only: loopback, and release notices relayed every half second instead of 10 s.
          edges.push(await startShell(script, { cwd: work, env: { ...env, CONVOY_HOST: '127.0.0.1', CONVOY_EDGE_NOTICE_MS: '500', CONVOY_EDGE_POLL_MS: '200' }, ready: 'serving devices' }));
        };
        const edgeToken = (stdout: string) => {
          const token = /cvye_\S+/.exec(stdout)?.[0];
          if (!token) throw new Error(`no edge token printed: ${stdout}`);
          return token;
        };

        await run('registry');
        await run('registry-policy');
        const pulled = await run('edge-origin');
        t.true((await fs.stat(path.join(work, 'root.json'))).size > 0, 'root.json fetched for the edge');
        await startEdge('shop-eu', edgeToken(pulled.stdout));
        const pushed = await run('edge-push');
        await startEdge('shop-dmz', edgeToken(pushed.stdout));

        const approved = await run('approve');
        t.regex(approved.stdout, /eu-shops/);
        // Three runs, one per on-approval policy: the registry's, the pull edge's, the push edge's.
        const runs = await waitFor('the three runs to finish', async () => {
          const listed = (await origin.api('GET', '/api/v1/bundles/pos-app/replication-runs')).body as { id: number; policy: string; status: string }[];
          return listed.length === 3 && listed.every((r) => r.status !== 'running') ? listed : undefined;
        });
        t.deepEqual(runs.map((r) => [r.policy, r.status]).sort(), [['dmz', 'succeeded'], ['eu-edges', 'succeeded'], ['eu-shops', 'succeeded']]);
        const registryRun = runs.find((r) => r.policy === 'eu-shops')!;
        const pushRun = parseWith(replicationRunDetail, (await origin.api('GET', `/api/v1/bundles/pos-app/replication-runs/${runs.find((r) => r.policy === 'dmz')!.id}`)).body, 'run');
        t.true(pushRun.tasks.some((task) => task.kind === 'blob' && task.bytes > 0), 'the origin pushed blobs to shop-dmz');

        // The site's registry serves the image, byte for byte the one released.
        const site = await runShell(local(await block('site-pull')).replace('show ID', `show ${registryRun.id}`), { cwd: work, env });
        t.is(site.code, 0, site.stderr);
        t.regex(site.stdout, /succeeded/);
        const copied = JSON.parse(await fs.readFile(path.join(work, 'till-2.1.0', 'manifest.json'), 'utf8'));
        t.deepEqual(copied, JSON.parse(image.manifest.toString('utf8')));

        // "Point the shop's devices at the edge": a till behind each edge, whose device.json names
        // only its edge, installs 2.1.0 from it. Each edge serves the origin's signed metadata.
        const originTimestamp = (await origin.api('GET', '/tuf/timestamp.json')).raw.toString('utf8');
        for (const [name, id] of [['shop-eu', 'till-lisbon'], ['shop-dmz', 'till-dmz']] as const) {
          const dir = await provisionDevice(origin, id, 'shops', { serverUrl: `http://127.0.0.1:${edgePorts[name].http}`, mqttUrl: `mqtt://127.0.0.1:${edgePorts[name].mqtt}` });
          const deviceToken = (await fs.readFile(path.join(dir, 'device.token'), 'utf8')).trim();
          const served = await fetch(`http://127.0.0.1:${edgePorts[name].http}/tuf/timestamp.json`, { headers: { authorization: `Bearer ${deviceToken}` } });
          t.is(served.status, 200, name);
          t.is(await served.text(), originTimestamp, `${name} serves the origin's timestamp`);
          devices.push(runDaemon(id, dir));
        }
        await deploy(origin, 'pos-app', '2.1.0', 'shops');
        for (const id of ['till-lisbon', 'till-dmz']) {
          await waitFor(`${id} to install 2.1.0 from its edge`, async () => ((await deviceRecord(origin, id))?.installed?.version === '2.1.0' ? true : undefined), 120_000);
        }
      } finally {
        await stopAll();
      }
    },
    { secretKey },
  );
});
