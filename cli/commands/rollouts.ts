import * as z from 'zod';
import { role, userName } from '../../protocol/access.ts';
import { device, listOf } from '../../protocol/api.ts';
import { deviceId, groupName } from '../../protocol/names.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import {
  deploymentState,
  deviceDetail,
  deviceGroup,
  groupMember,
  groupPreview,
  parseDuration,
  parseFailureThreshold,
  parsePhases,
  rolloutActionResult,
  rolloutDetail,
  rolloutSummary,
  type RolloutSummary,
} from '../../protocol/rollout.ts';
import { deviceState } from '../../protocol/messages.ts';
import { deviceCertificateList } from '../../protocol/enrollment.ts';
import { CliError, type ApiClient } from '../client.ts';
import { need, type Command } from '../command.ts';
import { printJsonOr, printList } from '../output.ts';
import { parseReleaseArg } from '../release.ts';

/*
 * Rollouts on the command line (issue #10): `convoy deploy` with phases, `convoy deployment …`,
 * `convoy group …` and `convoy device …`. Arguments are checked with the server's own parsers.
 */

type Flags = Record<string, string | boolean | string[] | undefined>;
/** A command as this module writes it: flags read loosely, then checked by the server's parsers. */
interface RolloutCommand {
  usage: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;
  run(args: { positionals: string[]; flags: Flags; api: () => ApiClient }): Promise<void>;
}

const json = { json: { type: 'boolean' } } as const;
const enc = encodeURIComponent;

