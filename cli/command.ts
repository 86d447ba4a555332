import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { z } from 'zod';
import { CliError, UsageError, type ApiClient } from './client.ts';

export { CliError, UsageError };

export { parseReleaseArg as release, releaseVersionVariable, versionFlag } from './release.ts';

/*
 * The one command helper every `cli/commands/<noun>.ts` builds on: typed flags, `need` for
 * required values, the release parser, the file hash. One copy, so commands cannot drift apart
 * in how they read their arguments or what exit code a mistake gets.
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
}
export type Options = Record<string, OptionSpec>;

type FlagValue<T extends OptionSpec> = T['type'] extends 'boolean' ? boolean | undefined : T['multiple'] extends true ? string[] | undefined : string | undefined;
export type Flags<O extends Options> = { [K in keyof O]: FlagValue<O[K]> };

export interface CommandContext<O extends Options> {
  positionals: string[];
  flags: Flags<O>;
  /** The REST client, created on first use (commands that work offline never need a token). */
  api: () => ApiClient;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  usage: string;
  options: Options;
  run(context: CommandContext<Options>): Promise<void>;
}

/** Declares a command; its `run` sees flags typed from its own options. */
export function command<const O extends Options>(spec: { usage: string; options: O; run(context: CommandContext<O>): Promise<void> }): Command {
  return spec as unknown as Command;
}

export const json = { json: { type: 'boolean' } } as const;
export const packageOptions = { format: { type: 'string' }, 'package-name': { type: 'string' }, 'package-version': { type: 'string' }, arch: { type: 'string' } } as const;

/**
 * A value checked by the schema the server uses. Absent: a usage error (exit 2); present but
 * invalid: a plain error naming the flag (exit 1).
 */
export function need<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  if (value === undefined) throw new UsageError(`${what}: missing`);
  const result = schema.safeParse(value);
  if (!result.success) throw new CliError(`${what}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

/** A required string flag or argument that no schema describes (a path, a reason). */
export function needText(value: unknown, what: string, why = ''): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`${what} is required${why ? `: ${why}` : ''}`);
  return value;
}

/** A small whole number flag (key counts, thresholds): 1 to 99. */
export function count(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^[1-9][0-9]?$/.test(value)) throw new CliError(`${what} must be a whole number from 1 to 99, got "${String(value)}"`);
  return Number(value);
}

export const enc = encodeURIComponent;
export const versionPath = (r: { bundle: string; version: string }) => `/api/v1/bundles/${enc(r.bundle)}/versions/${enc(r.version)}`;

/** sha256 and size of a file, streamed (files may be gigabytes). */
export async function hashFile(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** `--format`, `--package-name`, `--package-version`, `--arch` as the upload route's query. */
export function packageQuery(flags: Partial<Flags<typeof packageOptions>>, format: z.ZodType<string>): Record<string, string> {
  const query: Record<string, string> = {};
  if (typeof flags.format === 'string') query.format = need(format, flags.format, '--format');
  else if (flags['package-name'] || flags['package-version'] || flags.arch) throw new UsageError('--package-name, --package-version and --arch need --format deb|rpm|npm|generic');
  if (typeof flags['package-name'] === 'string') query.package_name = flags['package-name'];
  if (typeof flags['package-version'] === 'string') query.package_version = flags['package-version'];
  if (typeof flags.arch === 'string') query.architecture = flags.arch;
  return query;
}

/**
 * The server's messages name its API (`?format=`, `package.name`, `per_page`); the CLI user typed
 * flags. Rewrites the API's names to the flags that set them, longest first so `package.name`
 * is not half-rewritten by a shorter rule.
 */
const apiTerms: [RegExp, string][] = [
  [/\?format=/g, '--format '],
  [/\bformat=(?=deb|rpm|npm|generic)/g, '--format '],
  [/\bpackage[._]name\b/g, '--package-name'],
  [/\bpackage[._]version\b/g, '--package-version'],
  [/\bpackage[._]architecture\b/g, '--arch'],
  [/(^|[\s"(,])architecture(?=:| and| need| or|,)/g, '$1--arch'],
  [/\bper_page\b/g, '--per-page'],
  [/\?type=/g, '--type '],
  [/\binvalid query string: (\w+):/g, 'invalid --$1:'],
];
export function inCliTerms(message: string): string {
  return apiTerms.reduce((text, [pattern, replacement]) => text.replace(pattern, replacement), message);
}
