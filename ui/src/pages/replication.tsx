import { useEffect, useState } from 'react';
import { z } from 'zod';
import { bundleVersion } from '../../../protocol/api.ts';
import { artifactTypes } from '../../../protocol/names.ts';
import {
  edge,
  registryEndpoint,
  replicationModes,
  replicationPolicy,
  replicationRun,
  replicationRunDetail,
  type ReplicationPolicy,
  type ReplicationRun,
  type ReplicationTask,
} from '../../../protocol/replication.ts';
import { call, describeError, getAll, getJson, getPage } from '../api.ts';
import { SelectField, TextField, VersionOptions } from '../components/fields.tsx';
import { LoadedList, RowAction, Table } from '../components/table.tsx';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Digest, Empty, Flash, formatBytes, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';

/*
 * Replication of one bundle (docs/replication.md): its policies (what goes where, when), the
 * history of runs, and one run's tasks, refreshed while the run is running. Who may change or
 * start what comes from the session (replication:write, replication:run on the bundle).
 */

const statusTone: Record<string, string> = {
  running: 'info',
  pending: 'neutral',
  succeeded: 'success',
  failed: 'danger',
  cancelled: 'warning',
  skipped: 'neutral',
};

/** How often a running run is asked for again: tasks move in seconds, not milliseconds. */
const refreshMs = 1500;

