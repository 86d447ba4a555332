import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { accessToken, auditEvent, auditOutcome, createdToken, member, role, scope, user, userName } from '../protocol/access.ts';
import { artifact, bundle, bundleVersion, deployment, device, deviceRegistration, listOf } from '../protocol/api.ts';
import { deviceConfigSchemaId, type DeviceConfigInput } from '../protocol/device-config.ts';
import { artifactName, artifactType, bundleName, deviceId, groupName } from '../protocol/names.ts';
import { writeFileAtomic } from '../lib/files.ts';
import { CliError, createApiClient, type ApiClient, type RequestBody } from './client.ts';
import { bundleCommands, packageQuery } from './bundle-commands.ts';
import { printJsonOr, printList } from './output.ts';
import { parseReleaseArg, versionFlag } from './release.ts';
import { allowRollback, trustCommands } from './trust.ts';

/*
 * `convoy`, the operator's command line over the REST API. Each command validates its arguments
 * with the same schemas the server uses, so most mistakes are caught before a request is sent.
 */

type Flags = Record<string, string | boolean | undefined>;
interface Command {
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;
  run(args: { positionals: string[]; flags: Flags; api: () => ApiClient }): Promise<void>;
}

const json = { json: { type: 'boolean' } } as const;
const packageOptions = { format: { type: 'string' }, 'package-name': { type: 'string' }, 'package-version': { type: 'string' }, arch: { type: 'string' } } as const;

