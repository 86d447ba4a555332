import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { deviceConfig } from '../protocol/device-config.ts';
import { createLogger, parseLogLevel } from '../protocol/log.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';

const usage = 'usage: convoyd --config <dir>/device.json\n       convoyd enroll --server URL --token TOKEN --dir DIR [--id ID] [--mqtt-url mqtt://HOST:PORT] [--ca FILE | --ca-fingerprint SHA256]\n       convoyd renew --config <dir>/device.json [--force]';

/** `convoyd --config <dir>/device.json`: the device daemon (and `enroll`, `renew`). */
export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'enroll' || argv[0] === 'renew') {
    // Loaded only for these: the daemon never pays for node-forge.
    const { runIdentityCommand } = await import('./identity-command.ts');
    process.exit(await runIdentityCommand(argv[0], argv.slice(1), usage));
  }
  let configPath: string;
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return;
    }
    if (!values.config) throw new Error('--config is required');
    configPath = path.resolve(values.config);
  } catch (error) {
    process.stderr.write(`convoyd: ${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  const log = createLogger({ namespace: 'device', level: parseLogLevel(process.env.CONVOY_LOG_LEVEL) ?? 'info', write: (line) => process.stderr.write(line) });
  let config;
  try {
    config = parseWith(deviceConfig, parseJson(await fs.readFile(configPath, 'utf8'), 'device config'), 'device config');
  } catch (error) {
    process.stderr.write(`convoyd: cannot use ${configPath}: ${(error as Error).message}\n`);
    process.exit(2);
  }
  // Loaded only now: `--help` and a bad config answer without loading the daemon (mqtt, tuf-js, …).
  const { startDaemon } = await import('./daemon.ts');
  const daemon = await startDaemon({ config, configDir: path.dirname(configPath), log });
  const stop = () => {
    daemon.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

await main(process.argv.slice(2));
