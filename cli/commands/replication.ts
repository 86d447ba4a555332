import { bundleName, version as versionSchema, artifactName, artifactType } from '../../protocol/names.ts';
import { listOf } from '../../protocol/api.ts';
import { destinationName, policyName, replicationPolicy, replicationRun, replicationRunDetail, semverRange, type ReplicationPolicy, type ReplicationRun } from '../../protocol/replication.ts';
import { CliError, UsageError } from '../client.ts';
import { command, enc, json, need, needText, type Command, type Flags } from '../command.ts';
import { print, printJson, printJsonOr, printList } from '../output.ts';

/* `convoy replication …`: policies per bundle (what goes where, when) and their runs. */

/** `5MB/s`, `512KiB/s`, `1GB/s` or a number of bytes per second. */
export function parseBandwidth(text: string): number | null {
  if (text === 'unlimited' || text === 'none') return null;
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?(?:\/s)?$/i.exec(text);
  if (!match) throw new CliError(`--bandwidth: expected e.g. 5MB/s, 512KiB/s or unlimited, got "${text}"`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const value = Math.round(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]!);
  if (value < 1024) throw new CliError('--bandwidth: at least 1KiB/s');
  return value;
}

const policyOptions = {
  bundle: { type: 'string' },
  to: { type: 'string' },
  mode: { type: 'string' },
  trigger: { type: 'string' },
  cron: { type: 'string' },
  versions: { type: 'string' },
  types: { type: 'string' },
  names: { type: 'string' },
  bandwidth: { type: 'string' },
  'no-propagate-revocations': { type: 'boolean' },
  disabled: { type: 'boolean' },
  ...json,
} as const;

const list = (text: string) => text.split(',').map((s) => s.trim()).filter((s) => s !== '');

/** The policy fields the flags set (create and update share them). */
function policyFields(flags: Flags<typeof policyOptions>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (typeof flags.to === 'string') fields.destinations = list(flags.to).map((name) => need(destinationName, name, '--to'));
  if (typeof flags.mode === 'string') {
    if (flags.mode !== 'push' && flags.mode !== 'pull') throw new CliError(`--mode: push or pull, got "${flags.mode}"`);
    fields.mode = flags.mode;
  }
  if (typeof flags.trigger === 'string') {
    if (flags.trigger === 'manual' || flags.trigger === 'approval') fields.trigger = { type: flags.trigger };
    else if (flags.trigger === 'schedule') fields.trigger = { type: 'schedule', cron: needText(flags.cron, '--cron', 'e.g. --trigger schedule --cron "0 3 * * *"') };
    else throw new CliError(`--trigger: manual, approval or schedule, got "${flags.trigger}"`);
  } else if (flags.cron !== undefined) throw new UsageError('--cron goes with --trigger schedule');
  const filter: Record<string, unknown> = {};
  if (typeof flags.versions === 'string') filter.versions = need(semverRange, flags.versions, '--versions');
  if (typeof flags.types === 'string') filter.types = list(flags.types).map((t) => need(artifactType, t, '--types'));
  if (typeof flags.names === 'string') filter.names = list(flags.names).map((n) => need(artifactName, n, '--names'));
  if (Object.keys(filter).length > 0) fields.filter = filter;
  if (typeof flags.bandwidth === 'string') fields.bandwidth = parseBandwidth(flags.bandwidth);
  if (flags['no-propagate-revocations'] === true) fields.propagateRevocations = false;
  if (flags.disabled === true) fields.enabled = false;
  return fields;
}

function bundleFlag(flags: { bundle?: string | boolean | string[] | undefined }): string {
  return need(bundleName, needText(flags.bundle, '--bundle', 'policies belong to a bundle'), '--bundle');
}

function policyArg(positionals: string[]): string {
  if (positionals[0] === undefined) throw new UsageError('policy NAME: missing');
  return need(policyName, positionals[0], 'policy NAME');
}

const policiesPath = (bundle: string) => `/api/v1/bundles/${enc(bundle)}/replication-policies`;

function describePolicy(p: ReplicationPolicy): string {
  const filter = [p.filter.versions ? `versions ${p.filter.versions}` : 'all versions', p.filter.types ? `types ${p.filter.types.join(',')}` : '', p.filter.names ? `names ${p.filter.names.join(',')}` : ''].filter(Boolean).join('; ');
  return [
    `policy ${p.name} (bundle ${p.bundle}) ${p.enabled ? 'enabled' : 'DISABLED'}`,
    `  to:          ${p.destinations.map((d) => `${d.name} (${d.type})`).join(', ')}`,
    `  mode:        ${p.mode}`,
    `  trigger:     ${p.trigger.type === 'schedule' ? `schedule "${p.trigger.cron}"` : p.trigger.type}`,
    `  filter:      ${filter}`,
    `  bandwidth:   ${p.bandwidth === null ? 'unlimited' : `${p.bandwidth} B/s`}`,
    `  revocations: ${p.propagateRevocations ? 'propagate' : 'kept at destinations'}`,
  ].join('\n');
}

