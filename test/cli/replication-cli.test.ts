import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { convoyBin } from '../helpers/device.ts';
import { startRegistry } from '../helpers/registry.ts';
import { adminToken, makeTempDir, withServer } from '../helpers/server.ts';
import { skopeo, writeLayout } from '../oci/layout.ts';

/*
 * The replication commands as a release manager types them: an edge and a registry endpoint,
 * a policy, a version approved, a run watched to the end, the image pulled from the site
 * registry with skopeo.
 */

/** `convoy …` with bytes on stdin (for --password-stdin). */
function convoyWithStdin(url: string, args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [convoyBin, ...args], { env: { ...process.env, CONVOY_URL: url, CONVOY_TOKEN: adminToken }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

test('edge, registry and replication commands: define a policy, approve, watch the image reach the site registry', async (t) => {
  const registry = await startRegistry();
  const work = await makeTempDir('convoy-replication-cli-');
  try {
    await withServer(
      t,
      async (server) => {
        const cli = (args: string[]) => convoy(server.url, args);
        const edge = await cli(['edge', 'add', 'shop-eu', '--description', 'EU shops']);
        t.is(edge.code, 0, edge.stderr);
        t.regex(edge.stdout, /^cvye_[A-Za-z0-9_-]{43}\n$/, 'the token alone on stdout');
        t.regex(edge.stderr, /CONVOY_EDGE_TOKEN/);
        t.regex((await cli(['edge', 'list'])).stdout, /shop-eu\s+never/);

        const added = await convoyWithStdin(server.url, ['registry', 'add', 'site', '--url', registry.url, '--username', registry.username, '--password-stdin'], `${registry.password}\n`);
        t.is(added.code, 0, added.stderr);
        t.regex(added.stdout, /credentials stored encrypted/);
        const shown = await cli(['registry', 'show', 'site', '--json']);
        t.false(shown.stdout.includes(registry.password));
        t.true(JSON.parse(shown.stdout).credentials);
        t.is((await cli(['registry', 'add', 'bad', '--url', registry.url, '--username', 'x'])).code, 2, '--username without --password-stdin is a usage error');

        t.is((await cli(['bundle', 'create', 'pos-app'])).code, 0);
        const image = await writeLayout(path.join(work, 'src'), 'build', [128 * 1024]);
        await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://127.0.0.1:${server.httpPort}/pos-app/till:2.0.0`]);

        const created = await cli(['replication', 'policy', 'create', 'eu-shops', '--bundle', 'pos-app', '--to', 'site', '--trigger', 'manual', '--versions', '>=2.0.0', '--types', 'image', '--bandwidth', '5MB/s']);
        t.is(created.code, 0, created.stderr);
        t.regex(created.stdout, /to:\s+site \(registry\)/);
        t.regex(created.stdout, /bandwidth:\s+5000000 B\/s/);
        t.regex((await cli(['replication', 'policy', 'list', '--bundle', 'pos-app'])).stdout, /eu-shops\s+site\s+push\s+manual\s+>=2\.0\.0\s+yes/);
        t.is((await cli(['replication', 'policy', 'create', 'x', '--bundle', 'pos-app'])).code, 2);
        t.is((await cli(['replication', 'policy', 'disable', 'eu-shops', '--bundle', 'pos-app'])).code, 0);
        const disabled = await cli(['replication', 'run', 'eu-shops', '--bundle', 'pos-app']);
        t.is(disabled.code, 1);
        t.regex(disabled.stderr, /disabled; enable it first/);
        t.is((await cli(['replication', 'policy', 'enable', 'eu-shops', '--bundle', 'pos-app'])).code, 0);

        t.is((await cli(['bundle', 'approve', 'pos-app@2.0.0'])).code, 0);
        const run = await cli(['replication', 'run', 'eu-shops', '--bundle', 'pos-app', '--wait']);
        t.is(run.code, 0, run.stderr);
        t.regex(run.stdout, /^run 1 of eu-shops \(manual\): succeeded; versions 2\.0\.0; tasks 3 ok, 0 skipped, 0 failed, 0 pending of 3/);
        t.regex((await cli(['replication', 'runs', '--bundle', 'pos-app'])).stdout, /1\s+eu-shops\s+manual\s+2\.0\.0\s+succeeded\s+3\/3/);
        const detail = await cli(['replication', 'run', 'show', '1', '--bundle', 'pos-app']);
        t.regex(detail.stdout, /manifest\s+pos-app\/till:2\.0\.0\s+succeeded/);

        const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', `${registry.username}:${registry.password}`, `docker://${registry.host}/pos-app/till:2.0.0`])).stdout);
        t.is(inspected.Digest, image.manifestDigest);

        t.is((await cli(['registry', 'remove', 'site'])).code, 1, 'an endpoint a policy uses is not removed');
      },
      { secretKey: Buffer.alloc(32, 9) },
    );
  } finally {
    await registry.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
});
