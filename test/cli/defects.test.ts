import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { makeTempDir, pushArtifact, withServer } from '../helpers/server.ts';

// The CLI defects found by a new user (issue #9 §2.6, #14 item 13), each as the user met it.

test('usage errors exit 2 with the usage line; every noun answers --help', async (t) => {
  await withServer(t, async (server) => {
    const noGroup = await convoy(server.url, ['deploy', 'pos@1.0.0']);
    t.is(noGroup.code, 2);
    t.regex(noGroup.stderr, /^convoy: --group: missing\nusage: convoy deploy NAME@VERSION --group GROUP \[--phases [^\n]*\n$/);
    const noReason = await convoy(server.url, ['bundle', 'revoke', 'pos@1.0.0']);
    t.is(noReason.code, 2);
    t.regex(noReason.stderr, /--reason TEXT is required.*\nusage: convoy bundle revoke /);
    const noRelease = await convoy(server.url, ['bundle', 'approve']);
    t.is(noRelease.code, 2);
    t.regex(noRelease.stderr, /NAME@VERSION: missing/);
    const unknownFlag = await convoy(server.url, ['bundle', 'list', '--frobnicate']);
    t.is(unknownFlag.code, 2);
    t.regex(unknownFlag.stderr, /--frobnicate.*\nusage: convoy bundle list/s);
    const badValue = await convoy(server.url, ['deploy', 'pos@1.0.0', '--group', 'Not A Group!']);
    t.is(badValue.code, 1, 'a value given but wrong is not a usage error');

    for (const noun of ['bundle', 'version', 'artifact', 'deployment', 'device', 'keys', 'user', 'member', 'token', 'audit']) {
      const help = await convoy(server.url, [noun, '--help']);
      t.is(help.code, 0, `${noun} --help: ${help.stderr}`);
      t.regex(help.stdout, new RegExp(`^usage: convoy ${noun} <command>[^]*\\n  convoy ${noun} \\w+`), noun);
    }
    const wrongVerb = await convoy(server.url, ['version', 'frobnicate']);
    t.is(wrongVerb.code, 2);
    t.regex(wrongVerb.stderr, /unknown command "version frobnicate"[^]*convoy version next/);
  });
});

test('CONVOY_RELEASE_VERSION for approvals and revoke; --preid with --bump minor; replaced; bundle and version delete', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      const env = { CONVOY_RELEASE_VERSION: '1.2.0' };
      t.is((await convoy(server.url, ['bundle', 'create', 'pos'])).code, 0);
      const file = path.join(work, 'app.bin');
      await fs.writeFile(file, 'v1');
      const first = await convoy(server.url, ['artifact', 'push', file, '--bundle', 'pos'], { env });
      t.is(first.stdout, 'added file app.bin to pos@1.2.0\n', first.stderr);
      await fs.writeFile(file, 'v2');
      const again = await convoy(server.url, ['artifact', 'push', file, '--bundle', 'pos'], { env });
      t.is(again.stdout, 'replaced file app.bin in pos@1.2.0\n', again.stderr);
      t.is((await convoy(server.url, ['bundle', 'approve', 'pos'], { env })).code, 0);

      const approvals = await convoy(server.url, ['bundle', 'approvals', 'pos'], { env });
      t.is(approvals.code, 0, approvals.stderr);
      t.regex(approvals.stdout, /^pos@1\.2\.0: approved, 1 of 1 approval/);
      const next = await convoy(server.url, ['version', 'next', 'pos', '--bump', 'minor', '--preid', 'rc']);
      t.is(next.stdout, '1.3.0-rc.0\n', next.stderr);
      const revoked = await convoy(server.url, ['bundle', 'revoke', 'pos', '--reason', 'bad build'], { env });
      t.is(revoked.code, 0, revoked.stderr);
      t.regex(revoked.stdout, /^revoked pos@1\.2\.0/);

      await pushArtifact(server, 'pos', '1.3.0-rc.0', 'app.bin', Buffer.from('draft'));
      const deletedDraft = await convoy(server.url, ['version', 'delete', 'pos@1.3.0-rc.0']);
      t.is(deletedDraft.stdout, 'deleted draft pos@1.3.0-rc.0\n', deletedDraft.stderr);
      t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.3.0-rc.0')).status, 404);
      const keptApproved = await convoy(server.url, ['version', 'delete', 'pos@1.2.0']);
      t.is(keptApproved.code, 1);
      t.regex(keptApproved.stderr, /\(version_immutable\)/);

      t.is((await convoy(server.url, ['bundle', 'create', 'scratch'])).code, 0);
      const deleted = await convoy(server.url, ['bundle', 'delete', 'scratch']);
      t.is(deleted.stdout, 'deleted bundle scratch\n', deleted.stderr);
      t.is((await server.api('GET', '/api/v1/bundles/scratch')).status, 404);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

test('errors name the CLI\'s flags; strings from the server reach the terminal with control characters escaped', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos', description: 'Till \x1b[2J\x1b]0;owned\x07app' } });
      const file = path.join(work, 'thing.bin');
      await fs.writeFile(file, 'not a package');
      const noFormat = await convoy(server.url, ['artifact', 'push', file, '--bundle', 'pos', '--version', '1.0.0', '--type', 'package']);
      t.is(noFormat.code, 1);
      t.regex(noFormat.stderr, /needs --format deb\|rpm\|npm\|generic/);
      t.notRegex(noFormat.stderr, /\?format=/);
      const noMeta = await convoy(server.url, ['artifact', 'push', file, '--bundle', 'pos', '--version', '1.0.0', '--format', 'generic']);
      t.is(noMeta.code, 1);
      t.regex(noMeta.stderr, /--package-name/);
      t.notRegex(noMeta.stderr, /package\.name/);

      const listed = await convoy(server.url, ['bundle', 'list']);
      t.is(listed.code, 0, listed.stderr);
      t.false(listed.stdout.includes('\x1b'), 'no raw escape reaches the terminal');
      t.regex(listed.stdout, /Till \\x1b\[2J\\x1b\]0;owned\\x07app/);
      const asJson = await convoy(server.url, ['bundle', 'list', '--json']);
      t.false(asJson.stdout.includes('\x1b'));
      t.is(JSON.parse(asJson.stdout)[0].description, 'Till \x1b[2J\x1b]0;owned\x07app', 'scripts still get the exact value');
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