function need<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new CliError(`${what}: ${value === undefined ? 'missing' : result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

const release = (text: string | undefined) => parseReleaseArg(text);

const enc = encodeURIComponent;
const versionPath = (r: { bundle: string; version: string }) => `/api/v1/bundles/${enc(r.bundle)}/versions/${enc(r.version)}`;

async function sha256File(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** `30d`, `12h`, `90m`, an ISO date, or `never`: when a token should stop working. */
function parseExpiry(text: string, now = new Date()): string | undefined {
  if (text === 'never') return undefined;
  const relative = /^(\d{1,4})([dhm])$/.exec(text);
  if (relative) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() + Number(relative[1]) * unit).toISOString();
  }
  const absolute = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(absolute)) return new Date(absolute).toISOString();
  throw new CliError(`--expires: expected e.g. 30d, 12h, 2027-01-31 or never, got "${text}"`);
}

const commands: Record<string, Command> = {
  'bundle create': {
    usage: 'convoy bundle create NAME [--description TEXT] [--json]',
    options: { description: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const created = await api().request('POST', '/api/v1/bundles', { json: { name, ...(flags.description ? { description: flags.description } : {}) }, schema: bundle });
      printJsonOr(created, flags.json === true, `created bundle ${created.name}`);
    },
  },
  'bundle list': {
    usage: 'convoy bundle list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().requestAll('/api/v1/bundles', bundle);
      printList(rows, [{ header: 'NAME', value: (r) => r.name }, { header: 'CREATED', value: (r) => r.createdAt }, { header: 'DESCRIPTION', value: (r) => r.description }], flags.json === true);
    },
  },
  'bundle show': {
    usage: 'convoy bundle show NAME [--json]   (lists its versions)',
    options: json,
    async run({ positionals, flags, api }) {
      const name = need(bundleName, positionals[0], 'bundle name');
      const rows = await api().requestAll(`/api/v1/bundles/${enc(name)}/versions`, bundleVersion);
      printList(rows, [
        { header: 'VERSION', value: (r) => r.version },
        { header: 'STATUS', value: (r) => r.status },
        { header: 'APPROVED', value: (r) => r.approvedAt ?? '-' },
        { header: 'MANIFEST', value: (r) => r.manifestDigest ?? '-' },
      ], flags.json === true);
    },
  },
  'bundle approve': {
    usage: 'convoy bundle approve NAME@VERSION [--json]   (NAME alone: the version is $CONVOY_RELEASE_VERSION)',
    options: json,
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const approved = await api().request('POST', `${versionPath(r)}/approve`, { schema: bundleVersion });
      const by = approved.approvals ? ` (${approved.approvals.by.length} of ${approved.approvals.required} approvals: ${approved.approvals.by.map((a) => a.principal).join(', ')})` : '';
      printJsonOr(approved, flags.json === true, approved.status === 'approved'
        ? `approved ${r.bundle}@${r.version} (manifest ${approved.manifestDigest})${by}`
        : `recorded your approval of ${r.bundle}@${r.version}${by}; it is signed once enough distinct users approve`);
    },
  },
  'artifact push': {
    usage: 'convoy artifact push FILE --bundle NAME [--version V] [--name N] [--type image|package|file] [--format deb|rpm|npm|generic [--package-name N] [--package-version V] [--arch A]] [--json]',
    options: { bundle: { type: 'string' }, version: { type: 'string' }, name: { type: 'string' }, type: { type: 'string' }, ...packageOptions, ...json },
    async run({ positionals, flags, api }) {
      const file = positionals[0];
      if (!file) throw new CliError('missing FILE to push');
      const r = { bundle: need(bundleName, flags.bundle, '--bundle'), version: versionFlag(flags.version) };
      const name = need(artifactName, flags.name ?? path.basename(file), '--name');
      const type = need(artifactType, flags.type ?? (flags.format ? 'package' : 'file'), '--type');
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat?.isFile()) throw new CliError(`${file} is not a readable file`);
      const client = api();
      const { digest, size } = await sha256File(file);
      process.stderr.write(`uploading ${file} (${size} bytes, ${digest})\n`);
      // One request: the server streams the bytes, checks them against the digest computed here,
      // and adds or replaces the artifact in the draft (creating it if needed).
      const query = new URLSearchParams({ type, digest, ...packageQuery(flags) });
      const added = await client.request('PUT', `${versionPath(r)}/files/${enc(name)}?${query}`, {
        body: Readable.toWeb(createReadStream(file)) as unknown as RequestBody,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        schema: artifact,
      });
      printJsonOr(added, flags.json === true, `added ${type} ${name} to ${r.bundle}@${r.version}${added.package ? ` (${added.package.format} ${added.package.name} ${added.package.version} ${added.package.architecture})` : ''}`);
    },
  },
  'artifact list': {
    usage: 'convoy artifact list NAME@VERSION [--type T] [--name N] [--search TEXT] [--format F] [--arch A] [--package-name N] [--json]',
    options: { type: { type: 'string' }, name: { type: 'string' }, search: { type: 'string' }, format: { type: 'string' }, arch: { type: 'string' }, 'package-name': { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const filters = new URLSearchParams();
      for (const [flag, param] of [['type', 'type'], ['name', 'name'], ['search', 'search'], ['format', 'format'], ['arch', 'architecture'], ['package-name', 'package_name']] as const) {
        if (typeof flags[flag] === 'string') filters.set(param, flags[flag]);
      }
      const rows = await api().requestAll(`${versionPath(r)}/artifacts${filters.size ? `?${filters}` : ''}`, artifact);
      printList(rows, [
        { header: 'NAME', value: (a) => a.name },
        { header: 'TYPE', value: (a) => a.type },
        { header: 'PACKAGE', value: (a) => (a.package ? `${a.package.format} ${a.package.name} ${a.package.version} ${a.package.architecture}` : '-') },
        { header: 'SIZE', value: (a) => String(a.size) },
        { header: 'DIGEST', value: (a) => a.digest },
      ], flags.json === true);
    },
  },
  ...bundleCommands,
  deploy: {
    usage: 'convoy deploy NAME@VERSION --group GROUP [--rollback] [--json]   (--rollback: a signed permission to downgrade)',
    options: { group: { type: 'string' }, rollback: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const group = need(groupName, flags.group, '--group');
      if (flags.rollback === true) await allowRollback(api(), r);
      const created = await api().request('POST', '/api/v1/deployments', { json: { ...r, group }, schema: deployment });
      printJsonOr(created, flags.json === true, `deployed ${r.bundle}@${r.version} to group ${group} (deployment ${created.id})`);
    },
  },
  ...trustCommands,
  'deployment list': {
    usage: 'convoy deployment list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/deployments', { schema: listOf(deployment) });
      printList(rows, [
        { header: 'ID', value: (d) => String(d.id) },
        { header: 'RELEASE', value: (d) => `${d.bundle}@${d.version}` },
        { header: 'GROUP', value: (d) => d.group },
        { header: 'BY', value: (d) => d.createdBy },
        { header: 'AT', value: (d) => d.createdAt },
      ], flags.json === true);
    },
  },
  'device add': {
    usage: 'convoy device add --id ID --group GROUP --out DIR [--mqtt-url mqtt://HOST:PORT] [--json]',
    options: { id: { type: 'string' }, group: { type: 'string' }, out: { type: 'string' }, 'mqtt-url': { type: 'string' }, ...json },
    async run({ flags, api }) {
      const id = need(deviceId, flags.id, '--id');
      const group = need(groupName, flags.group, '--group');
      if (typeof flags.out !== 'string') throw new CliError('--out DIR is required: where to write the device configuration');
      const out = path.resolve(flags.out);
      const client = api();
      const registration = await client.request('POST', '/api/v1/devices', { json: { id, group }, schema: deviceRegistration });
      const mqttUrl = typeof flags['mqtt-url'] === 'string' ? flags['mqtt-url'] : `mqtt://${new URL(client.baseUrl).hostname}:${registration.mqtt.port}`;
      const config: DeviceConfigInput = { schema: deviceConfigSchemaId, id, group, serverUrl: client.baseUrl, mqttUrl, tokenFile: 'device.token', rootFile: 'root.json', dataDir: '.' };
      await fs.mkdir(out, { recursive: true });
      await writeFileAtomic(path.join(out, 'device.token'), registration.token + '\n', 0o600);
      await writeFileAtomic(path.join(out, 'root.json'), JSON.stringify(registration.root, null, 2) + '\n');
      await writeFileAtomic(path.join(out, 'device.json'), JSON.stringify(config, null, 2) + '\n');
      printJsonOr(registration.device, flags.json === true, `registered device ${id} in group ${group}; start it with: convoyd --config ${path.join(out, 'device.json')}`);
    },
  },
  'device list': {
    usage: 'convoy device list [--group GROUP] [--json]',
    options: { group: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = typeof flags.group === 'string' ? `?group=${enc(need(groupName, flags.group, '--group'))}` : '';
      const rows = await api().request('GET', `/api/v1/devices${query}`, { schema: listOf(device) });
      printList(rows, [
        { header: 'ID', value: (d) => d.id },
        { header: 'GROUP', value: (d) => d.group },
        { header: 'STATE', value: (d) => d.state ?? 'never seen' },
        { header: 'INSTALLED', value: (d) => (d.installed ? `${d.installed.bundle}@${d.installed.version}` : '-') },
        { header: 'ERROR', value: (d) => (d.error ? `${d.error.code}: ${d.error.message}` : '') },
      ], flags.json === true);
    },
  },
  'user create': {
    usage: 'convoy user create NAME [--admin] [--json]   (admin)',
    options: { admin: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(userName, positionals[0], 'user name');
      const created = await api().request('POST', '/api/v1/users', { json: { name, ...(flags.admin ? { admin: true } : {}) }, schema: user });
      printJsonOr(created, flags.json === true, `created ${created.admin ? 'admin ' : ''}user ${created.name}; give them a token with: convoy token create --user ${created.name} --scopes read`);
    },
  },
  'user list': {
    usage: 'convoy user list [--json]   (admin)',
    options: json,
    async run({ flags, api }) {
      const rows = await api().request('GET', '/api/v1/users', { schema: listOf(user) });
      printList(rows, [{ header: 'NAME', value: (u) => u.name }, { header: 'ADMIN', value: (u) => (u.admin ? 'yes' : '') }, { header: 'CREATED', value: (u) => u.createdAt }], flags.json === true);
    },
  },
  'member add': {
    usage: 'convoy member add USER --bundle NAME --role guest|reporter|developer|maintainer|owner [--json]   (also changes a role)',
    options: { bundle: { type: 'string' }, role: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const bundle = need(bundleName, flags.bundle, '--bundle');
      const granted = need(role, flags.role, '--role');
      const added = await api().request('POST', `/api/v1/bundles/${enc(bundle)}/members`, { json: { user: who, role: granted }, schema: member });
      printJsonOr(added, flags.json === true, `${added.user} is ${added.role} of ${added.bundle}`);
    },
  },
  'member list': {
    usage: 'convoy member list --bundle NAME [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const bundle = need(bundleName, flags.bundle, '--bundle');
      const rows = await api().request('GET', `/api/v1/bundles/${enc(bundle)}/members`, { schema: listOf(member) });
      printList(rows, [{ header: 'USER', value: (m) => m.user }, { header: 'ROLE', value: (m) => m.role }, { header: 'SINCE', value: (m) => m.createdAt }], flags.json === true);
    },
  },
  'member remove': {
    usage: 'convoy member remove USER --bundle NAME',
    options: { bundle: { type: 'string' } },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const bundle = need(bundleName, flags.bundle, '--bundle');
      await api().send('DELETE', `/api/v1/bundles/${enc(bundle)}/members/${enc(who)}`);
      process.stdout.write(`removed ${who} from ${bundle}\n`);
    },
  },
  'token create': {
    usage: 'convoy token create --scopes read,write,approve,deploy,admin [--expires 30d|12h|2027-01-31|never] [--name TEXT] [--user NAME] [--json]   (prints the token once)',
    options: { scopes: { type: 'string' }, expires: { type: 'string' }, name: { type: 'string' }, user: { type: 'string' }, ...json },
    async run({ flags, api }) {
      if (typeof flags.scopes !== 'string') throw new CliError('--scopes is required, e.g. --scopes read,write');
      const scopes = flags.scopes.split(',').map((s) => need(scope, s.trim(), '--scopes'));
      const expiresAt = parseExpiry(typeof flags.expires === 'string' ? flags.expires : '30d');
      const owner = typeof flags.user === 'string' ? need(userName, flags.user, '--user') : undefined;
      const name = typeof flags.name === 'string' ? flags.name : `cli ${new Date().toISOString().slice(0, 10)}`;
      const created = await api().request('POST', '/api/v1/tokens', {
        json: { name, scopes, ...(expiresAt ? { expiresAt } : {}), ...(owner ? { user: owner } : {}) },
        schema: createdToken,
      });
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(created, null, 2) + '\n');
        return;
      }
      // The secret alone on stdout (so `TOKEN=$(convoy token create …)` works); the rest on stderr.
      process.stderr.write(`token ${created.info.id} for ${created.info.user} (${created.info.scopes.join(',')}), expires ${created.info.expiresAt ?? 'never'}; it is shown only now:\n`);
      process.stdout.write(`${created.token}\n`);
    },
  },
  'token list': {
    usage: 'convoy token list [--user NAME] [--json]   (another user: admin)',
    options: { user: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = typeof flags.user === 'string' ? `?user=${enc(need(userName, flags.user, '--user'))}` : '';
      const rows = await api().request('GET', `/api/v1/tokens${query}`, { schema: listOf(accessToken) });
      printList(rows, [
        { header: 'ID', value: (t) => String(t.id) },
        { header: 'USER', value: (t) => t.user },
        { header: 'NAME', value: (t) => t.name },
        { header: 'SCOPES', value: (t) => t.scopes.join(',') },
        { header: 'EXPIRES', value: (t) => t.expiresAt ?? 'never' },
        { header: 'LAST USED', value: (t) => t.lastUsedAt ?? 'never' },
        { header: 'REVOKED', value: (t) => t.revokedAt ?? '' },
      ], flags.json === true);
    },
  },
  'token revoke': {
    usage: 'convoy token revoke ID [--json]   (your own tokens; any token: admin)',
    options: json,
    async run({ positionals, flags, api }) {
      const id = positionals[0];
      if (!id || !/^\d+$/.test(id)) throw new CliError(`expected a token ID (see convoy token list), got "${id ?? ''}"`);
      const revoked = await api().request('DELETE', `/api/v1/tokens/${id}`, { schema: accessToken });
      printJsonOr(revoked, flags.json === true, `revoked token ${revoked.id} (${revoked.name}) of ${revoked.user}`);
    },
  },
  'audit list': {
    usage: 'convoy audit list [--actor USER] [--action ACTION] [--bundle NAME] [--outcome success|denied|unauthenticated|failed] [--since ISO] [--until ISO] [--page N] [--per-page N] [--json]   (admin)',
    options: { actor: { type: 'string' }, action: { type: 'string' }, bundle: { type: 'string' }, outcome: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, page: { type: 'string' }, 'per-page': { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = new URLSearchParams();
      for (const key of ['actor', 'action', 'bundle', 'since', 'until', 'page'] as const) if (typeof flags[key] === 'string') query.set(key, flags[key]);
      if (typeof flags.outcome === 'string') query.set('outcome', need(auditOutcome, flags.outcome, '--outcome'));
      if (typeof flags['per-page'] === 'string') query.set('per_page', flags['per-page']);
      const rows = await api().request('GET', `/api/v1/audit${query.size ? `?${query}` : ''}`, { schema: listOf(auditEvent) });
      printList(rows, [
        { header: 'AT', value: (e) => e.at },
        { header: 'ACTOR', value: (e) => e.actor ?? '-' },
        { header: 'ACTION', value: (e) => e.action },
        { header: 'TARGET', value: (e) => `${e.method} ${e.target}` },
        { header: 'OUTCOME', value: (e) => (e.error ? `${e.outcome} (${e.status} ${e.error})` : `${e.outcome} (${e.status})`) },
        { header: 'REQUEST', value: (e) => e.requestId },
      ], flags.json === true);
    },
  },
  'admin reset-token': {
    usage: "convoy admin reset-token   (on the server's machine, with its CONVOY_* environment: revokes the admin's tokens, prints a new one once)",
    options: {},
    async run() {
      const [{ resetAdminToken }, { ConfigError }] = await Promise.all([import('../server/main.ts'), import('../server/config.ts')]);
      await resetAdminToken().catch((error: unknown) => {
        throw error instanceof ConfigError ? new CliError(error.message) : error;
      });
    },
  },
  serve: {
    usage: 'convoy serve   (configured by CONVOY_* environment variables; see the README)',
    options: {},
    async run() {
      const { serve } = await import('../server/main.ts');
      await serve();
    },
  },
};

function help(): string {
  return ['usage: convoy <command> [arguments]', '', 'commands:', ...Object.values(commands).map((c) => `  ${c.usage}`), '',
    'environment: CONVOY_URL (default http://127.0.0.1:8080), CONVOY_TOKEN (an access token)'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(help() + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  const twoWords = `${argv[0]} ${argv[1] ?? ''}`;
  const [key, rest] = commands[twoWords] ? [twoWords, argv.slice(2)] : [argv[0]!, argv.slice(1)];
  const command = commands[key];
  if (!command) {
    process.stderr.write(`convoy: unknown command "${twoWords.trim()}"\n\n${help()}\n`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(`usage: ${command.usage}\n`);
      return 0;
    }
    let client: ApiClient | undefined;
    await command.run({ positionals, flags: values as Flags, api: () => (client ??= createApiClient(process.env)) });
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`convoy: ${error.message}${error.code ? ` (${error.code})` : ''}\n`);
      return 1;
    }
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`convoy: ${(error as Error).message}\nusage: ${command.usage}\n`);
      return 2;
    }
    throw error;
  }
}

const code = await main(process.argv.slice(2));
// `serve` keeps running; every other command ends here.
if (!(process.argv[2] === 'serve' && code === 0)) process.exit(code);
