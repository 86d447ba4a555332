import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { convoyBin, convoydBin } from './device.ts';

/*
 * Running a guide as written: the shell blocks of a document marked `<!-- walk: NAME … -->` are
 * run by bash (`-euo pipefail`) with `convoy` and `convoyd` on the PATH, as a reader would type
 * them. The tests replace only what cannot be real here (host names, /etc paths) before running.
 */

const exec = promisify(execFile);

/** The `sh` block marked `<!-- walk: NAME -->` (or `<!-- walk: NAME anything -->`) in `doc`. */
export async function walkBlock(doc: string, name: string): Promise<string> {
  const text = await fs.readFile(doc, 'utf8');
  const match = new RegExp(`<!-- walk: ${name}( [^>]*)? -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``).exec(text);
  if (!match) throw new Error(`${path.basename(doc)} has no "walk: ${name}" block`);
  return match[2]!;
}

/** A folder with `convoy` and `convoyd` wrappers running the sources, to put first on the PATH. */
export async function walkBin(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  for (const [name, target] of [['convoy', convoyBin], ['convoyd', convoydBin]] as const) {
    await fs.writeFile(path.join(bin, name), `#!/bin/sh\nexec "${process.execPath}" "${target}" "$@"\n`, { mode: 0o755 });
  }
  return bin;
}

export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a script to its end; a script still running after `timeoutMs` is killed and fails. */
export async function runShell(script: string, options: { cwd: string; env: Record<string, string | undefined>; timeoutMs?: number }): Promise<ShellResult> {
  try {
    const { stdout, stderr } = await exec('bash', ['-euo', 'pipefail', '-c', script], { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 120_000, killSignal: 'SIGKILL' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; stdout: string; stderr: string };
    return { code: e.code ?? 1, stdout: e.stdout, stderr: e.stderr };
  }
}

export interface LongShell {
  process: ChildProcess;
  output: string[];
  /** Ctrl-C to the script's whole process group (bash, npm, node), then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** Starts a script whose last command runs until stopped; resolves once its stdout says `ready`. */
export async function startShell(script: string, options: { cwd: string; env: Record<string, string | undefined>; ready: string }): Promise<LongShell> {
  // Its own process group, so stop() reaches every process the script started.
  const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const output: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, name);
      } catch {
        // The group is gone already.
      }
    };
    signal('SIGINT');
    const timer = setTimeout(() => signal('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output.push(chunk.toString('utf8'));
      if (output.join('').includes(options.ready)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the script exited with ${code} before it was ready: ${output.join('')}`)));
  });
  return { process: child, output, stop };
}
