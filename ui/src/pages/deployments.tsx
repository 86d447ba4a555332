import { useState } from 'react';
import { bundleVersion } from '../../../protocol/api.ts';
import { deploymentStates, deviceGroup, parseDuration, parseFailureThreshold, parsePhases, rolloutSummary } from '../../../protocol/rollout.ts';
import { call, getAll, getPage } from '../api.ts';
import { SelectField, TextField, VersionOptions } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';
import { deploymentTone, describePhase, StateBar } from './deployment.tsx';

export function DeploymentsPage() {
  const session = useSession();
  const location = useLocation();
  const state = location.query.get('state') ?? '';
  const page = Number(location.query.get('page') ?? 1) || 1;
  const load = useLoad(() => getPage(session.client, '/api/v1/deployments', rolloutSummary, { state: state || undefined, page }), [state, page]);
  const [open, setOpen] = useState(false);
  const canDeploy = session.user.actingAsAdmin || session.user.groups.some((g) => g.actions.includes('deployment:create'));
  const go = (next: { state?: string; page?: number }) => {
    const params = new URLSearchParams();
    const s = next.state ?? state;
    if (s) params.set('state', s);
    if ((next.page ?? 1) > 1) params.set('page', String(next.page));
    navigate(`/deployments${params.size ? `?${params}` : ''}`);
  };
  return (
    <>
      <PageHeader
        title="Deployments"
        actions={
          canDeploy && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              New deployment
            </button>
          )
        }
      >
        <p className="lede">Approved versions rolled out to device groups, phase by phase.</p>
      </PageHeader>
      <div className="segmented" role="group" aria-label="Filter by state">
        {['', ...deploymentStates].map((s) => (
          <button key={s || 'all'} type="button" className="button button-small" aria-pressed={state === s} onClick={() => go({ state: s, page: 1 })}>
            {s || 'all'}
          </button>
        ))}
      </div>
      <Loaded load={load} what="deployments">
        {(result) =>
          result.items.length === 0 ? (
            <Empty title={state ? `No ${state} deployments` : 'No deployments yet'}>{canDeploy && !state ? 'Roll out an approved version with “New deployment”.' : null}</Empty>
          ) : (
            <>
              <Table caption="Deployments, newest first" columns={['#', 'Release', 'Group', 'State', 'Progress', 'Created']} className="spaced">
                {result.items.map((d) => (
                  <tr key={d.id}>
                    <td>
                      <Link to={`/deployments/${d.id}`} className="strong-link" aria-label={`Deployment ${d.id}`}>
                        {d.id}
                      </Link>
                    </td>
                    <td>
                      <Link to={`/bundles/${enc(d.bundle)}/versions/${enc(d.version)}`}>
                        {d.bundle} {d.version}
                      </Link>
                      {d.rollback && <span className="muted small"> rollback</span>}
                    </td>
                    <td>
                      <Link to={`/groups/${enc(d.group)}`}>{d.group}</Link>
                    </td>
                    <td>
                      <Badge tone={deploymentTone[d.state]}>{d.state}</Badge>
                      <div className="muted small">
                        phase {d.phase + 1} of {d.phases.length}
                      </div>
                    </td>
                    <td className="wide">
                      <StateBar counts={d.counts} label={`Deployment ${d.id}`} />
                    </td>
                    <td>
                      <Time at={d.createdAt} />
                      <div className="muted small">by {d.createdBy}</div>
                    </td>
                  </tr>
                ))}
              </Table>
              <Pager page={result.page} pages={result.pages} onPage={(p) => go({ page: p })} />
            </>
          )
        }
      </Loaded>
      {open && <NewDeploymentDialog onClose={() => setOpen(false)} />}
    </>
  );
}

