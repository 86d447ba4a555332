import { startServer } from './app.ts';
import { ConfigError, loadServerConfig } from './config.ts';

/** `convoy serve` / `npm start`: runs the origin server until SIGINT or SIGTERM. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadServerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`convoy: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const server = await startServer(config);
  process.stdout.write(`Convoy is serving the API at ${server.url} and MQTT on port ${server.mqttPort}\n`);
  if (server.generatedAdminToken) {
    // Shown once, to the operator's terminal; only its hash is stored.
    process.stdout.write(
      `\nCreated the admin user with this access token (it is not shown again; store it now):\n\n  ${server.generatedAdminToken}\n\n` +
        `  export CONVOY_URL=${server.url} CONVOY_TOKEN=<the token above>\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`convoy: ${signal} received, shutting down\n`);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
