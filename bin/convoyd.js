#!/usr/bin/env node
// Runs the JavaScript that `npm ci` built into dist/ (the prepare script, scripts/build.js) with
// plain node: no transpiler at start-up, which on a device is most of the start time and a third
// of the memory. Tests and development run the TypeScript sources (test/helpers/bin/).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/convoyd.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('convoyd: the built program is missing (dist/convoyd.js): run `npm run build`\n');
  process.exit(1);
}
await import(entry.href);
