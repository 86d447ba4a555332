import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

/*
 * The rooms meet only through their front doors (docs: ARCHITECTURE.md, "Rooms"). This reads the
 * import statements of every .ts file (static, re-exports, side-effect and dynamic `import()`),
 * resolves the relative ones to the room they land in, and fails on a door the map does not have:
 * - protocol/ imports nothing of ours (the pure contract);
 * - lib/ imports only protocol/;
 * - tuf/ imports only protocol/ and lib/ (no capability);
 * - certs/ imports tuf/, protocol/, lib/ (no capability);
 * - server/, device/ and cli/ never import each other's insides; the CLI starts the server only
 *   through its one entry point (server/main.ts).
 * - ui/ (the web app, run in a browser) imports only protocol/: it talks to the server over HTTP.
 * scripts/ and test/ may reach anywhere: they assemble the rooms.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const rooms = ['protocol', 'lib', 'tuf', 'certs', 'server', 'device', 'cli', 'ui'] as const;
type Room = (typeof rooms)[number];

/** Which other rooms each room may import. */
const allowed: Record<Room, readonly Room[]> = {
  protocol: [],
  lib: ['protocol'],
  tuf: ['protocol', 'lib'],
  certs: ['tuf', 'protocol', 'lib'],
  server: ['tuf', 'certs', 'protocol', 'lib'],
  device: ['tuf', 'certs', 'protocol', 'lib'],
  cli: ['tuf', 'certs', 'protocol', 'lib'],
  ui: ['protocol'],
};

/** Single files of another room that a room may import: the server's one entry point for the CLI. */
const frontDoors: Partial<Record<Room, readonly string[]>> = {
  cli: ['server/main.ts'],
};

function roomOf(file: string): Room | undefined {
  const first = file.split('/')[0];
  return (rooms as readonly string[]).includes(first!) ? (first as Room) : undefined;
}

/** Why `from` (a repo-relative file) must not import `to` (repo-relative), or undefined if it may. */
export function violation(from: string, to: string): string | undefined {
  const a = roomOf(from);
  const b = roomOf(to);
  if (!a || !b || a === b) return undefined;
  if (allowed[a].includes(b)) return undefined;
  if (frontDoors[a]?.includes(to)) return undefined;
  return `${from} imports ${to}: ${a}/ may import ${[...allowed[a], ...(frontDoors[a] ?? [])].join(', ') || 'nothing of ours'}`;
}

/** Module specifiers a source file names: import/export … from, side-effect imports, import(). */
export function specifiersOf(source: string): string[] {
  // Comments may quote imports (as this file does); strip them first, keeping string contents.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g, // import x from '…', export { y } from '…', import type …
    /\bimport\s*['"]([^'"]+)['"]/g, // import '…' (side effect)
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*[,)]/g, // import('…'), dynamic
    /\brequire\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g, // createRequire()'d require('…')
  ];
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) found.push(match[1]!);
  return found;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(c|m)?tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

test('every room imports only the rooms it may (protocol ← lib ← tuf ← certs ← server, device, cli)', (t) => {
  const problems: string[] = [];
  let checked = 0;
  for (const room of rooms) {
    if (!fs.existsSync(path.join(root, room))) continue;
    for (const file of sourceFiles(room)) {
      for (const specifier of specifiersOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
        if (!specifier.startsWith('.')) continue; // npm packages and node: builtins
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
        checked++;
        const why = violation(file, target);
        if (why) problems.push(why);
      }
    }
  }
  t.true(checked > 100, `read ${checked} imports: the scanner found the import statements`);
  t.deepEqual(problems, [], `imports across rooms that the map does not allow:\n${problems.join('\n')}`);
});

test('the scanner reads static, type-only, re-exported, side-effect and dynamic imports, not comments', (t) => {
  const source = [
    "import fs from 'node:fs';",
    "import type { A } from '../server/a.ts';",
    "import {\n  b,\n  c,\n} from '../device/b.ts';",
    "export { d } from './d.ts';",
    "export * from '../cli/e.ts';",
    "import '../lib/f.ts';",
    "const { g } = await import('../server/g.ts');",
    "const h = await import(`../device/h.ts`);",
    "// import { x } from '../server/commented.ts';",
    "/* import('../device/commented.ts') */",
    "const url = 'http://example.com/x'; // a URL is not a comment start inside a string",
  ].join('\n');
  t.deepEqual(specifiersOf(source).sort(), ['../cli/e.ts', '../device/b.ts', '../device/h.ts', '../lib/f.ts', '../server/a.ts', '../server/g.ts', './d.ts', 'node:fs'].sort());
});

const rules: [string, string, boolean][] = [
  ['protocol/api.ts', 'protocol/names.ts', true],
  ['protocol/api.ts', 'lib/files.ts', false],
  ['lib/files.ts', 'protocol/log.ts', true],
  ['lib/files.ts', 'tuf/keys.ts', false],
  ['tuf/client.ts', 'lib/files.ts', true],
  ['tuf/client.ts', 'device/errors.ts', false],
  ['tuf/repository.ts', 'server/trust/service.ts', false],
  ['certs/ceremony.ts', 'tuf/repository.ts', true],
  ['certs/ceremony.ts', 'server/trust/repository.ts', false],
  ['server/trust/service.ts', 'tuf/keys.ts', true],
  ['server/app.ts', 'device/state.ts', false],
  ['device/updater.ts', 'server/http/errors.ts', false],
  ['device/daemon.ts', 'cli/main.ts', false],
  ['cli/main.ts', 'server/main.ts', true],
  ['cli/main.ts', 'server/app.ts', false],
  ['cli/bundle-commands.ts', 'device/trust.ts', false],
  ['cli/bundle-commands.ts', 'tuf/client.ts', true],
  ['scripts/demo.ts', 'server/app.ts', true],
  ['ui/src/pages/version.tsx', 'protocol/api.ts', true],
  ['ui/src/api.ts', 'server/auth/policy.ts', false],
  ['ui/src/api.ts', 'lib/files.ts', false],
  ['test/unit/x.test.ts', 'device/state.ts', true],
];
for (const [from, to, ok] of rules) {
  test(`rule: ${from} → ${to} is ${ok ? 'allowed' : 'refused'}`, (t) => {
    t.is(violation(from, to) === undefined, ok);
  });
}
