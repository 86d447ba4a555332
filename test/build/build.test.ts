import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { makeTempDir } from '../helpers/server.ts';

const exec = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// The built program as `npm ci` makes it, compiled into a fresh directory of its own (the
// worktree's dist/ may be stale or missing): bin/ beside dist/, run with plain node.
test('the compiled convoy and convoyd start with plain node, without tsx', async (t) => {
  const dir = await makeTempDir('convoy-build-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  await exec(process.execPath, [path.join(repoRoot, 'scripts/build.js'), '--outdir', path.join(dir, 'dist')], { cwd: repoRoot });
  await fs.cp(path.join(repoRoot, 'bin'), path.join(dir, 'bin'), { recursive: true });
  await fs.copyFile(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  await fs.symlink(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'));

  // NODE_OPTIONS cleared: ava's `--import=tsx` must not be what makes them run.
  const env = { ...process.env, NODE_OPTIONS: '' };
  const daemon = await exec(process.execPath, [path.join(dir, 'bin/convoyd.js'), '--help'], { env });
  t.regex(daemon.stdout, /^usage: convoyd --config <dir>\/device\.json\n/);
  const cli = await exec(process.execPath, [path.join(dir, 'bin/convoy.js'), '--help'], { env });
  t.regex(cli.stdout, /^usage: convoy <command>/);
  const emitted = await fs.readFile(path.join(dir, 'dist/convoyd.js'), 'utf8');
  t.notRegex(emitted, /(?:from|import\()\s*["']\.{1,2}\/[^"']+\.ts["']/, 'no import of a TypeScript file is left');
});

test('bin/convoyd.js says how to build when dist/ is missing', async (t) => {
  const dir = await makeTempDir('convoy-nobuild-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  await fs.cp(path.join(repoRoot, 'bin'), path.join(dir, 'bin'), { recursive: true });
  await fs.copyFile(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'));
  const error = await t.throwsAsync(exec(process.execPath, [path.join(dir, 'bin/convoyd.js'), '--help'], { env: { ...process.env, NODE_OPTIONS: '' } }));
  t.regex((error as Error & { stderr: string }).stderr, /npm run build/);
});
