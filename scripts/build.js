#!/usr/bin/env node
// `npm run build`, and the prepare script that `npm ci` runs: compiles the TypeScript sources to
// dist/ with tsc (rewriteRelativeImportExtensions turns `./x.ts` imports into `./x.js`), so the
// server, the CLI and convoyd run with plain node. Plain JavaScript, so it needs no transpiler.
//
// A device install runs `npm ci --omit=dev`, which has no typescript but still runs prepare:
// then the dist/ shipped with the program is used as it is (docs/device-install.md).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const entries = ['dist/cli/main.js', 'dist/device/main.js'];

let tsc;
try {
  // typescript's exports map hides bin/tsc, so find it beside its package.json.
  tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin/tsc');
} catch {
  if (entries.every((entry) => existsSync(new URL(`../${entry}`, import.meta.url)))) {
    process.stdout.write('convoy build: typescript is not installed (npm ci --omit=dev); using the dist/ shipped with the program\n');
    process.exit(0);
  }
  process.stderr.write('convoy build: typescript is not installed and there is no built dist/: build on a machine with the dev dependencies (npm ci), then ship dist/ (docs/device-install.md)\n');
  process.exit(1);
}

// A clean build: a file removed from the sources must not live on in dist/.
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
