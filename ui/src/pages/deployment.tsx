import { useEffect, useState } from 'react';
import { rolloutActionResult, rolloutDetail, type PhaseSpec, type RolloutDetail } from '../../../protocol/rollout.ts';
import { call, getJson } from '../api.ts';
import { Table } from '../components/table.tsx';
import { enc, Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { followSnapshots } from '../stream.ts';
import { Badge, ConfirmDialog, ErrorNotice, Flash, Loading, PageHeader, Time } from '../ui.tsx';

/** Device states within a deployment, in the order a device goes through them, and their colours. */
export const targetOrder = ['installed', 'updating', 'notified', 'pending', 'failed', 'aborted', 'superseded', 'left'] as const;
export const targetTone: Record<string, string> = { installed: 'success', updating: 'info', notified: 'info', pending: 'neutral', failed: 'danger', aborted: 'warning', superseded: 'neutral', left: 'neutral' };
export const deploymentTone: Record<string, string> = { running: 'info', scheduled: 'neutral', paused: 'warning', completed: 'success', aborted: 'danger', superseded: 'neutral' };

const finalStates = new Set(['completed', 'aborted', 'superseded']);

export function describePhase(spec: PhaseSpec): string {
  return 'percent' in spec ? `${spec.percent} %` : `${spec.count} device${spec.count === 1 ? '' : 's'}`;
}

/** 4000 → "4 s", 1800000 → "30 min", 7200000 → "2 h". */
export function describeDuration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round((ms / 3_600_000) * 10) / 10} h`;
}

/** A bar split by device state: what share of the devices is where. */
export function StateBar({ counts, label }: { counts: Record<string, number>; label: string }) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const installed = counts.installed ?? 0;
  return (
    <div className="statebar-wrap">
      <div className="statebar" role="img" aria-label={`${label}: ${targetOrder.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(', ') || 'no devices'}`}>
        {total > 0 &&
          targetOrder
            .filter((s) => (counts[s] ?? 0) > 0)
            .map((s) => <span key={s} className={`statebar-part tone-${targetTone[s]}`} style={{ width: `${((counts[s] ?? 0) / total) * 100}%` }} />)}
      </div>
      <span className="statebar-label">
        {installed} of {total} installed
      </span>
    </div>
  );
}

export function DeploymentPage({ id }: { id: string }) {
  const session = useSession();
  const url = `/api/v1/deployments/${enc(id)}`;
  const [detail, setDetail] = useState<RolloutDetail | undefined>(undefined);
  const [failure, setFailure] = useState<unknown>(undefined);
  const [live, setLive] = useState(false);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const [confirm, setConfirm] = useState<'abort' | 'retry' | undefined>(undefined);
  const [stateFilter, setStateFilter] = useState('');

  useEffect(() => {
    setDetail(undefined);
    setFailure(undefined);
    // The first answer comes as JSON (a 404 or 403 is a clear message), then live snapshots.
    let stop = () => {};
    getJson(session.client, url, rolloutDetail).then(
      (first) => {
        setDetail(first);
        stop = followSnapshots(session.client, `${url}/events`, rolloutDetail, { snapshot: setDetail, live: setLive, error: () => setLive(false) }, { isFinal: (d) => finalStates.has(d.state) });
      },
      setFailure,
    );
    return () => stop();
  }, [url, session.client]);

  if (failure !== undefined) return <ErrorNotice error={failure} title="Could not load the deployment" />;
  if (!detail) return <Loading what="the deployment" />;
  const d = detail;
  const canControl = session.can('deployment:control', undefined, d.group);
  const act = async (verb: 'pause' | 'resume' | 'abort' | 'retry') => {
    const result = await call(session.client, 'POST', `${url}/${verb}`, rolloutActionResult, verb === 'retry' ? {} : undefined);
    setDetail((current) => (current ? { ...current, ...result!.deployment } : current));
    setFlash(verb === 'retry' ? `${result!.devices} failed device${result!.devices === 1 ? '' : 's'} will try again.` : `Deployment ${d.id} is ${result!.deployment.state}.`);
  };
  const devices = stateFilter ? d.devices.filter((x) => x.state === stateFilter) : d.devices;

  return (
    <>
      <PageHeader
        title={
          <>
            Deployment {d.id} <Badge tone={deploymentTone[d.state]}>{d.state}</Badge>
          </>
        }
        crumbs={[{ to: '/deployments', label: 'Deployments' }]}
        actions={
          canControl && (
            <>
              {d.state === 'running' && (
                <button type="button" className="button" onClick={() => void act('pause').catch(setFailure)}>
                  Pause
                </button>
              )}
              {d.state === 'paused' && (
                <button type="button" className="button button-primary" onClick={() => void act('resume').catch(setFailure)}>
                  Resume
                </button>
              )}
              {(d.counts.failed ?? 0) > 0 && !finalStates.has(d.state) && (
                <button type="button" className="button" onClick={() => setConfirm('retry')}>
                  Retry failed…
                </button>
              )}
              {!finalStates.has(d.state) && (
                <button type="button" className="button button-danger" onClick={() => setConfirm('abort')}>
                  Abort…
                </button>
              )}
            </>
          )
        }
      >
        <p className="lede">
          <Link to={`/bundles/${enc(d.bundle)}/versions/${enc(d.version)}`}>
            {d.bundle} {d.version}
          </Link>{' '}
          to <Link to={`/groups/${enc(d.group)}`}>{d.group}</Link>
          {d.rollback && ' (rollback)'}, by {d.createdBy} <Time at={d.createdAt} />.{' '}
          <span className={`live ${live ? 'live-on' : ''}`} role="status">
            {live ? 'Live' : finalStates.has(d.state) ? 'Finished' : 'Reconnecting…'}
          </span>
        </p>
      </PageHeader>
      <Flash message={flash} />
      {d.reason && (
        <div className={`notice ${d.state === 'paused' || d.state === 'aborted' ? 'notice-warning' : 'notice-success'}`} role="status">
          <strong>{d.state === 'paused' ? 'Paused: ' : ''}</strong>
          {d.reason}
        </div>
      )}
      <section className="panel" aria-labelledby="progress-heading">
        <h2 id="progress-heading">Progress</h2>
        <StateBar counts={d.counts} label="All devices" />
        <ul className="legend" aria-label="Devices by state">
          {targetOrder
            .filter((s) => (d.counts[s] ?? 0) > 0)
            .map((s) => (
              <li key={s}>
                <span className={`dot tone-${targetTone[s]}`} aria-hidden="true" /> {d.counts[s]} {s}
              </li>
            ))}
        </ul>
        <dl className="facts">
          <dt>Phases</dt>
          <dd>{d.phases.map(describePhase).join(' → ')}</dd>
          <dt>Soak</dt>
          <dd>{d.soakMs > 0 ? `${describeDuration(d.soakMs)} per phase` : 'none'}</dd>
          <dt>Pause after</dt>
          <dd>{d.maxFailures ? ('percent' in d.maxFailures ? `${d.maxFailures.percent} % failed` : `${d.maxFailures.count} failed devices`) : 'never (no failure limit)'}</dd>
          <dt>Retries</dt>
          <dd>
            {d.retry.attempts} attempt{d.retry.attempts === 1 ? '' : 's'} per device, backoff from {Math.round(d.retry.baseMs / 1000)} s
          </dd>
        </dl>
      </section>
      <section className="section" aria-labelledby="phases-heading">
        <h2 id="phases-heading">Phases</h2>
        <Table caption="Progress by phase" columns={['Phase', 'Devices', 'Started', 'Progress']}>
          {d.perPhase.map((p) => (
            <tr key={p.phase} className={p.phase === d.phase && !finalStates.has(d.state) ? 'row-current' : undefined}>
              <td>
                {p.phase + 1} <span className="muted small">({d.phases[p.phase] ? describePhase(d.phases[p.phase]!) : ''})</span>
                {p.phase === d.phase && !finalStates.has(d.state) && (
                  <>
                    {' '}
                    <Badge tone={deploymentTone[d.state]}>{d.state === 'paused' ? 'paused here' : 'current'}</Badge>
                  </>
                )}
              </td>
              <td>{p.size}</td>
              <td>{p.startedAt ? <Time at={p.startedAt} /> : <span className="muted">not yet</span>}</td>
              <td className="wide">
                <StateBar counts={p.counts} label={`Phase ${p.phase + 1}`} />
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section className="section" aria-labelledby="devices-heading">
        <div className="section-head">
          <h2 id="devices-heading">Devices</h2>
          <div className="toolbar toolbar-tight">
            <label htmlFor="device-state-filter">State</label>
            <select id="device-state-filter" value={stateFilter} onChange={(e) => setStateFilter(e.target.value)}>
              <option value="">all ({d.devices.length})</option>
              {targetOrder
                .filter((s) => (d.counts[s] ?? 0) > 0)
                .map((s) => (
                  <option key={s} value={s}>
                    {s} ({d.counts[s]})
                  </option>
                ))}
            </select>
          </div>
        </div>
        <Table caption="Devices of this deployment" columns={['Device', 'Phase', 'State', 'Attempt', 'Last change']} actions={canControl}>
          {devices.slice(0, 500).map((x) => {
            const last = x.transitions.at(-1);
            return (
              <tr key={x.id}>
                <td className="mono">
                  <Link to={`/devices/${enc(x.id)}`}>{x.id}</Link>
                </td>
                <td>{x.phase + 1}</td>
                <td>
                  <Badge tone={targetTone[x.state]}>{x.state}</Badge>
                  {x.error && <div className="error-text small">{x.error.message}</div>}
                </td>
                <td>{x.attempt}</td>
                <td>
                  {last ? (
                    <>
                      <Time at={last.at} /> <span className="muted small">{last.detail ?? last.state}</span>
                    </>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                {canControl && (
                  <td className="row-actions">
                    {x.state === 'failed' && !finalStates.has(d.state) && (
                      <button
                        type="button"
                        className="button button-small button-ghost"
                        aria-label={`Retry ${x.id}`}
                        onClick={() =>
                          void call(session.client, 'POST', `${url}/retry`, rolloutActionResult, { device: x.id }).then(() => setFlash(`${x.id} will try again.`), setFailure)
                        }
                      >
                        Retry
                      </button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </Table>
        {devices.length > 500 && <p className="muted small">The first 500 of {devices.length} devices; filter by state to see others.</p>}
      </section>
      <ConfirmDialog
        open={confirm === 'abort'}
        title={`Abort deployment ${d.id}?`}
        confirmLabel="Abort deployment"
        tone="danger"
        onClose={() => setConfirm(undefined)}
        onConfirm={() => act('abort')}
      >
        <p>Devices that have not switched to {d.version} stop and stay on what they run. Devices that switched keep it. An aborted deployment cannot be resumed.</p>
      </ConfirmDialog>
      <ConfirmDialog open={confirm === 'retry'} title="Retry the failed devices?" confirmLabel="Retry failed devices" onClose={() => setConfirm(undefined)} onConfirm={() => act('retry')}>
        <p>The {d.counts.failed ?? 0} failed devices are offered the release again, with a fresh set of attempts.</p>
      </ConfirmDialog>
    </>
  );
}
