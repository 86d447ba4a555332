/**
 * A minimal structured logger. It formats; the caller decides where lines go (stderr in the
 * programs, an array in tests), so protocol/ stays free of I/O. Never pass a secret in `fields`:
 * tokens and keys are redacted by name as a last line of defence, not as the plan.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(namespace: string): Logger;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const secretField = /token|password|secret|private|authorization/i;

export interface LoggerOptions {
  namespace: string;
  level?: LogLevel;
  write: (line: string) => void;
  now?: () => Date;
}

export function createLogger(options: LoggerOptions): Logger {
  const min = order[options.level ?? 'info'];
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (order[level] < min) return;
    const safe: LogFields = {};
    for (const [key, value] of Object.entries(fields ?? {})) {
      safe[key] = secretField.test(key) ? '[redacted]' : value instanceof Error ? value.message : value;
    }
    options.write(JSON.stringify({ time: now().toISOString(), level, ns: options.namespace, msg: message, ...safe }) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (ns) => createLogger({ ...options, namespace: `${options.namespace}:${ns}` }),
  };
}

/** For tests and libraries that want silence. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  return value === 'debug' || value === 'info' || value === 'warn' || value === 'error' ? value : undefined;
}
