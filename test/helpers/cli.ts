import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { convoyBin } from './device.ts';
import { adminToken } from './server.ts';

const exec = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `convoy` binary against `url`, as a user would: the admin token unless `token`
 * says otherwise (null: no token at all). CONVOY_RELEASE_VERSION from the test runner's own
 * environment is dropped unless `env` sets it, so no test depends on how the suite was started.
 */
export async function convoy(url: string, args: string[], options: { token?: string | null; env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, CONVOY_URL: url, ...options.env };
  const token = options.token === undefined ? adminToken : options.token;
  if (token) env.CONVOY_TOKEN = token;
  else delete env.CONVOY_TOKEN;
  if (!options.env || !('CONVOY_RELEASE_VERSION' in options.env)) delete env.CONVOY_RELEASE_VERSION;
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoyBin, ...args], { env, ...(options.cwd ? { cwd: options.cwd } : {}), maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
