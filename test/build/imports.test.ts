import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

/*
 * What keeps the built programs small (scripts/bench/footprint). zod is imported as a namespace
 * (`import * as z from 'zod'`), so esbuild keeps only what is used: a single `import { z } from
 * 'zod'` anywhere in a bundle brings the whole of zod with every locale back (the shared chunk
 * that every `convoy` command and convoyd load went from 485 KB to 131 KB without it, and
 * convoyd's RSS at import from +7.2 to +4.7 MiB). Type-only imports are erased and fine.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bundled = ['protocol', 'lib', 'tuf', 'certs', 'server', 'device', 'cli'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

test("the bundled rooms import zod as a namespace, never `{ z }` (tree-shaking)", (t) => {
  const offenders = bundled
    .filter((room) => fs.existsSync(path.join(root, room)))
    .flatMap((room) => sources(path.join(root, room)))
    .filter((file) => /^\s*import\s+\{[^}]*\bz\b[^}]*\}\s+from\s+['"]zod(\/[^'"]*)?['"]/m.test(fs.readFileSync(file, 'utf8')))
    .map((file) => path.relative(root, file));
  t.deepEqual(offenders, [], `use \`import * as z from 'zod'\` (or \`import type { z }\`) in: ${offenders.join(', ')}`);
});
