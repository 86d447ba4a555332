#!/usr/bin/env node
// `npm run build`, and the prepare script that `npm ci` runs: bundles the two programs with
// esbuild into dist/ (dist/convoy.js, dist/convoyd.js and the chunks they load lazily), so the
// server, the CLI and convoyd run with plain node and no transpiler.
//
// Why a bundle rather than tsc's file-per-module output: measured on the daemon (`convoyd --help`,
// everything imported), the tsc output took 75 MB RSS and 2.5 s over `node -e 0`; the bundle of
// ours and our dependencies (mqtt, zod, tuf-js) takes 57 MB and 0.5 s. Node pays per module
// file, and the bundle keeps only the code that is reached. Types are checked by `tsc --noEmit`.
//
// A device install runs `npm ci --omit=dev`, which has no esbuild but still runs prepare: then
// the dist/ shipped with the program is used as it is (docs/device-install.md).
//
//   node scripts/build.js [--outdir DIR]     # default dist/
//   node scripts/build.js --metafile FILE    # also writes esbuild's metafile (what each chunk holds)
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { outdir: { type: 'string', default: path.join(root, 'dist') }, metafile: { type: 'string' } }, strict: true });
const outdir = path.resolve(values.outdir);

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  if (['convoy.js', 'convoyd.js'].every((entry) => existsSync(path.join(outdir, entry)))) {
    process.stdout.write('convoy build: esbuild is not installed (npm ci --omit=dev); using the dist/ shipped with the program\n');
    process.exit(0);
  }
  process.stderr.write('convoy build: esbuild is not installed and there is no built dist/: build on a machine with the dev dependencies (npm ci), then ship dist/ (docs/device-install.md)\n');
  process.exit(1);
}

// A clean build: a file removed from the sources must not live on in dist/.
rmSync(outdir, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: root,
  metafile: Boolean(values.metafile),
  entryPoints: { convoy: 'cli/main.ts', convoyd: 'device/main.ts' },
  outdir,
  bundle: true,
  // Lazy `await import()`s (the server for `convoy serve`, tuf-js when refreshing, …) stay
  // separate chunks, loaded only by the process that reaches them.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // Written beside the code, read only with `node --enable-source-maps`.
  sourcemap: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // Native addons and the database drivers (knex loads its dialect's driver by name) stay in
  // node_modules; everything else is inside the bundle.
  external: ['unix-dgram', 'sqlite3', 'pg', 'pg-native', 'knex'],
  // The bundled CommonJS packages call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __convoyRequire } from 'node:module'; const require = __convoyRequire(import.meta.url);" },
  logLevel: 'warning',
});
if (values.metafile) writeFileSync(values.metafile, JSON.stringify(result.metafile));
