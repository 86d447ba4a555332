import { UsageError } from '../client.ts';
import { command, type Command } from '../command.ts';

/* `convoy serve`: the server, started through its one entry point (an origin, or an edge node). */

export const commands: Record<string, Command> = {
  serve: command({
    usage: 'convoy serve [--mode origin|edge] [--upstream URL] [--https-port N --tls-names dns:NAME,ip:ADDR]   (configured by CONVOY_* environment variables; an edge also needs CONVOY_EDGE_TOKEN and CONVOY_UPSTREAM_ROOT; see the README)',
    options: { mode: { type: 'string' }, upstream: { type: 'string' }, 'https-port': { type: 'string' }, 'tls-names': { type: 'string' } },
    async run({ flags, env }) {
      // Flags win over the environment (CONVOY_MODE, CONVOY_UPSTREAM_URL), as a command line should.
      const mode = flags.mode ?? env.CONVOY_MODE ?? 'origin';
      if (mode !== 'origin' && mode !== 'edge') throw new UsageError(`--mode must be origin or edge, got "${mode}"`);
      if (flags.upstream !== undefined && mode !== 'edge') throw new UsageError('--upstream is for --mode edge');
      if (flags['tls-names'] !== undefined && mode !== 'edge') throw new UsageError('--tls-names is for --mode edge (an origin names its certificate with convoy ca init)');
      const { serve } = await import('../../server/main.ts');
      await serve({
        ...env,
        CONVOY_MODE: mode,
        ...(flags.upstream !== undefined ? { CONVOY_UPSTREAM_URL: flags.upstream } : {}),
        // An edge's HTTPS for enrolled devices (docs/replication.md, "Edges with TLS").
        ...(flags['https-port'] !== undefined ? { CONVOY_HTTPS_PORT: flags['https-port'] } : {}),
        ...(flags['tls-names'] !== undefined ? { CONVOY_EDGE_TLS_NAMES: flags['tls-names'] } : {}),
      });
    },
  }),
};
