import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { openTrustClient } from '../tuf/client.ts';
import { artifact, bumpKinds, bundleVersion, nextVersion, packageFormat, patchArtifactRequest, type Artifact } from '../protocol/api.ts';
import { silentLogger } from '../protocol/log.ts';
import { bundleManifest, maxManifestBytes } from '../protocol/manifest.ts';
import { artifactName, artifactType, bundleName, version as versionSchema } from '../protocol/names.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { artifactTargetPath, manifestTargetPath } from '../protocol/targets.ts';
import { CliError, type ApiClient } from './client.ts';
import { printJsonOr, printList } from './output.ts';
import { parseReleaseArg, releaseVersionVariable } from './release.ts';

/*
 * Commands for the contents of a release: the version variable (`version next`), copies, the
 * artifact CRUD beyond push/list, and the consumer's checks (`bundle verify`, `bundle diff`).
 */

type Flags = Record<string, string | boolean | undefined>;
interface Command {
  usage: string;
  options: Record<string, { type: 'string' | 'boolean' }>;
  run(args: { positionals: string[]; flags: Flags; api: () => ApiClient }): Promise<void>;
}

const json = { json: { type: 'boolean' } } as const;
const enc = encodeURIComponent;
const versionPath = (r: { bundle: string; version: string }) => `/api/v1/bundles/${enc(r.bundle)}/versions/${enc(r.version)}`;

