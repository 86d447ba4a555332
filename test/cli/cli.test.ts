import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoyBin, readCurrent, runDaemon } from '../helpers/device.ts';
import { adminToken, makeTempDir, waitFor, withServer } from '../helpers/server.ts';
import { convoy } from '../helpers/cli.ts';

test('the CLI scenario: create, push, approve, add a device, deploy, list', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    let device: ReturnType<typeof runDaemon> | undefined;
    try {
      const app = path.join(work, 'app.bin');
      const conf = path.join(work, 'settings.conf');
      await fs.writeFile(app, randomBytes(100_000));
      await fs.writeFile(conf, 'currency=EUR\n');
      t.is((await convoy(server.url, ['bundle', 'create', 'pos-app'])).code, 0);
      const push1 = await convoy(server.url, ['artifact', 'push', app, '--bundle', 'pos-app', '--version', '1.0.0', '--name', 'app.bin', '--type', 'image']);
      t.is(push1.code, 0, push1.stderr);
      t.is((await convoy(server.url, ['artifact', 'push', conf, '--bundle', 'pos-app', '--version', '1.0.0', '--name', 'settings.conf', '--type', 'file'])).code, 0);
      const listed = JSON.parse((await convoy(server.url, ['artifact', 'list', 'pos-app@1.0.0', '--json'])).stdout);
      t.deepEqual(listed.map((a: { name: string; type: string }) => [a.name, a.type]), [['app.bin', 'image'], ['settings.conf', 'file']]);
      const approve = await convoy(server.url, ['bundle', 'approve', 'pos-app@1.0.0']);
      t.regex(approve.stdout, /approved pos-app@1\.0\.0/);

      const deviceDir = path.join(work, 'till-1');
      const added = await convoy(server.url, ['device', 'add', '--id', 'till-1', '--group', 'shop', '--out', deviceDir]);
      t.is(added.code, 0, added.stderr);
      t.is((await fs.stat(path.join(deviceDir, 'device.token'))).mode & 0o777, 0o600, 'the credential is private to its owner');
      device = runDaemon('till-1', deviceDir);
      t.regex((await convoy(server.url, ['deploy', 'pos-app@1.0.0', '--group', 'shop'])).stdout, /deployed pos-app@1\.0\.0 to group shop/);
      await waitFor('the device to report 1.0.0', async () => {
        const devices = JSON.parse((await convoy(server.url, ['device', 'list', '--json'])).stdout);
        return devices[0]?.installed?.version === '1.0.0' ? true : undefined;
      });
      const current = await readCurrent(deviceDir);
      t.true(current.get('app.bin')!.equals(await fs.readFile(app)));
      t.true(current.get('settings.conf')!.equals(await fs.readFile(conf)));
      t.regex((await convoy(server.url, ['device', 'list'])).stdout, /till-1\s+shop\s+online\s+installed\s+pos-app@1\.0\.0/);
      t.regex((await convoy(server.url, ['bundle', 'show', 'pos-app'])).stdout, /1\.0\.0\s+approved/);
    } finally {
      await device?.stop();
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('CLI errors are one clear line and a non-zero exit', async (t) => {
  await withServer(t, async (server) => {
    const badRelease = await convoy(server.url, ['bundle', 'approve', 'pos-app']);
    t.is(badRelease.code, 1);
    t.is(badRelease.stderr, 'convoy: no version for pos-app: write pos-app@VERSION or set CONVOY_RELEASE_VERSION\n');
    const malformed = await convoy(server.url, ['bundle', 'approve', 'pos-app@1.2']);
    t.is(malformed.stderr, 'convoy: expected NAME@VERSION such as pos-app@1.2.0 (or NAME with CONVOY_RELEASE_VERSION set), got "pos-app@1.2"\n');
    const noToken = await convoy(server.url, ['bundle', 'list'], { token: null });
    t.is(noToken.code, 1);
    t.regex(noToken.stderr, /CONVOY_TOKEN is not set/);
    const badToken = await convoy(server.url, ['bundle', 'list'], { token: 'cvy_wrong-wrong-wrong-wrong' });
    t.is(badToken.stderr, 'convoy: the access token is invalid, expired or revoked (unauthenticated)\n');
    const missing = await convoy(server.url, ['bundle', 'approve', 'nope@1.0.0']);
    t.is(missing.stderr, 'convoy: bundle "nope" does not exist (not_found)\n');
    const badSemver = await convoy(server.url, ['artifact', 'push', convoyBin, '--bundle', 'x', '--version', '1.0']);
    t.is(badSemver.code, 1);
    t.regex(badSemver.stderr, /--version: must be a semantic version/);
    const unknown = await convoy(server.url, ['frobnicate']);
    t.is(unknown.code, 2);
    const unreachable = await convoy('http://127.0.0.1:1', ['bundle', 'list']);
    t.regex(unreachable.stderr, /^convoy: cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});