export function formatDuration(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function describeTrigger(policy: ReplicationPolicy): string {
  const trigger = policy.trigger;
  if (trigger.type === 'schedule') return `schedule (${trigger.cron}, UTC)`;
  return trigger.type === 'approval' ? 'on approval' : 'by hand';
}

function describeFilter(policy: ReplicationPolicy): string {
  const parts: string[] = [];
  if (policy.filter.versions) parts.push(`versions ${policy.filter.versions}`);
  if (policy.filter.types) parts.push(`types ${policy.filter.types.join(', ')}`);
  if (policy.filter.names) parts.push(`names ${policy.filter.names.join(', ')}`);
  return parts.length ? parts.join('; ') : 'every approved version, every artifact';
}

/** Bytes per second as people write it. */
function describeBandwidth(bandwidth: number | null): string {
  return bandwidth === null ? 'unlimited' : `${formatBytes(bandwidth)}/s`;
}

export function ReplicationPage({ name }: { name: string }) {
  const session = useSession();
  const location = useLocation();
  const base = `/api/v1/bundles/${enc(name)}`;
  const policyFilter = location.query.get('policy') ?? '';
  const page = Number(location.query.get('page') ?? 1) || 1;
  const policies = useLoad(() => getJson(session.client, `${base}/replication-policies`, z.array(replicationPolicy)), [name]);
  const runs = useLoad(() => getPage(session.client, `${base}/replication-runs`, replicationRun, { policy: policyFilter || undefined, page, per_page: 20 }), [name, policyFilter, page]);
  const [editing, setEditing] = useState<ReplicationPolicy | 'new' | undefined>(undefined);
  const [deleting, setDeleting] = useState<ReplicationPolicy | undefined>(undefined);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);
  const canWrite = session.can('replication:write', name);
  const canRun = session.can('replication:run', name);
  const setQuery = (next: { policy?: string; page?: number }) => {
    const params = new URLSearchParams();
    const p = next.policy ?? policyFilter;
    if (p) params.set('policy', p);
    if ((next.page ?? 1) > 1) params.set('page', String(next.page));
    navigate(`/bundles/${enc(name)}/replication${params.size ? `?${params}` : ''}`);
  };
  const act = async (what: () => Promise<void>) => {
    setFailure(undefined);
    try {
      await what();
    } catch (error) {
      setFailure(describeError(error));
    }
  };
  const toggle = (p: ReplicationPolicy) =>
    act(async () => {
      await call(session.client, 'POST', `${base}/replication-policies/${enc(p.name)}/${p.enabled ? 'disable' : 'enable'}`, replicationPolicy);
      setFlash(`Policy ${p.name} ${p.enabled ? 'disabled: its triggers stop' : 'enabled'}.`);
      policies.reload();
    });
  const [starting, setStarting] = useState<ReplicationPolicy | undefined>(undefined);

  return (
    <>
      <PageHeader
        title={`Replication of ${name}`}
        crumbs={[
          { to: '/bundles', label: 'Bundles' },
          { to: `/bundles/${enc(name)}`, label: name },
        ]}
        actions={
          canWrite && (
            <button type="button" className="button button-primary" onClick={() => setEditing('new')}>
              New policy
            </button>
          )
        }
      >
        <p className="lede">Policies copy approved versions to edges and registries: what (a filter), where (destinations) and when (a trigger).</p>
      </PageHeader>
      <Flash message={flash} />
      {failure && (
        <div className="notice notice-error" role="alert">
          <strong>That did not work</strong>
          <p>{failure}</p>
        </div>
      )}
      <section className="section" aria-labelledby="policies-heading">
        <h2 id="policies-heading">Policies</h2>
        <LoadedList load={policies} what="the replication policies" empty={<Empty title="No replication policies yet">{canWrite ? 'Create one with “New policy”.' : null}</Empty>}>
          {(list) => (
            <Table caption={`Replication policies of ${name}`} columns={['Name', 'Destinations', 'Trigger', 'What', 'Bandwidth', 'State']} actions>
              {list.map((p) => (
                <tr key={p.name}>
                  <td className="mono nowrap">{p.name}</td>
                  <td>
                    {p.destinations.map((d, i) => (
                      <span key={d.name}>
                        {i > 0 && ', '}
                        <Link to={d.type === 'edge' ? '/edges' : '/registries'}>{d.name}</Link> <span className="muted small">({d.type === 'edge' ? 'edge' : 'registry'})</span>
                      </span>
                    ))}
                    {p.mode === 'pull' && <span className="muted small"> · pull</span>}
                  </td>
                  <td>{describeTrigger(p)}</td>
                  <td className="small">{describeFilter(p)}</td>
                  <td>{describeBandwidth(p.bandwidth)}</td>
                  <td>
                    <Badge tone={p.enabled ? 'success' : 'neutral'}>{p.enabled ? 'enabled' : 'disabled'}</Badge>
                  </td>
                  <td className="row-actions">
                    {canRun && p.enabled && (
                      <button type="button" className="button button-small" aria-label={`Run now ${p.name}`} onClick={() => setStarting(p)}>
                        Run now
                      </button>
                    )}
                    {canWrite && (
                      <>
                        <RowAction label={`Edit ${p.name}`} onClick={() => setEditing(p)}>
                          Edit
                        </RowAction>
                        <button type="button" className="button button-small button-ghost" aria-label={`${p.enabled ? 'Disable' : 'Enable'} ${p.name}`} onClick={() => void toggle(p)}>
                          {p.enabled ? 'Disable' : 'Enable'}
                        </button>
                        <RowAction label={`Delete ${p.name}`} onClick={() => setDeleting(p)}>
                          Delete
                        </RowAction>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </Table>
          )}
        </LoadedList>
      </section>

      <section className="section" aria-labelledby="runs-heading">
        <div className="section-head">
          <h2 id="runs-heading">Runs</h2>
          {policies.state === 'ok' && policies.data.length > 0 && (
            <div className="toolbar toolbar-tight">
              <label htmlFor="runs-policy">Policy</label>
              <select id="runs-policy" value={policyFilter} onChange={(e) => setQuery({ policy: e.target.value, page: 1 })}>
                <option value="">all</option>
                {policies.data.map((p) => (
                  <option key={p.name} value={p.name}>
                    {p.name}
                  </option>
                ))}
              </select>
              <button type="button" className="button button-small" onClick={runs.reload}>
                Refresh
              </button>
            </div>
          )}
        </div>
        <Loaded load={runs} what="the replication runs">
          {(result) =>
            result.items.length === 0 ? (
              <Empty title={policyFilter ? `No runs of ${policyFilter} yet` : 'No runs yet'} />
            ) : (
              <>
                <RunsTable name={name} runs={result.items} />
                <p className="muted small">{result.total} runs</p>
                <Pager page={result.page} pages={result.pages} onPage={(p) => setQuery({ page: p })} />
              </>
            )
          }
        </Loaded>
      </section>

      {editing !== undefined && (
        <PolicyDialog
          name={name}
          policy={editing === 'new' ? undefined : editing}
          onClose={() => setEditing(undefined)}
          onSaved={(p, created) => {
            setFlash(`Policy ${p.name} ${created ? 'created' : 'saved'}.`);
            policies.reload();
          }}
        />
      )}
      {starting && <RunDialog name={name} policy={starting} onClose={() => setStarting(undefined)} />}
      <ConfirmDialog
        open={deleting !== undefined}
        title={`Delete policy “${deleting?.name ?? ''}”?`}
        confirmLabel="Delete policy"
        tone="danger"
        onClose={() => setDeleting(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `${base}/replication-policies/${enc(deleting!.name)}`, replicationPolicy);
          setFlash(`Policy ${deleting!.name} deleted; its run history stays.`);
          policies.reload();
        }}
      >
        <p>Its triggers stop. What it already copied stays at the destinations, and its runs stay in the history.</p>
      </ConfirmDialog>
    </>
  );
}

/** Run now: every approved version the filter matches, or one chosen. */
function RunDialog({ name, policy, onClose }: { name: string; policy: ReplicationPolicy; onClose: () => void }) {
  const session = useSession();
  const versions = useLoad(() => getAll(session.client, `/api/v1/bundles/${enc(name)}/versions`, bundleVersion, { status: 'approved' }), [name]);
  const [version, setVersion] = useState('');
  return (
    <ConfirmDialog
      open
      title={`Run ${policy.name} now`}
      confirmLabel="Start run"
      onClose={onClose}
      onConfirm={async () => {
        const started = await call(session.client, 'POST', `/api/v1/bundles/${enc(name)}/replication-policies/${enc(policy.name)}/runs`, replicationRunDetail, version ? { version } : {});
        navigate(`/bundles/${enc(name)}/replication/runs/${started!.run.id}`);
      }}
    >
      <p>
        To {policy.destinations.map((d) => d.name).join(', ')}: {describeFilter(policy)}. What a destination already holds is skipped.
      </p>
      <SelectField id="run-version" label="Version" value={version} onChange={setVersion}>
        <option value="">every approved version the filter matches</option>
        <VersionOptions versions={versions} />
      </SelectField>
    </ConfirmDialog>
  );
}

function RunsTable({ name, runs }: { name: string; runs: ReplicationRun[] }) {
  return (
    <Table caption="Replication runs, newest first" columns={['Run', 'Policy', 'Versions', 'Status', 'Tasks', 'Sent', 'Started', 'By']}>
      {runs.map((r) => (
        <tr key={r.id}>
          <td>
            <Link to={`/bundles/${enc(name)}/replication/runs/${r.id}`} className="strong-link nowrap">
              Run {r.id}
            </Link>
          </td>
          <td className="mono nowrap">{r.policy}</td>
          <td>{r.versions.join(', ') || <span className="muted">none</span>}</td>
          <td>
            <Badge tone={statusTone[r.status]}>{r.status}</Badge>
          </td>
          <td className="small">{describeTaskCounts(r)}</td>
          <td>{formatBytes(r.bytes)}</td>
          <td>
            <Time at={r.startedAt} />
          </td>
          <td>
            {r.by} <span className="muted small">({r.trigger})</span>
          </td>
        </tr>
      ))}
    </Table>
  );
}

function describeTaskCounts(r: ReplicationRun): string {
  const t = r.tasks;
  const parts = [`${t.succeeded}/${t.total} done`];
  if (t.failed) parts.push(`${t.failed} failed`);
  if (t.skipped) parts.push(`${t.skipped} skipped`);
  if (t.pending) parts.push(`${t.pending} pending`);
  return parts.join(', ');
}

function PolicyDialog({ name, policy, onClose, onSaved }: { name: string; policy?: ReplicationPolicy; onClose: () => void; onSaved: (p: ReplicationPolicy, created: boolean) => void }) {
  const session = useSession();
  const edges = useLoad(() => getJson(session.client, '/api/v1/edges', z.array(edge)), []);
  const registries = useLoad(() => getJson(session.client, '/api/v1/registries', z.array(registryEndpoint)), []);
  const [form, setForm] = useState({
    name: policy?.name ?? '',
    destinations: policy?.destinations.map((d) => d.name) ?? ([] as string[]),
    mode: policy?.mode ?? 'push',
    trigger: policy?.trigger.type ?? 'manual',
    cron: policy?.trigger.type === 'schedule' ? policy.trigger.cron : '0 3 * * *',
    versions: policy?.filter.versions ?? '',
    types: policy?.filter.types ?? ([] as string[]),
    names: policy?.filter.names?.join(', ') ?? '',
    bandwidthKiB: policy?.bandwidth ? String(Math.round(policy.bandwidth / 1024)) : '',
    propagateRevocations: policy?.propagateRevocations ?? true,
    enabled: policy?.enabled ?? true,
  });
  const set = <K extends keyof typeof form>(key: K, value: (typeof form)[K]) => setForm({ ...form, [key]: value });
  const destinationChoices = [
    ...(edges.state === 'ok' ? edges.data.map((e) => ({ name: e.name, type: 'edge' })) : []),
    ...(registries.state === 'ok' ? registries.data.map((r) => ({ name: r.name, type: 'registry' })) : []),
  ];
  const bandwidth = form.bandwidthKiB.trim() ? Number(form.bandwidthKiB) : null;
  const problem =
    form.destinations.length === 0
      ? 'Choose at least one destination.'
      : bandwidth !== null && (!Number.isInteger(bandwidth) || bandwidth < 1)
        ? 'Bandwidth is a whole number of KiB/s, at least 1 (empty: unlimited).'
        : form.mode === 'pull' && form.destinations.some((d) => destinationChoices.find((c) => c.name === d)?.type === 'registry')
          ? 'Pull is for edges only: a registry endpoint only receives pushes.'
          : undefined;
  const names = form.names
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  return (
    <ConfirmDialog
      open
      title={policy ? `Edit policy ${policy.name}` : 'New replication policy'}
      confirmLabel={policy ? 'Save policy' : 'Create policy'}
      confirmDisabled={!form.name.trim() || problem !== undefined}
      onClose={onClose}
      onConfirm={async () => {
        const fields = {
          destinations: form.destinations,
          mode: form.mode,
          trigger: form.trigger === 'schedule' ? { type: 'schedule', cron: form.cron.trim() } : { type: form.trigger },
          filter: {
            ...(form.versions.trim() ? { versions: form.versions.trim() } : {}),
            ...(form.types.length ? { types: form.types } : {}),
            ...(names.length ? { names } : {}),
          },
          bandwidth: bandwidth === null ? null : bandwidth * 1024,
          propagateRevocations: form.propagateRevocations,
          enabled: form.enabled,
        };
        const base = `/api/v1/bundles/${enc(name)}/replication-policies`;
        const saved = policy
          ? await call(session.client, 'PATCH', `${base}/${enc(policy.name)}`, replicationPolicy, fields)
          : await call(session.client, 'POST', base, replicationPolicy, { name: form.name.trim(), ...fields });
        onSaved(saved!, !policy);
      }}
    >
      <div className="form-grid">
        <TextField id="policy-name" label="Name" value={form.name} onChange={(value) => set('name', value)} disabled={policy !== undefined} placeholder="eu-shops" />
        <div className="field">
          <label htmlFor="policy-mode">Mode</label>
          <select id="policy-mode" value={form.mode} onChange={(e) => set('mode', e.target.value as (typeof replicationModes)[number])} aria-describedby="policy-mode-hint">
            {replicationModes.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
          <p className="hint" id="policy-mode-hint">
            Pull: edges fetch by themselves (edges only).
          </p>
        </div>
      </div>
      <fieldset className="field">
        <legend>Destinations</legend>
        {edges.state === 'loading' || registries.state === 'loading' ? (
          <p className="hint">Loading the edges and registry endpoints…</p>
        ) : destinationChoices.length === 0 ? (
          <p className="hint">There are no edges or registry endpoints yet: an administrator adds them.</p>
        ) : (
          destinationChoices.map((d) => (
            <div key={d.name} className="field-check">
              <input
                id={`policy-dest-${d.name}`}
                type="checkbox"
                checked={form.destinations.includes(d.name)}
                onChange={(e) => set('destinations', e.target.checked ? [...form.destinations, d.name] : form.destinations.filter((x) => x !== d.name))}
              />
              <label htmlFor={`policy-dest-${d.name}`}>
                {d.name} <span className="muted small">({d.type})</span>
              </label>
            </div>
          ))
        )}
      </fieldset>
      <div className="form-grid">
        <div className="field">
          <label htmlFor="policy-trigger">Trigger</label>
          <select id="policy-trigger" value={form.trigger} onChange={(e) => set('trigger', e.target.value as 'manual' | 'approval' | 'schedule')}>
            <option value="manual">by hand</option>
            <option value="approval">on approval</option>
            <option value="schedule">on a schedule</option>
          </select>
        </div>
        {form.trigger === 'schedule' ? (
          <TextField id="policy-cron" label="Schedule (cron, UTC)" className="mono" value={form.cron} onChange={(value) => set('cron', value)} hint="minute hour day month weekday, e.g. 0 3 * * *" />
        ) : (
          <p className="hint field">{form.trigger === 'approval' ? 'Runs by itself when a version the filter matches is approved.' : 'Runs only when someone starts it (Run now).'}</p>
        )}
        <TextField id="policy-versions" label="Versions (optional)" className="mono" value={form.versions} onChange={(value) => set('versions', value)} placeholder=">=2.0.0" hint="A semver range; empty: every approved version." />
        <TextField id="policy-names" label="Artifact names (optional)" className="mono" value={form.names} onChange={(value) => set('names', value)} placeholder="till, settings.json" hint="Comma-separated; empty: every artifact." />
        <TextField id="policy-bandwidth" label="Bandwidth limit (KiB/s, optional)" type="number" min={1} value={form.bandwidthKiB} onChange={(value) => set('bandwidthKiB', value)} placeholder="unlimited" />
      </div>
      <fieldset className="field">
        <legend>Artifact types (none checked: all)</legend>
        <div className="chips">
          {artifactTypes.map((type) => (
            <div key={type} className="field-check">
              <input id={`policy-type-${type}`} type="checkbox" checked={form.types.includes(type)} onChange={(e) => set('types', e.target.checked ? [...form.types, type] : form.types.filter((x) => x !== type))} />
              <label htmlFor={`policy-type-${type}`}>{type}</label>
            </div>
          ))}
        </div>
      </fieldset>
      <div className="field-check">
        <input id="policy-propagate" type="checkbox" checked={form.propagateRevocations} onChange={(e) => set('propagateRevocations', e.target.checked)} />
        <label htmlFor="policy-propagate">Withdraw revoked versions from the destinations</label>
      </div>
      <div className="field-check">
        <input id="policy-enabled" type="checkbox" checked={form.enabled} onChange={(e) => set('enabled', e.target.checked)} />
        <label htmlFor="policy-enabled">Enabled</label>
      </div>
      {problem && form.destinations.length > 0 && (
        <p className="error-text" role="alert">
          {problem}
        </p>
      )}
    </ConfirmDialog>
  );
}

export function RunPage({ name, id }: { name: string; id: string }) {
  const session = useSession();
  const url = `/api/v1/bundles/${enc(name)}/replication-runs/${enc(id)}`;
  const load = useLoad(() => getJson(session.client, url, replicationRunDetail), [url]);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const [cancelling, setCancelling] = useState(false);
  const running = load.state === 'ok' && load.data.run.status === 'running';
  const { reload } = load;
  // A running run is asked for again until it finishes; tasks do not push their progress.
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(reload, refreshMs);
    return () => clearInterval(timer);
  }, [running, reload]);
  const canRun = session.can('replication:run', name);
  return (
    <Loaded load={load} what="the replication run">
      {({ run, tasks }) => (
        <>
          <PageHeader
            title={
              <>
                Run {run.id} <Badge tone={statusTone[run.status]}>{run.status}</Badge>
              </>
            }
            crumbs={[
              { to: '/bundles', label: 'Bundles' },
              { to: `/bundles/${enc(name)}`, label: name },
              { to: `/bundles/${enc(name)}/replication`, label: 'Replication' },
            ]}
            actions={
              canRun && (
                <>
                  {run.status === 'running' && (
                    <button type="button" className="button button-danger" onClick={() => setCancelling(true)}>
                      Cancel run…
                    </button>
                  )}
                  {run.status !== 'running' && run.tasks.failed > 0 && (
                    <button
                      type="button"
                      className="button button-primary"
                      onClick={() =>
                        void call(session.client, 'POST', `${url}/retry`, replicationRunDetail).then(
                          () => {
                            setFlash(`Retrying ${run.tasks.failed} failed task${run.tasks.failed === 1 ? '' : 's'}.`);
                            reload();
                          },
                          (error: unknown) => setFlash(`The retry was refused: ${(error as Error).message}`),
                        )
                      }
                    >
                      Retry failed tasks
                    </button>
                  )}
                </>
              )
            }
          >
            {running && (
              <p className="live live-on" role="status">
                Running: this page refreshes by itself.
              </p>
            )}
          </PageHeader>
          <Flash message={flash} />
          <section className="panel" aria-labelledby="run-facts-heading">
            <h2 id="run-facts-heading">Summary</h2>
            <dl className="facts">
              <dt>Policy</dt>
              <dd className="mono">{run.policy}</dd>
              <dt>Versions</dt>
              <dd>{run.versions.join(', ') || 'none matched'}</dd>
              <dt>Started</dt>
              <dd>
                <Time at={run.startedAt} /> by {run.by} ({run.trigger})
              </dd>
              <dt>Finished</dt>
              <dd>{run.finishedAt ? <Time at={run.finishedAt} /> : 'not yet'}</dd>
              <dt>Tasks</dt>
              <dd>{describeTaskCounts(run)}</dd>
              <dt>Sent</dt>
              <dd>{formatBytes(run.bytes)}</dd>
            </dl>
          </section>
          <section className="section" aria-labelledby="tasks-heading">
            <h2 id="tasks-heading">Tasks</h2>
            {tasks.length === 0 ? <Empty title="This run has no tasks">The filter matched nothing to send.</Empty> : <TasksTable tasks={tasks} />}
          </section>
          <ConfirmDialog
            open={cancelling}
            title={`Cancel run ${run.id}?`}
            confirmLabel="Cancel run"
            tone="danger"
            onClose={() => setCancelling(false)}
            onConfirm={async () => {
              await call(session.client, 'POST', `${url}/cancel`, replicationRunDetail);
              setFlash(`Run ${run.id} cancelled: tasks not started are skipped.`);
              reload();
            }}
          >
            <p>Tasks already under way finish; those not started are skipped. You can start a new run later.</p>
          </ConfirmDialog>
        </>
      )}
    </Loaded>
  );
}

function TasksTable({ tasks }: { tasks: ReplicationTask[] }) {
  return (
    <Table caption="Tasks of this run" columns={['What', 'Destination', 'Version', 'Status', 'Bytes', 'Duration', 'Attempts', 'Error']}>
      {tasks.map((task) => (
        <tr key={task.id}>
          <td>
            <span className="muted small">{task.kind}</span> <TaskRef task={task} />
          </td>
          <td>
            {task.destination.name} <span className="muted small">({task.destination.type})</span>
          </td>
          <td>{task.version}</td>
          <td>
            <Badge tone={statusTone[task.status]}>{task.status}</Badge>
          </td>
          <td>{formatBytes(task.bytes)}</td>
          <td>{formatDuration(task.durationMs)}</td>
          <td>{task.attempts}</td>
          <td className="small cell-wrap">{task.error ? <span className="error-text">{task.error}</span> : <span className="muted">—</span>}</td>
        </tr>
      ))}
    </Table>
  );
}

/** A blob is named by digest, at a registry as `<repository>@<digest>`: the repository in full, the digest short (its title holds all of it). */
function TaskRef({ task }: { task: ReplicationTask }) {
  if (task.kind !== 'blob') return <span className="mono small cell-wrap">{task.ref}</span>;
  const at = task.ref.lastIndexOf('@');
  if (at < 0) return <Digest value={task.ref} />;
  return (
    <>
      <span className="mono small">{task.ref.slice(0, at)}</span> <Digest value={task.ref.slice(at + 1)} />
    </>
  );
}
