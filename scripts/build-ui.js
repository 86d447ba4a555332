#!/usr/bin/env node
// `npm run build:ui`, and the second half of the prepare script that `npm ci` runs: builds the web
// UI (ui/, React) with Vite into dist/ui, which the server serves at `/` (server/ui/static.ts).
// Runs after scripts/build.js, which starts by emptying dist/.
//
// A device install runs `npm ci --omit=dev`, which has no Vite: devices serve no UI, so the build
// is skipped with a note, and a server installed that way answers `/` with 404 until it is built.
//
//   node scripts/build-ui.js [--outdir DIR]     # default dist/ui
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { outdir: { type: 'string', default: path.join(root, 'dist', 'ui') } }, strict: true });

let vite;
try {
  vite = await import('vite');
} catch {
  process.stdout.write('convoy build: Vite is not installed (npm ci --omit=dev); the web UI is not built\n');
  process.exit(0);
}
// The JavaScript API rather than the CLI: the CLI refuses a second build of the same project at
// once, and test files build their own copies in parallel.
await vite.build({
  configFile: path.join(root, 'ui', 'vite.config.ts'),
  logLevel: 'warn',
  build: { outDir: path.resolve(values.outdir), emptyOutDir: true },
});
