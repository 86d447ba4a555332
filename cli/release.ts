import { bundleName, parseRelease, version as versionSchema } from '../protocol/names.ts';
import { CliError, UsageError } from './client.ts';

/**
 * The version variable: every command that takes a version falls back to CONVOY_RELEASE_VERSION,
 * the way CI jobs carry one version through all their steps (`convoy version next … --dotenv`
 * writes it). An explicit version always wins.
 */
export const releaseVersionVariable = 'CONVOY_RELEASE_VERSION';

export function versionFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const raw = env[releaseVersionVariable];
  if (raw === undefined || raw === '') return undefined;
  const parsed = versionSchema.safeParse(raw);
  if (!parsed.success) throw new CliError(`${releaseVersionVariable}="${raw}" is not a version: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** `NAME@VERSION`, or `NAME` with the version from CONVOY_RELEASE_VERSION. */
export function parseReleaseArg(text: string | undefined, env: NodeJS.ProcessEnv = process.env): { bundle: string; version: string } {
  if (text && !text.includes('@') && bundleName.safeParse(text).success) {
    const fromEnv = versionFromEnv(env);
    if (fromEnv) return { bundle: text, version: fromEnv };
    throw new CliError(`no version for ${text}: write ${text}@VERSION or set ${releaseVersionVariable}`);
  }
  if (text === undefined) throw new UsageError(`NAME@VERSION: missing (such as pos-app@1.2.0, or NAME with ${releaseVersionVariable} set)`);
  const parsed = parseRelease(text);
  if (!parsed) throw new CliError(`expected NAME@VERSION such as pos-app@1.2.0 (or NAME with ${releaseVersionVariable} set), got "${text ?? ''}"`);
  return parsed;
}

/** A `--version` flag, or the variable. */
export function versionFlag(flag: unknown, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof flag === 'string') {
    const parsed = versionSchema.safeParse(flag);
    if (!parsed.success) throw new CliError(`--version: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }
  const fromEnv = versionFromEnv(env);
  if (!fromEnv) throw new CliError(`--version: missing (give --version or set ${releaseVersionVariable})`);
  return fromEnv;
}