/** The protocol parsers throw ProtocolError; on the command line that is a usage mistake. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ProtocolError) throw new CliError(error.message);
    throw error;
  }
}

const deploymentId = (text: string | undefined) => {
  if (!text || !/^[1-9]\d{0,9}$/.test(text)) throw new CliError(`expected a deployment ID (see convoy deployment list), got "${text ?? ''}"`);
  return text;
};

function progress(d: RolloutSummary): string {
  const parts = Object.entries(d.counts).filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`);
  return parts.length ? parts.join(', ') : 'no devices';
}

function showFilters(flags: Flags): URLSearchParams {
  const query = new URLSearchParams();
  if (typeof flags.group === 'string') query.set('group', need(groupName, flags.group, '--group'));
  if (typeof flags.state === 'string') query.set('state', flags.state);
  if (typeof flags.filter === 'string') query.set('filter', flags.filter);
  if (flags.online === true) query.set('online', 'true');
  if (flags.offline === true) query.set('online', 'false');
  if (typeof flags.bundle === 'string') query.set('bundle', flags.bundle);
  return query;
}

async function act(api: ApiClient, id: string, verb: 'pause' | 'resume' | 'abort', asJson: boolean, done: string): Promise<void> {
  const result = await api.request('POST', `/api/v1/deployments/${deploymentId(id)}/${verb}`, { schema: rolloutActionResult });
  printJsonOr(result, asJson, `${done} deployment ${result.deployment.id}: ${result.deployment.state}${verb === 'abort' ? ` (${result.devices} devices had not finished: those already told stop, the rest are never told; each stays on what it runs)` : ''}`);
}

const rolloutCommands: Record<string, RolloutCommand> = {
  deploy: {
    usage:
      'convoy deploy NAME@VERSION --group GROUP [--phases 1,10,50,100|5dev,100%] [--soak 30m] [--max-failures 5%|N] [--retries N] [--start-at ISO] [--rollback] [--force] [--json]   (--retries: automatic retries after a failed attempt, default 2; --rollback: an emergency downgrade to a version approved before; --force: an empty group or a downgrade anyway)',
    options: { group: { type: 'string' }, phases: { type: 'string' }, soak: { type: 'string' }, 'max-failures': { type: 'string' }, retries: { type: 'string' }, 'start-at': { type: 'string' }, rollback: { type: 'boolean' }, force: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const r = parseReleaseArg(positionals[0]);
      const group = need(groupName, flags.group, '--group');
      const body: Record<string, unknown> = { ...r, group };
      if (typeof flags.phases === 'string') body.phases = parsed(() => parsePhases(flags.phases as string));
      if (typeof flags.soak === 'string') body.soakMs = parsed(() => parseDuration(flags.soak as string, '--soak'));
      if (typeof flags['max-failures'] === 'string') body.maxFailures = parsed(() => parseFailureThreshold(flags['max-failures'] as string));
      if (typeof flags.retries === 'string') {
        // Retries after the first attempt, as the word says: `--retries 0` is one attempt, no retry.
        const retries = need(z.coerce.number().int().min(0).max(99), flags.retries, '--retries (0 to 99 retries after a failed attempt)');
        body.retry = { attempts: retries + 1, baseMs: 30_000, maxMs: 15 * 60_000 };
      }
      if (typeof flags['start-at'] === 'string') body.startAt = need(z.iso.datetime(), flags['start-at'], '--start-at (ISO time, e.g. 2027-01-31T02:00:00Z)');
      if (flags.rollback === true) body.rollback = true;
      if (flags.force === true) body.force = true;
      const created = await api().request('POST', '/api/v1/deployments', { json: body, schema: rolloutSummary });
      printJsonOr(created, flags.json === true, `deployed ${r.bundle}@${r.version} to group ${group}: deployment ${created.id}, ${created.state}, ${created.phases.length} phase(s); follow it with: convoy deployment show ${created.id}`);
    },
  },
  'deployment list': {
    usage: 'convoy deployment list [--group G] [--state scheduled|running|paused|completed|aborted|superseded] [--bundle NAME] [--json]',
    options: { group: { type: 'string' }, state: { type: 'string' }, bundle: { type: 'string' }, ...json },
    async run({ flags, api }) {
      if (typeof flags.state === 'string') need(deploymentState, flags.state, '--state');
      const query = showFilters(flags);
      const rows = await api().requestAll(`/api/v1/deployments${query.size ? `?${query}` : ''}`, rolloutSummary);
      printList(rows, [
        { header: 'ID', value: (d) => String(d.id) },
        { header: 'RELEASE', value: (d) => `${d.bundle}@${d.version}${d.rollback ? ' (rollback)' : ''}` },
        { header: 'GROUP', value: (d) => d.group },
        { header: 'STATE', value: (d) => d.state },
        { header: 'PHASE', value: (d) => `${d.phase + 1}/${d.phases.length}` },
        { header: 'DEVICES', value: progress },
        { header: 'BY', value: (d) => d.createdBy },
        { header: 'AT', value: (d) => d.createdAt },
      ], flags.json === true);
    },
  },
  'deployment show': {
    usage: 'convoy deployment show ID [--json]   (counts per state and phase, each device with its transitions)',
    options: json,
    async run({ positionals, flags, api }) {
      const d = await api().request('GET', `/api/v1/deployments/${deploymentId(positionals[0])}`, { schema: rolloutDetail });
      if (flags.json === true) return printJsonOr(d, true, '');
      const out = (line: string) => process.stdout.write(`${line}\n`);
      out(`deployment ${d.id}: ${d.bundle}@${d.version} to group ${d.group}${d.rollback ? ' (rollback)' : ''}`);
      out(`state:   ${d.state}${d.reason ? ` (${d.reason})` : ''}`);
      out(`phase:   ${d.phase + 1} of ${d.phases.length}; soak ${Math.round(d.soakMs / 1000)} s; max failures ${d.maxFailures ? ('count' in d.maxFailures ? d.maxFailures.count : `${d.maxFailures.percent}%`) : 'none'}; attempts ${d.retry.attempts} (${d.retry.attempts - 1} automatic retries)`);
      out(`devices: ${progress(d)}`);
      for (const p of d.perPhase) out(`  phase ${p.phase + 1}: ${p.size} devices${p.startedAt ? `, started ${p.startedAt}` : ', not started'}: ${Object.entries(p.counts).map(([s, n]) => `${n} ${s}`).join(', ') || '-'}`);
      out('');
      printList(d.devices, [
        { header: 'DEVICE', value: (x) => x.id },
        { header: 'PHASE', value: (x) => String(x.phase + 1) },
        { header: 'STATE', value: (x) => x.state },
        { header: 'ATTEMPT', value: (x) => String(x.attempt + 1) },
        { header: 'LAST CHANGE', value: (x) => (x.transitions.at(-1) ? `${x.transitions.at(-1)!.at} ${x.transitions.at(-1)!.state}` : '-') },
        { header: 'ERROR', value: (x) => (x.error ? `${x.error.code}: ${x.error.message}` : '') },
      ], false);
    },
  },
  'deployment pause': {
    usage: 'convoy deployment pause ID [--json]   (no new phase starts)',
    options: json,
    run: ({ positionals, flags, api }) => act(api(), positionals[0]!, 'pause', flags.json === true, 'paused'),
  },
  'deployment resume': {
    usage: 'convoy deployment resume ID [--json]',
    options: json,
    run: ({ positionals, flags, api }) => act(api(), positionals[0]!, 'resume', flags.json === true, 'resumed'),
  },
  'deployment abort': {
    usage: 'convoy deployment abort ID [--json]   (devices that have not switched stop and stay where they are)',
    options: json,
    run: ({ positionals, flags, api }) => act(api(), positionals[0]!, 'abort', flags.json === true, 'aborted'),
  },
  'deployment retry': {
    usage: 'convoy deployment retry ID [--device D] [--json]   (re-arms the failed devices)',
    options: { device: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const body = typeof flags.device === 'string' ? { device: need(deviceId, flags.device, '--device') } : {};
      const result = await api().request('POST', `/api/v1/deployments/${deploymentId(positionals[0])}/retry`, { json: body, schema: rolloutActionResult });
      printJsonOr(result, flags.json === true, `re-armed ${result.devices} failed device(s) of deployment ${result.deployment.id}`);
    },
  },
  'group list': {
    usage: 'convoy group list [--json]',
    options: json,
    async run({ flags, api }) {
      const rows = await api().requestAll('/api/v1/groups', deviceGroup);
      printList(rows, [
        { header: 'NAME', value: (g) => g.name },
        { header: 'KIND', value: (g) => g.kind },
        { header: 'DEVICES', value: (g) => String(g.devices) },
        { header: 'FILTER', value: (g) => g.filter ?? '' },
        { header: 'DESCRIPTION', value: (g) => g.description },
      ], flags.json === true);
    },
  },
  'group show': {
    usage: 'convoy group show NAME [--json]   (the group and its devices)',
    options: json,
    async run({ positionals, flags, api }) {
      const name = need(groupName, positionals[0], 'group name');
      const client = api();
      const group = await client.request('GET', `/api/v1/groups/${enc(name)}`, { schema: deviceGroup });
      const devices = await client.requestAll(`/api/v1/devices?group=${enc(name)}`, device);
      if (flags.json === true) return printJsonOr({ ...group, members: devices.map((d) => d.id) }, true, '');
      process.stdout.write(`group ${group.name} (${group.kind}${group.filter ? `: ${group.filter}` : ''}), ${group.devices} devices${group.description ? ` — ${group.description}` : ''}\n`);
      printDevices(devices, false);
    },
  },
  'group create': {
    usage: 'convoy group create NAME [--filter \'model = "pos-x2" and region = "eu-west"\'] [--description TEXT] [--json]   (with --filter: a dynamic group)',
    options: { filter: { type: 'string' }, description: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const name = need(groupName, positionals[0], 'group name');
      const body = { name, ...(typeof flags.filter === 'string' ? { filter: flags.filter } : {}), ...(typeof flags.description === 'string' ? { description: flags.description } : {}) };
      const created = await api().request('POST', '/api/v1/groups', { json: body, schema: deviceGroup });
      printJsonOr(created, flags.json === true, `created ${created.kind} group ${created.name} (${created.devices} devices now)`);
    },
  },
  'group delete': {
    usage: 'convoy group delete NAME',
    options: {},
    async run({ positionals, api }) {
      const name = need(groupName, positionals[0], 'group name');
      await api().send('DELETE', `/api/v1/groups/${enc(name)}`);
      process.stdout.write(`deleted group ${name}\n`);
    },
  },
  'group preview': {
    usage: 'convoy group preview FILTER [--json]   (which devices a dynamic group with this filter would hold now)',
    options: json,
    async run({ positionals, flags, api }) {
      if (!positionals[0]) throw new CliError('missing FILTER, e.g. \'model = "pos-x2" and region = "eu-west"\'');
      const preview = await api().request('POST', '/api/v1/groups/preview', { json: { filter: positionals[0] }, schema: groupPreview });
      printJsonOr(preview, flags.json === true, `${preview.total} device(s) match${preview.devices.length ? `:\n${preview.devices.join('\n')}` : ''}`);
    },
  },
  'group add-member': {
    usage: 'convoy group add-member USER --group NAME --role guest|reporter|developer|maintainer|owner [--json]',
    options: { group: { type: 'string' }, role: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const group = need(groupName, flags.group, '--group');
      const added = await api().request('POST', `/api/v1/groups/${enc(group)}/members`, { json: { user: who, role: need(role, flags.role, '--role') }, schema: groupMember });
      printJsonOr(added, flags.json === true, `${added.user} is ${added.role} of group ${added.group}`);
    },
  },
  'group members': {
    usage: 'convoy group members --group NAME [--json]',
    options: { group: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const group = need(groupName, flags.group, '--group');
      const rows = await api().request('GET', `/api/v1/groups/${enc(group)}/members`, { schema: listOf(groupMember) });
      printList(rows, [{ header: 'USER', value: (m) => m.user }, { header: 'ROLE', value: (m) => m.role }, { header: 'SINCE', value: (m) => m.createdAt }], flags.json === true);
    },
  },
  'group remove-member': {
    usage: 'convoy group remove-member USER --group NAME',
    options: { group: { type: 'string' } },
    async run({ positionals, flags, api }) {
      const who = need(userName, positionals[0], 'user name');
      const group = need(groupName, flags.group, '--group');
      await api().send('DELETE', `/api/v1/groups/${enc(group)}/members/${enc(who)}`);
      process.stdout.write(`removed ${who} from group ${group}\n`);
    },
  },
  'device list': {
    usage: 'convoy device list [--group GROUP] [--state STATE] [--online|--offline] [--filter EXPR] [--json]',
    options: { group: { type: 'string' }, state: { type: 'string' }, online: { type: 'boolean' }, offline: { type: 'boolean' }, filter: { type: 'string' }, ...json },
    async run({ flags, api }) {
      if (typeof flags.state === 'string') need(deviceState, flags.state, '--state');
      const query = showFilters(flags);
      const rows = await api().requestAll(`/api/v1/devices${query.size ? `?${query}` : ''}`, device);
      printDevices(rows, flags.json === true);
    },
  },
  'device show': {
    usage: 'convoy device show ID [--json]   (inventory, groups, what it should run, history)',
    options: json,
    async run({ positionals, flags, api }) {
      const id = need(deviceId, positionals[0], 'device id');
      const d = await api().request('GET', `/api/v1/devices/${enc(id)}`, { schema: deviceDetail });
      // Its identity too: when its certificate expires is what an operator asks next.
      const { certificates } = await api().request('GET', `/api/v1/devices/${enc(id)}/certificates`, { schema: deviceCertificateList });
      if (flags.json === true) return printJsonOr({ ...d, certificates }, true, '');
      const out = (line: string) => process.stdout.write(`${line}\n`);
      out(`device ${d.id}: ${d.decommissionedAt ? `decommissioned ${d.decommissionedAt}` : d.online ? 'online' : 'offline'}, last seen ${d.lastSeenAt ?? 'never'}`);
      out(`groups:    ${d.groups.join(', ')}`);
      out(`state:     ${d.state ?? 'never reported'}${d.error ? ` (${d.error.code}: ${d.error.message})` : ''}`);
      out(`installed: ${d.installed ? `${d.installed.bundle}@${d.installed.version}` : '-'}`);
      out(`assigned:  ${d.assigned ? `${d.assigned.bundle}@${d.assigned.version} (deployment ${d.assigned.deploymentId} to ${d.assigned.group})` : '-'}`);
      out('certificates:');
      if (certificates.length === 0) out('  none (registered with a token, not enrolled)');
      for (const c of certificates) out(`  serial ${c.serial}: not after ${c.notAfter}, ${c.revokedAt ? `revoked ${c.revokedAt}` : Date.parse(c.notAfter) <= Date.now() ? 'expired' : 'valid'}, issued ${c.issuedAt}${c.fingerprint ? `, SHA-256 ${c.fingerprint}` : ''}`);
      out('inventory:');
      for (const [key, value] of Object.entries(d.inventory)) out(`  ${key} = ${JSON.stringify(value)}`);
      out('history:');
      for (const h of d.history) out(`  ${h.at} ${h.state}${h.deploymentId ? ` (deployment ${h.deploymentId})` : ''}${h.detail ? `: ${h.detail}` : ''}`);
    },
  },
  'device move': {
    usage: 'convoy device move ID --group GROUP [--json]   (to another static group)',
    options: { group: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const id = need(deviceId, positionals[0], 'device id');
      const moved = await api().request('POST', `/api/v1/devices/${enc(id)}/move`, { json: { group: need(groupName, flags.group, '--group') }, schema: device });
      printJsonOr(moved, flags.json === true, `moved ${moved.id} to group ${moved.group}`);
    },
  },
  'device decommission': {
    usage: 'convoy device decommission ID [--json]   (its token stops at once on HTTP, /tuf/ and MQTT)',
    options: json,
    async run({ positionals, flags, api }) {
      const id = need(deviceId, positionals[0], 'device id');
      const removed = await api().request('DELETE', `/api/v1/devices/${enc(id)}`, { schema: device });
      printJsonOr(removed, flags.json === true, `decommissioned ${removed.id}: its token no longer works`);
    },
  },
};

function printDevices(rows: z.output<typeof device>[], asJson: boolean): void {
  printList(rows, [
    { header: 'ID', value: (d) => d.id },
    { header: 'GROUP', value: (d) => d.group },
    { header: 'ONLINE', value: (d) => (d.decommissionedAt ? 'decommissioned' : d.online ? 'online' : 'offline') },
    { header: 'STATE', value: (d) => d.state ?? 'never seen' },
    { header: 'INSTALLED', value: (d) => (d.installed ? `${d.installed.bundle}@${d.installed.version}` : '-') },
    { header: 'MODEL', value: (d) => String(d.inventory.model ?? '-') },
    { header: 'LAST SEEN', value: (d) => d.lastSeenAt ?? 'never' },
    { header: 'ERROR', value: (d) => (d.error ? `${d.error.code}: ${d.error.message}` : '') },
  ], asJson);
}

/** The commands of one noun (`deploy`, `deployment`, `group`, `device`), for cli/commands/<noun>.ts. */
export function rolloutCommandsOf(noun: string): Record<string, Command> {
  return Object.fromEntries(Object.entries(rolloutCommands).filter(([name]) => name === noun || name.startsWith(`${noun} `))) as unknown as Record<string, Command>;
}
