import { spawn } from 'node:child_process';
import type { Logger } from '../protocol/log.ts';

/**
 * Runs one external program for the daemon (a state hook, a health check, an update module's
 * command) with a hard timeout. The program gets a process group of its own, so on timeout the
 * whole group is killed: a health check that started a shell which started a `sleep` must not
 * outlive its verdict. Output is logged line by line (bounded), never interpreted.
 */
export interface CommandResult {
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last bytes of stdout and stderr, for the report. */
  tail: string;
}

const maxTail = 2000;

export async function runCommand(
  argv: readonly string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs: number; log: Logger; what: string },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    let tail = '';
    let timedOut = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      tail = (tail + text).slice(-maxTail);
      for (const line of text.split('\n')) if (line.trim()) options.log.info(`${options.what}: ${line.slice(0, 500)}`);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ ok: false, code: null, signal: null, timedOut: false, tail: `cannot run ${argv[0]}: ${error.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Children the program left behind belong to its group: end them with it.
      if (!timedOut) killGroup();
      resolve({ ok: code === 0 && !timedOut, code, signal, timedOut, tail });
    });
  });
}

/** One line that says how a command ended, for reports. */
export function describeResult(what: string, result: CommandResult, timeoutMs: number): string {
  if (result.timedOut) return `${what} did not finish within ${timeoutMs} ms`;
  if (result.code === null && result.signal === null) return `${what} could not run: ${result.tail}`;
  const end = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
  const last = result.tail.trim().split('\n').pop()?.slice(0, 300);
  return `${what} ${end}${last ? `: ${last}` : ''}`;
}
