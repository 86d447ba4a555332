#!/usr/bin/env -S node --max-semi-space-size=1
// Runs the JavaScript that `npm ci` built into dist/ (the prepare script, scripts/build.js) with
// plain node: no transpiler at start-up. Tests and development run the TypeScript sources
// instead (test/helpers/bin/, `npm run dev:convoy`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/convoy.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('convoy: the built program is missing (dist/convoy.js): run `npm run build`\n');
  process.exit(1);
}
await import(entry.href);