function need<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new CliError(`${what}: ${value === undefined ? 'missing' : result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

/** `--format`, `--package-name`, `--package-version`, `--arch` as the upload route's query. */
export function packageQuery(flags: Flags): Record<string, string> {
  const query: Record<string, string> = {};
  if (typeof flags.format === 'string') query.format = need(packageFormat, flags.format, '--format');
  else if (flags['package-name'] || flags['package-version'] || flags.arch) throw new CliError('--package-name, --package-version and --arch need --format deb|rpm|npm|generic');
  if (typeof flags['package-name'] === 'string') query.package_name = flags['package-name'];
  if (typeof flags['package-version'] === 'string') query.package_version = flags['package-version'];
  if (typeof flags.arch === 'string') query.architecture = flags.arch;
  return query;
}

async function hashFile(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

// ---- verify: a pure comparison inside a thin shell ---------------------------------------------

export interface ExpectedFile {
  name: string;
  size: number;
  sha256: string;
}
export type Held = { name: string; size: number; sha256: string };
export type Mismatch =
  | { type: 'missing'; name: string }
  | { type: 'size'; name: string; expected: number; actual: number }
  | { type: 'digest'; name: string; expected: string; actual: string }
  | { type: 'extra'; name: string }
  | { type: 'unsigned'; name: string; detail: string };

/** What differs between the signed list and the files held. Pure: tested by table. */
export function compareFiles(expected: readonly ExpectedFile[], held: readonly Held[]): Mismatch[] {
  const byName = new Map(held.map((file) => [file.name, file]));
  const mismatches: Mismatch[] = [];
  for (const want of expected) {
    const have = byName.get(want.name);
    if (!have) mismatches.push({ type: 'missing', name: want.name });
    else if (have.size !== want.size) mismatches.push({ type: 'size', name: want.name, expected: want.size, actual: have.size });
    else if (have.sha256 !== want.sha256) mismatches.push({ type: 'digest', name: want.name, expected: `sha256:${want.sha256}`, actual: `sha256:${have.sha256}` });
    byName.delete(want.name);
  }
  for (const name of [...byName.keys()].sort()) mismatches.push({ type: 'extra', name });
  return mismatches;
}

export function describeMismatch(m: Mismatch): string {
  switch (m.type) {
    case 'missing':
      return `missing   ${m.name}: signed in the release, not in the directory`;
    case 'size':
      return `changed   ${m.name}: ${m.actual} bytes, signed as ${m.expected}`;
    case 'digest':
      return `changed   ${m.name}: hashes to ${m.actual}, signed as ${m.expected}`;
    case 'extra':
      return `extra     ${m.name}: in the directory, not in the release`;
    case 'unsigned':
      return `unsigned  ${m.name}: ${m.detail}`;
  }
}

async function verifyRelease(options: { client: ApiClient; token: string; bundle: string; version: string; dir: string; rootFile: string }): Promise<{ expected: ExpectedFile[]; mismatches: Mismatch[] }> {
  const metadataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-verify-'));
  try {
    // A fresh metadata dir seeded with the pinned root: only what chains to it is believed.
    const trust = await openTrustClient({ metadataDir, goodDir: path.join(metadataDir, 'good'), log: silentLogger, pinnedRootFile: options.rootFile, serverUrl: options.client.baseUrl, token: options.token, timeoutMs: 30_000 });
    try {
      await trust.refresh();
    } catch (error) {
      throw new CliError(`the signed metadata does not verify against the pinned root ${options.rootFile}: ${(error as Error).message}`, 'untrusted_metadata');
    }
    const manifestPath = manifestTargetPath(options.bundle, options.version);
    const manifestInfo = await trust.targetInfo(manifestPath);
    if (!manifestInfo) throw new CliError(`${options.bundle}@${options.version} is not in the signed metadata (not approved, or unknown)`, 'not_found');
    const sha256 = manifestInfo.hashes.sha256;
    if (!sha256 || manifestInfo.length > maxManifestBytes) throw new CliError('the signed manifest entry has no sha256 or is too large', 'untrusted_metadata');
    const url = `${options.client.baseUrl}/tuf/targets/${options.bundle}/${options.version}/${sha256}.manifest.json`;
    const response = await fetch(url, { headers: { authorization: `Bearer ${options.token}` } });
    if (!response.ok) throw new CliError(`GET ${new URL(url).pathname} answered ${response.status}`, 'download_failed');
    const bytes = Buffer.from(await response.arrayBuffer());
    if (bytes.length !== manifestInfo.length || createHash('sha256').update(bytes).digest('hex') !== sha256) {
      throw new CliError('the manifest served does not match its signed length and hash', 'untrusted_metadata');
    }
    const manifest = parseWith(bundleManifest, parseJson(bytes.toString('utf8'), 'manifest'), 'manifest', 'untrusted_metadata');
    if (manifest.bundle !== options.bundle || manifest.version !== options.version) throw new CliError('the signed manifest names another release', 'untrusted_metadata');

    const expected: ExpectedFile[] = [];
    const unsigned: Mismatch[] = [];
    for (const entry of manifest.artifacts) {
      const info = await trust.targetInfo(artifactTargetPath(options.bundle, options.version, entry.name));
      if (!info?.hashes.sha256) unsigned.push({ type: 'unsigned', name: entry.name, detail: 'listed in the manifest but not a signed target' });
      else if (`sha256:${info.hashes.sha256}` !== entry.digest || info.length !== entry.size) unsigned.push({ type: 'unsigned', name: entry.name, detail: 'the manifest and the signed target disagree' });
      else expected.push({ name: entry.name, size: info.length, sha256: info.hashes.sha256 });
    }
    const held: Held[] = [];
    for (const dirent of await fs.readdir(options.dir, { withFileTypes: true })) {
      if (!dirent.isFile()) continue;
      const { digest, size } = await hashFile(path.join(options.dir, dirent.name));
      held.push({ name: dirent.name, size, sha256: digest.slice('sha256:'.length) });
    }
    // Names in `unsigned` are reported once, as unsigned, not again as extra.
    const mismatches = [...unsigned, ...compareFiles(expected, held.filter((h) => !unsigned.some((u) => u.name === h.name)))];
    return { expected, mismatches };
  } finally {
    await fs.rm(metadataDir, { recursive: true, force: true });
  }
}

// ---- diff --------------------------------------------------------------------------------------

export interface ReleaseDiff {
  added: Artifact[];
  removed: Artifact[];
  changed: { name: string; from: Artifact; to: Artifact; fields: string[] }[];
}

/** What changed from one artifact list to another, by name. Pure. */
export function diffArtifacts(from: readonly Artifact[], to: readonly Artifact[]): ReleaseDiff {
  const before = new Map(from.map((a) => [a.name, a]));
  const after = new Map(to.map((a) => [a.name, a]));
  const diff: ReleaseDiff = { added: [], removed: [], changed: [] };
  for (const [name, a] of after) if (!before.has(name)) diff.added.push(a);
  for (const [name, a] of before) if (!after.has(name)) diff.removed.push(a);
  for (const [name, a] of before) {
    const b = after.get(name);
    if (!b) continue;
    const fields = (['type', 'digest', 'size'] as const).filter((f) => a[f] !== b[f]);
    if (JSON.stringify(a.package) !== JSON.stringify(b.package)) fields.push('package' as never);
    if (fields.length > 0) diff.changed.push({ name, from: a, to: b, fields });
  }
  return diff;
}

const short = (digest: string) => digest.slice(0, 'sha256:'.length + 12);

// ---- the commands --------------------------------------------------------------------------------

export const bundleCommands: Record<string, Command> = {
  'version next': {
    usage: `convoy version next NAME --bump major|minor|patch|prerelease [--preid rc] [--dotenv] [--json]   (--dotenv prints ${releaseVersionVariable}=X.Y.Z)`,
    options: { bump: { type: 'string' }, preid: { type: 'string' }, dotenv: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const bump = need(z.enum(bumpKinds), flags.bump, '--bump');
      const query = new URLSearchParams({ bump, ...(typeof flags.preid === 'string' ? { preid: flags.preid } : {}) });
      const next = await api().request('GET', `/api/v1/bundles/${enc(name)}/versions/next?${query}`, { schema: nextVersion });
      if (flags.dotenv) process.stdout.write(`${releaseVersionVariable}=${next.version}\n`);
      else printJsonOr(next, flags.json === true, next.version);
    },
  },
  'bundle copy': {
    usage: 'convoy bundle copy NAME@VERSION --to NEW_VERSION [--json]   (a new draft holding the same artifacts)',
    options: { to: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const from = parseReleaseArg(positionals[0]);
      const to = need(versionSchema, flags.to, '--to');
      const created = await api().request('POST', `/api/v1/bundles/${enc(from.bundle)}/versions`, { json: { version: to, copyFrom: from.version }, schema: bundleVersion });
      printJsonOr(created, flags.json === true, `created draft ${from.bundle}@${to} from ${from.bundle}@${from.version}`);
    },
  },
  'bundle verify': {
    usage: 'convoy bundle verify NAME@VERSION --dir DIR --root ROOT.json [--json]   (checks the files in DIR against the signed metadata, trusting only ROOT.json)',
    options: { dir: { type: 'string' }, root: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = parseReleaseArg(positionals[0]);
      if (typeof flags.dir !== 'string') throw new CliError('--dir DIR is required: the directory holding the files to check');
      if (typeof flags.root !== 'string') throw new CliError('--root ROOT.json is required: the TUF root you trust (e.g. the root.json written by `convoy device add`, or 1.root.json obtained out of band)');
      const dirStat = await fs.stat(flags.dir).catch(() => undefined);
      if (!dirStat?.isDirectory()) throw new CliError(`${flags.dir} is not a directory`);
      const client = api();
      const { expected, mismatches } = await verifyRelease({ client, token: process.env.CONVOY_TOKEN ?? '', bundle: r.bundle, version: r.version, dir: flags.dir, rootFile: flags.root });
      if (flags.json) process.stdout.write(JSON.stringify({ release: r, verified: mismatches.length === 0, files: expected.length, mismatches }, null, 2) + '\n');
      else for (const m of mismatches) process.stdout.write(describeMismatch(m) + '\n');
      if (mismatches.length > 0) throw new CliError(`${mismatches.length} mismatch${mismatches.length === 1 ? '' : 'es'} against the signed ${r.bundle}@${r.version}`, 'verify_failed');
      if (!flags.json) process.stdout.write(`verified ${expected.length} file${expected.length === 1 ? '' : 's'} of ${r.bundle}@${r.version} against the signed metadata\n`);
    },
  },
  'bundle diff': {
    usage: 'convoy bundle diff NAME@A NAME@B [--json]   (what was added, removed and changed from A to B)',
    options: json,
    async run({ positionals, flags, api }) {
      const a = parseReleaseArg(positionals[0]);
      const b = parseReleaseArg(positionals[1]);
      const client = api();
      const diff = diffArtifacts(await client.requestAll(`${versionPath(a)}/artifacts`, artifact), await client.requestAll(`${versionPath(b)}/artifacts`, artifact));
      if (flags.json) {
        process.stdout.write(JSON.stringify(diff, null, 2) + '\n');
        return;
      }
      const lines = [
        ...diff.added.map((x) => `+ ${x.name}  ${x.type}  ${x.size}  ${short(x.digest)}`),
        ...diff.removed.map((x) => `- ${x.name}  ${x.type}  ${x.size}  ${short(x.digest)}`),
        ...diff.changed.map((c) => `~ ${c.name}  ${c.fields.map((f) => (f === 'digest' ? `${short(c.from.digest)} → ${short(c.to.digest)}` : f === 'package' ? `package ${c.from.package?.version ?? '-'} → ${c.to.package?.version ?? '-'}` : `${f} ${String(c.from[f as 'type'])} → ${String(c.to[f as 'type'])}`)).join(', ')}`),
      ];
      process.stdout.write((lines.length ? lines.join('\n') : `no difference between ${a.bundle}@${a.version} and ${b.bundle}@${b.version}`) + '\n');
    },
  },
  'artifact show': {
    usage: 'convoy artifact show NAME@VERSION ARTIFACT [--json]',
    options: json,
    async run({ positionals, flags, api }) {
      const r = parseReleaseArg(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      const found = await api().request('GET', `${versionPath(r)}/artifacts/${enc(name)}`, { schema: artifact });
      printList([found], [
        { header: 'NAME', value: (x) => x.name },
        { header: 'TYPE', value: (x) => x.type },
        { header: 'PACKAGE', value: (x) => (x.package ? `${x.package.format} ${x.package.name} ${x.package.version} ${x.package.architecture}` : '-') },
        { header: 'SIZE', value: (x) => String(x.size) },
        { header: 'DIGEST', value: (x) => x.digest },
      ], flags.json === true);
    },
  },
  'artifact update': {
    usage: 'convoy artifact update NAME@VERSION ARTIFACT [--type T] [--format F [--package-name N] [--package-version V] [--arch A]] [--json]   (new bytes: artifact push again)',
    options: { type: { type: 'string' }, format: { type: 'string' }, 'package-name': { type: 'string' }, 'package-version': { type: 'string' }, arch: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = parseReleaseArg(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      const pkg = packageQuery(flags);
      const patch = {
        ...(typeof flags.type === 'string' ? { type: need(artifactType, flags.type, '--type') } : {}),
        ...(pkg.format ? { package: { format: pkg.format, ...(pkg.package_name ? { name: pkg.package_name } : {}), ...(pkg.package_version ? { version: pkg.package_version } : {}), ...(pkg.architecture ? { architecture: pkg.architecture } : {}) } } : {}),
      };
      need(patchArtifactRequest, patch, 'update');
      const updated = await api().request('PATCH', `${versionPath(r)}/artifacts/${enc(name)}`, { json: patch, schema: artifact });
      printJsonOr(updated, flags.json === true, `updated ${name} in ${r.bundle}@${r.version}`);
    },
  },
  'artifact delete': {
    usage: 'convoy artifact delete NAME@VERSION ARTIFACT',
    options: {},
    async run({ positionals, api }) {
      const r = parseReleaseArg(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      await api().send('DELETE', `${versionPath(r)}/artifacts/${enc(name)}`);
      process.stdout.write(`removed ${name} from ${r.bundle}@${r.version}\n`);
    },
  },
};
