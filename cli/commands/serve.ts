import { command, type Command } from '../command.ts';

/* `convoy serve`: the server, started through its one entry point. */

export const commands: Record<string, Command> = {
  serve: command({
    usage: 'convoy serve   (configured by CONVOY_* environment variables; see the README)',
    options: {},
    async run() {
      const { serve } = await import('../../server/main.ts');
      await serve();
    },
  }),
};
