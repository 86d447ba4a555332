import { CliError } from '../client.ts';
import { command, type Command } from '../command.ts';

/* `convoy admin`: server-side maintenance, run on the server's machine with its configuration. */

export const commands: Record<string, Command> = {
  'admin reset-token': command({
    usage: "convoy admin reset-token   (on the server's machine, with its CONVOY_* environment: revokes the admin's tokens, prints a new one once)",
    options: {},
    async run() {
      // Through the server's one entry point, like `convoy serve`.
      const { resetAdminToken, ConfigError } = await import('../../server/main.ts');
      await resetAdminToken().catch((error: unknown) => {
        throw error instanceof ConfigError ? new CliError(error.message) : error;
      });
    },
  }),
};