/** Phases, soak and failure limit in the CLI's words (`1,10,50,100`, `30m`, `5%`), parsed as the CLI does. */
function NewDeploymentDialog({ onClose }: { onClose: () => void }) {
  const session = useSession();
  const location = useLocation();
  const [form, setForm] = useState({ bundle: '', version: '', group: location.query.get('group') ?? '', phases: '100', soak: '0', maxFailures: '', attempts: '3', rollback: false, force: false });
  const groups = useLoad(() => getAll(session.client, '/api/v1/groups', deviceGroup), []);
  const bundles = session.user.actingAsAdmin ? undefined : session.user.bundles.map((b) => b.bundle);
  const versions = useLoad(
    () => (form.bundle ? getAll(session.client, `/api/v1/bundles/${enc(form.bundle)}/versions`, bundleVersion, { status: 'approved' }) : Promise.resolve([])),
    [form.bundle],
  );
  let problem: string | undefined;
  let plan: { phases: ReturnType<typeof parsePhases>; soakMs: number; maxFailures?: ReturnType<typeof parseFailureThreshold> } | undefined;
  try {
    plan = { phases: parsePhases(form.phases), soakMs: parseDuration(form.soak || '0', 'soak'), ...(form.maxFailures.trim() ? { maxFailures: parseFailureThreshold(form.maxFailures) } : {}) };
  } catch (error) {
    problem = (error as Error).message.replace(/^--/, '');
  }
  const set = (key: keyof typeof form, value: string | boolean) => setForm({ ...form, [key]: value });
  return (
    <ConfirmDialog
      open
      title="New deployment"
      confirmLabel="Start deployment"
      confirmDisabled={!form.bundle || !form.version || !form.group || problem !== undefined}
      onClose={onClose}
      onConfirm={async () => {
        const made = await call(session.client, 'POST', '/api/v1/deployments', rolloutSummary, {
          bundle: form.bundle,
          version: form.version,
          group: form.group,
          phases: plan!.phases,
          soakMs: plan!.soakMs,
          ...(plan!.maxFailures ? { maxFailures: plan!.maxFailures } : {}),
          retry: { attempts: Number(form.attempts) || 3, baseMs: 30_000, maxMs: 900_000 },
          ...(form.rollback ? { rollback: true } : {}),
          ...(form.force ? { force: true } : {}),
        });
        navigate(`/deployments/${made!.id}`);
      }}
    >
      <div className="form-grid">
        <div className="field">
          <label htmlFor="deploy-bundle">Bundle</label>
          {bundles ? (
            <select id="deploy-bundle" value={form.bundle} onChange={(e) => setForm({ ...form, bundle: e.target.value, version: '' })}>
              <option value="">choose…</option>
              {bundles.map((b) => (
                <option key={b} value={b}>
                  {b}
                </option>
              ))}
            </select>
          ) : (
            <input id="deploy-bundle" value={form.bundle} onChange={(e) => setForm({ ...form, bundle: e.target.value.trim(), version: '' })} placeholder="pos-app" />
          )}
        </div>
        <SelectField id="deploy-version" label="Approved version" value={form.version} onChange={(value) => set('version', value)} disabled={versions.state !== 'ok' || versions.data.length === 0}>
          <option value="">{versions.state === 'ok' && versions.data.length === 0 && form.bundle ? 'no approved version' : 'choose…'}</option>
          <VersionOptions versions={versions} />
        </SelectField>
        <SelectField id="deploy-group" label="Device group" value={form.group} onChange={(value) => set('group', value)}>
          <option value="">choose…</option>
          {groups.state === 'ok' &&
            groups.data
              .filter((g) => session.can('deployment:create', undefined, g.name))
              .map((g) => (
                <option key={g.name} value={g.name}>
                  {g.name} ({g.devices} device{g.devices === 1 ? '' : 's'}, {g.kind})
                </option>
              ))}
        </SelectField>
        <TextField id="deploy-phases" label="Phases" value={form.phases} onChange={(value) => set('phases', value)} hint="Cumulative: percentages (1,10,50,100) or device counts (5dev,100%)." />
        <TextField id="deploy-soak" label="Soak per phase" value={form.soak} onChange={(value) => set('soak', value)} hint="e.g. 30m, 2h; 0 for none." />
        <TextField id="deploy-failures" label="Pause after failures" value={form.maxFailures} onChange={(value) => set('maxFailures', value)} placeholder="5% or 3" hint="Empty: never pause on failures." />
        <TextField id="deploy-attempts" label="Attempts per device" type="number" min={1} max={100} value={form.attempts} onChange={(value) => set('attempts', value)} />
      </div>
      <div className="field-check">
        <input id="deploy-rollback" type="checkbox" checked={form.rollback} onChange={(e) => set('rollback', e.target.checked)} />
        <label htmlFor="deploy-rollback">Rollback to an older approved version</label>
      </div>
      <div className="field-check">
        <input id="deploy-force" type="checkbox" checked={form.force} onChange={(e) => set('force', e.target.checked)} />
        <label htmlFor="deploy-force">Deploy even to an empty group</label>
      </div>
      {problem ? (
        <p className="error-text" role="alert">
          {problem}
        </p>
      ) : (
        plan && (
          <p className="hint" role="status">
            Phases: {plan.phases.map(describePhase).join(' → ')}
            {plan.soakMs > 0 ? `, each soaking ${form.soak}` : ''}
            {plan.maxFailures ? `, pausing when ${'percent' in plan.maxFailures ? `${plan.maxFailures.percent} %` : plan.maxFailures.count} fail` : ''}.
          </p>
        )
      )}
    </ConfirmDialog>
  );
}