function describeRunLine(r: ReplicationRun): string {
  return `run ${r.id} of ${r.policy} (${r.trigger}): ${r.status}; versions ${r.versions.join(', ') || '(none matched)'}; tasks ${r.tasks.succeeded} ok, ${r.tasks.skipped} skipped, ${r.tasks.failed} failed, ${r.tasks.pending} pending of ${r.tasks.total}; ${r.bytes} bytes sent`;
}

function runIdArg(positionals: string[]): string {
  const id = positionals[0];
  if (id === undefined) throw new UsageError('run ID: missing (see convoy replication runs)');
  if (!/^[1-9]\d{0,15}$/.test(id)) throw new CliError(`expected a run ID (see convoy replication runs), got "${id}"`);
  return id;
}

function runAction(verb: 'cancel' | 'retry', what: string): Command {
  return command({
    usage: `convoy replication run ${verb} ID --bundle B [--json]   (${what})`,
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const id = runIdArg(positionals);
      const detail = await api().request('POST', `/api/v1/bundles/${enc(bundleFlag(flags))}/replication-runs/${id}/${verb}`, { schema: replicationRunDetail });
      printJsonOr(detail, flags.json === true, describeRunLine(detail.run));
    },
  });
}

const policyUsage = '--bundle B [--to DEST,…] [--mode push|pull] [--trigger manual|approval|schedule [--cron "0 3 * * *"]] [--versions RANGE] [--types image,package,…] [--names A,B] [--bandwidth 5MB/s] [--no-propagate-revocations] [--disabled] [--json]';

