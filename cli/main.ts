import { parseArgs } from 'node:util';
import type { ApiClient } from './client.ts';
import type { Command } from './command.ts';

/*
 * `convoy`, the operator's command line over the REST API: a small dispatcher. Each noun's
 * commands live in cli/commands/<noun>.ts and only the module of the command being run is
 * imported, so `convoy bundle list` pays neither for the key ceremony nor for tuf-js.
 */

type Module = { commands: Record<string, Command> };
const nouns: Record<string, () => Promise<Module>> = {
  bundle: () => import('./commands/bundle.ts'),
  version: () => import('./commands/version.ts'),
  artifact: () => import('./commands/artifact.ts'),
  deploy: () => import('./commands/deploy.ts'),
  deployment: () => import('./commands/deployment.ts'),
  device: () => import('./commands/device.ts'),
  group: () => import('./commands/group.ts'),
  keys: () => import('./commands/keys.ts'),
  user: () => import('./commands/user.ts'),
  member: () => import('./commands/member.ts'),
  token: () => import('./commands/token.ts'),
  audit: () => import('./commands/audit.ts'),
  admin: () => import('./commands/admin.ts'),
  serve: () => import('./commands/serve.ts'),
  edge: () => import('./commands/edge.ts'),
  registry: () => import('./commands/registry.ts'),
  replication: () => import('./commands/replication.ts'),
  ca: () => import('./commands/ca.ts'),
  broker: () => import('./commands/broker.ts'),
};

const environment = 'environment: CONVOY_URL (default http://127.0.0.1:8080), CONVOY_TOKEN (an access token), CONVOY_RELEASE_VERSION (the version when a command is given NAME alone)';

async function help(only?: string): Promise<string> {
  const modules = await Promise.all(Object.entries(nouns).filter(([noun]) => !only || noun === only).map(([, load]) => load()));
  const usages = modules.flatMap((m) => Object.values(m.commands).map((c) => `  ${c.usage}`));
  return [only ? `usage: convoy ${only} <command> [arguments]` : 'usage: convoy <command> [arguments]', '', 'commands:', ...usages, '', environment].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const { print, printErr, escapeControl } = await import('./output.ts');
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    print(await help());
    return argv.length === 0 ? 2 : 0;
  }
  const noun = argv[0]!;
  const load = nouns[noun];
  if (!load) {
    printErr(`convoy: unknown command "${escapeControl(noun)}"\n\n${await help()}`);
    return 2;
  }
  const { commands } = await load();
  const twoWords = `${noun} ${argv[1] ?? ''}`;
  // Three words first (`replication policy create`, `replication run show`), then two, then one.
  const threeWords = `${twoWords} ${argv[2] ?? ''}`;
  const [key, rest] = commands[threeWords] ? [threeWords, argv.slice(3)] : commands[twoWords] ? [twoWords, argv.slice(2)] : [noun, argv.slice(1)];
  const command = commands[key];
  if (!command) {
    // `convoy version`, `convoy version --help`: the noun's commands. A wrong verb: the same, exit 2.
    const asked = argv[1] === undefined || argv[1] === '--help' || argv[1] === '-h' || argv[1] === 'help';
    if (!asked) printErr(`convoy: unknown command "${escapeControl(twoWords.trim())}"\n`);
    (asked && argv[1] !== undefined ? print : printErr)(await help(noun));
    return asked && argv[1] !== undefined ? 0 : 2;
  }
  const { CliError, UsageError } = await import('./client.ts');
  try {
    const { values, positionals } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if (values.help) {
      print(`usage: ${command.usage}`);
      return 0;
    }
    let client: ApiClient | undefined;
    const { createApiClient } = await import('./client.ts');
    const { help: _help, ...flags } = values;
    await command.run({ positionals, flags, env: process.env, api: () => (client ??= createApiClient(process.env)) });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      printErr(`convoy: ${escapeControl(error.message)}\nusage: ${command.usage}`);
      return 2;
    }
    if (error instanceof CliError) {
      const { inCliTerms } = await import('./command.ts');
      // Messages from the server name its API; say them in the CLI's flags.
      const message = error.status !== undefined ? inCliTerms(error.message) : error.message;
      printErr(`convoy: ${escapeControl(message)}${error.code ? ` (${escapeControl(error.code)})` : ''}`);
      return 1;
    }
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      printErr(`convoy: ${escapeControl((error as Error).message)}\nusage: ${command.usage}`);
      return 2;
    }
    throw error;
  }
}

const code = await main(process.argv.slice(2));
// `serve` keeps running; every other command ends here.
if (!(process.argv[2] === 'serve' && code === 0)) process.exit(code);
