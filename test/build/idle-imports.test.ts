import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { makeTempDir } from '../helpers/server.ts';

/*
 * What an idle convoyd has loaded is memory it keeps for good (scripts/bench/footprint: every
 * module's code and the schemas it builds at import stay resident). Read from esbuild's metafile
 * of the real build: the chunks reachable from dist/convoyd.js through its static imports and its
 * lazy imports, except those only a command or a certificate renewal reaches, must hold nothing
 * of the server, the CLI, the certificate authority or the REST API's schemas.
 */

const exec = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Metafile {
  outputs: Record<string, { entryPoint?: string; imports: { path: string; kind: string; external?: boolean }[]; inputs: Record<string, unknown> }>;
}

/** Lazy imports an idle daemon never makes: `convoyd enroll|renew`, and renewal when due. */
const notIdle = new Set(['device/identity-command.ts', 'device/enroll.ts']);

const forbidden: [RegExp, string][] = [
  [/^server\//, 'the server'],
  [/^cli\//, 'the CLI'],
  [/^certs\//, 'the certificate authority'],
  [/^protocol\/api\.ts$/, 'the REST API schemas'],
  // esbuild names inputs relative to the project: `node_modules/x/…` in a checkout, and
  // `../…/node_modules/x/…` where node_modules is a link to another tree (worktrees).
  [/(^|\/)node_modules\/node-forge\//, 'node-forge (enrollment only)'],
  [/(^|\/)node_modules\/undici\//, 'undici (fetch)'],
];

test('an idle convoyd loads nothing of the server, the CLI, the CA or the REST schemas', async (t) => {
  const dir = await makeTempDir('convoy-idle-imports-');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const metafile = path.join(dir, 'meta.json');
  await exec(process.execPath, [path.join(repoRoot, 'scripts/build.js'), '--outdir', path.join(dir, 'dist'), '--metafile', metafile], { cwd: repoRoot });
  const { outputs } = JSON.parse(await fs.readFile(metafile, 'utf8')) as Metafile;
  const entry = Object.keys(outputs).find((name) => outputs[name]!.entryPoint === 'device/main.ts');
  t.truthy(entry, 'the build has a convoyd entry');

  const loaded = new Set<string>();
  const pending = [entry!];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (loaded.has(name)) continue;
    loaded.add(name);
    for (const imported of outputs[name]!.imports) {
      if (imported.external || !outputs[imported.path]) continue;
      if (imported.kind === 'dynamic-import' && notIdle.has(outputs[imported.path]!.entryPoint ?? '')) continue;
      pending.push(imported.path);
    }
  }
  const inputs = [...loaded].flatMap((name) => Object.keys(outputs[name]!.inputs));
  t.true(inputs.includes('device/daemon.ts'), 'the walk reaches the daemon');
  t.true(inputs.some((input) => /(^|\/)node_modules\/mqtt\//.test(input)), 'the walk reaches mqtt');
  for (const [pattern, what] of forbidden) {
    const found = inputs.filter((input) => pattern.test(input));
    t.deepEqual(found, [], `an idle convoyd loads ${what}`);
  }
});