export const commands: Record<string, Command> = {
  'replication policy create': command({
    usage: `convoy replication policy create NAME --to DEST,… ${policyUsage}`,
    options: policyOptions,
    async run({ positionals, flags, api }) {
      const name = policyArg(positionals);
      const bundle = bundleFlag(flags);
      const fields = policyFields(flags);
      if (fields.destinations === undefined) throw new UsageError('--to: missing (edges and registry endpoints, comma-separated)');
      const created = await api().request('POST', policiesPath(bundle), { json: { name, ...fields }, schema: replicationPolicy });
      printJsonOr(created, flags.json === true, describePolicy(created));
    },
  }),
  'replication policy update': command({
    usage: `convoy replication policy update NAME ${policyUsage}`,
    options: policyOptions,
    async run({ positionals, flags, api }) {
      const name = policyArg(positionals);
      const bundle = bundleFlag(flags);
      const fields = policyFields(flags);
      if (Object.keys(fields).length === 0) throw new UsageError('nothing to change: give at least one flag');
      const updated = await api().request('PATCH', `${policiesPath(bundle)}/${enc(name)}`, { json: fields, schema: replicationPolicy });
      printJsonOr(updated, flags.json === true, describePolicy(updated));
    },
  }),
  'replication policy list': command({
    usage: 'convoy replication policy list --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const rows = await api().request('GET', policiesPath(bundleFlag(flags)), { schema: listOf(replicationPolicy) });
      printList(rows, [
        { header: 'NAME', value: (p) => p.name },
        { header: 'TO', value: (p) => p.destinations.map((d) => d.name).join(',') },
        { header: 'MODE', value: (p) => p.mode },
        { header: 'TRIGGER', value: (p) => p.trigger.type },
        { header: 'VERSIONS', value: (p) => p.filter.versions ?? '*' },
        { header: 'ENABLED', value: (p) => (p.enabled ? 'yes' : 'no') },
      ], flags.json === true);
    },
  }),
  'replication policy show': command({
    usage: 'convoy replication policy show NAME --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const found = await api().request('GET', `${policiesPath(bundleFlag(flags))}/${enc(policyArg(positionals))}`, { schema: replicationPolicy });
      printJsonOr(found, flags.json === true, describePolicy(found));
    },
  }),
  'replication policy delete': command({
    usage: 'convoy replication policy delete NAME --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const removed = await api().request('DELETE', `${policiesPath(bundleFlag(flags))}/${enc(policyArg(positionals))}`, { schema: replicationPolicy });
      printJsonOr(removed, flags.json === true, `deleted replication policy ${removed.name} of ${removed.bundle}`);
    },
  }),
  'replication policy enable': command({
    usage: 'convoy replication policy enable NAME --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const p = await api().request('POST', `${policiesPath(bundleFlag(flags))}/${enc(policyArg(positionals))}/enable`, { schema: replicationPolicy });
      printJsonOr(p, flags.json === true, `enabled replication policy ${p.name}`);
    },
  }),
  'replication policy disable': command({
    usage: 'convoy replication policy disable NAME --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const p = await api().request('POST', `${policiesPath(bundleFlag(flags))}/${enc(policyArg(positionals))}/disable`, { schema: replicationPolicy });
      printJsonOr(p, flags.json === true, `disabled replication policy ${p.name}`);
    },
  }),
  'replication run': command({
    usage: 'convoy replication run POLICY --bundle B [--version V] [--wait] [--json]   (every approved version the policy matches, or one)',
    options: { bundle: { type: 'string' }, version: { type: 'string' }, wait: { type: 'boolean' }, ...json },
    async run({ positionals, flags, api }) {
      const bundle = bundleFlag(flags);
      const name = policyArg(positionals);
      const version = typeof flags.version === 'string' ? need(versionSchema, flags.version, '--version') : undefined;
      let detail = await api().request('POST', `${policiesPath(bundle)}/${enc(name)}/runs`, { json: version ? { version } : {}, schema: replicationRunDetail });
      // --wait: until no task is pending (tasks of pull-mode edges wait for the edge).
      while (flags.wait === true && detail.run.status === 'running' && detail.tasks.some((t) => t.destination.type === 'registry' && (t.status === 'pending' || t.status === 'running'))) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        detail = await api().request('GET', `/api/v1/bundles/${enc(bundle)}/replication-runs/${detail.run.id}`, { schema: replicationRunDetail });
      }
      printJsonOr(detail, flags.json === true, describeRunLine(detail.run));
      if (flags.wait === true && detail.tasks.some((t) => t.status === 'failed')) throw new CliError(`run ${detail.run.id}: some tasks failed (convoy replication run show ${detail.run.id} --bundle ${bundle})`);
    },
  }),
  'replication runs': command({
    usage: 'convoy replication runs --bundle B [--policy NAME] [--page N] [--per-page N] [--json]',
    options: { bundle: { type: 'string' }, policy: { type: 'string' }, page: { type: 'string' }, 'per-page': { type: 'string' }, ...json },
    async run({ flags, api }) {
      const query = new URLSearchParams();
      if (typeof flags.policy === 'string') query.set('policy', need(policyName, flags.policy, '--policy'));
      if (typeof flags.page === 'string') query.set('page', flags.page);
      if (typeof flags['per-page'] === 'string') query.set('per_page', flags['per-page']);
      const rows = await api().request('GET', `/api/v1/bundles/${enc(bundleFlag(flags))}/replication-runs${query.size ? `?${query}` : ''}`, { schema: listOf(replicationRun) });
      printList(rows, [
        { header: 'ID', value: (r) => String(r.id) },
        { header: 'POLICY', value: (r) => r.policy },
        { header: 'TRIGGER', value: (r) => r.trigger },
        { header: 'VERSIONS', value: (r) => r.versions.join(',') },
        { header: 'STATUS', value: (r) => r.status },
        { header: 'TASKS', value: (r) => `${r.tasks.succeeded + r.tasks.skipped}/${r.tasks.total}${r.tasks.failed ? ` (${r.tasks.failed} failed)` : ''}` },
        { header: 'BYTES', value: (r) => String(r.bytes) },
        { header: 'STARTED', value: (r) => r.startedAt },
      ], flags.json === true);
    },
  }),
  'replication run cancel': runAction('cancel', 'cancels a running run: tasks not started are skipped'),
  'replication run retry': runAction('retry', 'runs the failed (or cancelled) tasks of a finished run again'),
  'replication run show': command({
    usage: 'convoy replication run show ID --bundle B [--json]',
    options: { bundle: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const id = runIdArg(positionals);
      const detail = await api().request('GET', `/api/v1/bundles/${enc(bundleFlag(flags))}/replication-runs/${id}`, { schema: replicationRunDetail });
      if (flags.json === true) return printJson(detail);
      print(describeRunLine(detail.run));
      printList(detail.tasks, [
        { header: 'TASK', value: (t) => String(t.id) },
        { header: 'TO', value: (t) => t.destination.name },
        { header: 'KIND', value: (t) => t.kind },
        { header: 'REF', value: (t) => t.ref },
        { header: 'STATUS', value: (t) => t.status },
        { header: 'BYTES', value: (t) => String(t.bytes) },
        { header: 'MS', value: (t) => (t.durationMs === null ? '' : String(t.durationMs)) },
        { header: 'TRIES', value: (t) => String(t.attempts) },
        { header: 'ERROR', value: (t) => t.error ?? '' },
      ], false);
    },
  }),
};
