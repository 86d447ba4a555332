import { useState, type FormEvent } from 'react';
import { device, deviceRegistration } from '../../../protocol/api.ts';
import { deviceCertificateList, deviceRevocation, type DeviceCertificate } from '../../../protocol/enrollment.ts';
import { deviceStates } from '../../../protocol/messages.ts';
import { deviceDetail } from '../../../protocol/rollout.ts';
import { call, getJson, getPage } from '../api.ts';
import { SelectField, TextField } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { SecretNotice } from '../components/secret.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Flash, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';
import { DeviceTable } from './groups.tsx';

const filterKeys = ['group', 'state', 'online', 'filter'] as const;

/** The fleet, filtered by group, state, online state or a filter over inventory; the filters live in the URL. */
export function DevicesPage() {
  const session = useSession();
  const location = useLocation();
  const current = Object.fromEntries(filterKeys.map((k) => [k, location.query.get(k) ?? ''])) as Record<(typeof filterKeys)[number], string>;
  const page = Number(location.query.get('page') ?? 1) || 1;
  const [draft, setDraft] = useState(current);
  const load = useLoad(() => getPage(session.client, '/api/v1/devices', device, { ...current, page, per_page: 50 }), [location.query.toString()]);
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ id: '', group: '' });
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const go = (values: Record<string, string>, toPage = 1) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v.trim()) params.set(k, v.trim());
    if (toPage > 1) params.set('page', String(toPage));
    navigate(`/devices${params.size ? `?${params}` : ''}`);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    go(draft);
  };
  return (
    <>
      <PageHeader
        title="Devices"
        actions={
          session.can('device:create') && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              Register device
            </button>
          )
        }
      />
      {secret && (
        <SecretNotice title="Device registered." note="Its token is shown only once:" id="device-secret" label="Device token" value={secret} onDone={() => setSecret(undefined)} />
      )}
      <form className="filters" onSubmit={submit} aria-label="Filter devices">
        <TextField id="devices-group" label="Group" value={draft.group} onChange={(value) => setDraft({ ...draft, group: value })} placeholder="any" />
        <SelectField id="devices-state" label="State" value={draft.state} onChange={(value) => setDraft({ ...draft, state: value })}>
          <option value="">any</option>
          {deviceStates.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </SelectField>
        <SelectField id="devices-online" label="Connection" value={draft.online} onChange={(value) => setDraft({ ...draft, online: value })}>
          <option value="">any</option>
          <option value="true">online</option>
          <option value="false">offline</option>
        </SelectField>
        <div className="field field-wide">
          <label htmlFor="devices-filter">Inventory filter</label>
          <input id="devices-filter" className="mono" value={draft.filter} onChange={(e) => setDraft({ ...draft, filter: e.target.value })} placeholder='model = "pos-x2"' />
        </div>
        <div className="field field-actions">
          <button type="submit" className="button button-primary">
            Filter
          </button>
        </div>
      </form>
      <Loaded load={load} what="devices">
        {(result) =>
          result.items.length === 0 ? (
            <Empty title={Object.values(current).some(Boolean) ? 'No device matches these filters' : 'No devices yet'} />
          ) : (
            <>
              <DeviceTable list={result.items} />
              <p className="muted small">{result.total} devices</p>
              <Pager page={result.page} pages={result.pages} onPage={(p) => go(current, p)} />
            </>
          )
        }
      </Loaded>
      <ConfirmDialog
        open={open}
        title="Register a device"
        confirmLabel="Register"
        confirmDisabled={!form.id || !form.group}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          const made = await call(session.client, 'POST', '/api/v1/devices', deviceRegistration, form);
          setSecret(made!.token);
          load.reload();
        }}
      >
        <TextField id="device-id" label="Device id" value={form.id} onChange={(value) => setForm({ ...form, id: value })} />
        <TextField id="device-new-group" label="Group" value={form.group} onChange={(value) => setForm({ ...form, group: value })} />
      </ConfirmDialog>
    </>
  );
}

export function DevicePage({ id }: { id: string }) {
  const session = useSession();
  const url = `/api/v1/devices/${enc(id)}`;
  const load = useLoad(() => getJson(session.client, url, deviceDetail), [url]);
  const [moving, setMoving] = useState(false);
  const [to, setTo] = useState('');
  const [decommissioning, setDecommissioning] = useState(false);
  const [revoking, setRevoking] = useState(false);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  return (
    <Loaded load={load} what="the device">
      {(d) => (
        <>
          <PageHeader
            title={
              <>
                <span className="mono">{d.id}</span> <Badge tone={d.online ? 'success' : 'neutral'}>{d.online ? 'online' : 'offline'}</Badge>
                {d.decommissionedAt && <Badge tone="danger">decommissioned</Badge>}
              </>
            }
            crumbs={[{ to: '/devices', label: 'Devices' }]}
            actions={
              <>
                {session.can('enrollment:create') && (
                  <Link to={`/enrollment?device=${enc(d.id)}`} className="button">
                    Enrollment token…
                  </Link>
                )}
                {!d.decommissionedAt && session.can('device:write', undefined, d.group) && (
                  <>
                    <button type="button" className="button" onClick={() => setMoving(true)}>
                      Move…
                    </button>
                    <button type="button" className="button button-danger" onClick={() => setDecommissioning(true)}>
                      Decommission…
                    </button>
                  </>
                )}
                {session.can('device:revoke') && (
                  <button type="button" className="button button-danger" onClick={() => setRevoking(true)}>
                    Revoke…
                  </button>
                )}
              </>
            }
          />
          <Flash message={flash} />
          <div className="grid-2">
            <section className="panel" aria-labelledby="device-state-heading">
              <h2 id="device-state-heading">State</h2>
              <dl className="facts">
                <dt>State</dt>
                <dd>{d.state ? <Badge tone={d.state === 'failed' ? 'danger' : d.state === 'installed' ? 'success' : 'info'}>{d.state}</Badge> : 'never reported'}</dd>
                <dt>Runs</dt>
                <dd>{d.installed ? `${d.installed.bundle} ${d.installed.version}` : '—'}</dd>
                <dt>Should run</dt>
                <dd>
                  {d.assigned ? (
                    <>
                      {d.assigned.bundle} {d.assigned.version} (<Link to={`/deployments/${d.assigned.deploymentId}`}>deployment {d.assigned.deploymentId}</Link>, group {d.assigned.group})
                    </>
                  ) : (
                    'nothing assigned'
                  )}
                </dd>
                <dt>Groups</dt>
                <dd>
                  {d.groups.map((g, i) => (
                    <span key={g}>
                      {i > 0 && ', '}
                      <Link to={`/groups/${enc(g)}`}>{g}</Link>
                    </span>
                  ))}
                </dd>
                <dt>Last seen</dt>
                <dd>
                  <Time at={d.lastSeenAt} />
                </dd>
              </dl>
              {d.error && (
                <div className="notice notice-error">
                  <strong>{d.error.code}</strong>: {d.error.message}
                </div>
              )}
            </section>
            <section className="panel" aria-labelledby="inventory-heading">
              <h2 id="inventory-heading">Inventory</h2>
              {Object.keys(d.inventory).length === 0 ? (
                <p className="muted">The device has not reported its inventory yet.</p>
              ) : (
                <dl className="facts">
                  {Object.entries(d.inventory)
                    .sort(([a], [b]) => a.localeCompare(b))
                    .map(([k, v]) => (
                      <div key={k} className="facts-row">
                        <dt className="mono">{k}</dt>
                        <dd>{String(v)}</dd>
                      </div>
                    ))}
                </dl>
              )}
            </section>
          </div>
          {/* Keyed on the decommission time: a revoke (which decommissions) shows the certificates revoked. */}
          <CertificatesSection key={d.decommissionedAt ?? "active"} url={url} />
          <section className="section" aria-labelledby="history-heading">
            <h2 id="history-heading">History</h2>
            {d.history.length === 0 ? (
              <Empty title="No state changes recorded yet" />
            ) : (
              <Table caption="State changes, newest first" columns={['When', 'State', 'Deployment', 'Detail']}>
                {[...d.history].reverse().map((h, i) => (
                  <tr key={i}>
                    <td>
                      <Time at={h.at} />
                    </td>
                    <td>
                      <Badge tone={h.state === 'failed' ? 'danger' : h.state === 'installed' ? 'success' : 'neutral'}>{h.state}</Badge>
                    </td>
                    <td>{h.deploymentId ? <Link to={`/deployments/${h.deploymentId}`}>{h.deploymentId}</Link> : '—'}</td>
                    <td className="small">{h.detail ?? ''}</td>
                  </tr>
                ))}
              </Table>
            )}
          </section>
          <ConfirmDialog
            open={moving}
            title={`Move ${d.id}`}
            confirmLabel="Move device"
            confirmDisabled={!to.trim()}
            onClose={() => setMoving(false)}
            onConfirm={async () => {
              await call(session.client, 'POST', `${url}/move`, device, { group: to.trim() });
              setFlash(`${d.id} moved to ${to.trim()}.`);
              load.reload();
            }}
          >
            <p>
              From the static group <strong>{d.group}</strong> to:
            </p>
            <TextField id="move-to" label="Static group" value={to} onChange={setTo} />
          </ConfirmDialog>
          <ConfirmDialog
            open={decommissioning}
            title={`Decommission ${d.id}?`}
            confirmLabel="Decommission"
            tone="danger"
            onClose={() => setDecommissioning(false)}
            onConfirm={async () => {
              await call(session.client, 'DELETE', url, device);
              setFlash(`${d.id} is decommissioned: its token no longer works.`);
              load.reload();
            }}
          >
            <p>Its token stops working at once, over HTTP and MQTT. The record stays for history. (A device that holds a certificate: Revoke cuts that off too.)</p>
          </ConfirmDialog>
          <ConfirmDialog
            open={revoking}
            title={`Revoke ${d.id}?`}
            confirmLabel="Revoke device"
            tone="danger"
            onClose={() => setRevoking(false)}
            onConfirm={async () => {
              const done = await call(session.client, 'POST', `${url}/revoke`, deviceRevocation);
              setFlash(`${d.id} is revoked: ${done!.certificates} certificate${done!.certificates === 1 ? '' : 's'} and ${done!.tokens} token${done!.tokens === 1 ? '' : 's'} no longer work, its MQTT sessions are closed.`);
              load.reload();
            }}
          >
            <p>
              For a lost or stolen device: every certificate and token it holds stops working at once, on HTTPS and MQTT (its live sessions are closed), and it is decommissioned. To let it back in later, make an
              enrollment token for it.
            </p>
          </ConfirmDialog>
        </>
      )}
    </Loaded>
  );
}

/** Where a certificate stands, as a badge: revoked wins over expired. */
function certificateState(c: DeviceCertificate, now: number): 'revoked' | 'expired' | 'valid' {
  return c.revokedAt ? 'revoked' : Date.parse(c.notAfter) <= now ? 'expired' : 'valid';
}

/** The device's identity: the certificates the server issued it (enrollment, renewals), newest first. */
function CertificatesSection({ url }: { url: string }) {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, `${url}/certificates`, deviceCertificateList), [url]);
  const now = Date.now();
  return (
    <section className="section" aria-labelledby="certificates-heading">
      <h2 id="certificates-heading">Certificates</h2>
      <Loaded load={load} what="the certificates">
        {({ certificates }) =>
          certificates.length === 0 ? (
            <Empty title="No certificate">It was registered with a token, not enrolled (an enrollment token for it gives it one).</Empty>
          ) : (
            <Table caption="Certificates issued to the device, newest first" columns={['Serial', 'State', 'Not after', 'Issued', 'SHA-256 fingerprint']}>
              {certificates.map((c) => (
                <tr key={c.serial}>
                  <td className="mono">{c.serial}</td>
                  <td>
                    <Badge tone={{ revoked: 'danger', expired: 'warning', valid: 'success' }[certificateState(c, now)]}>{certificateState(c, now)}</Badge>
                    {c.revokedAt && (
                      <>
                        {' '}
                        <Time at={c.revokedAt} />
                      </>
                    )}
                  </td>
                  <td className="nowrap">
                    <Time at={c.notAfter} />
                  </td>
                  <td className="nowrap">
                    <Time at={c.issuedAt} />
                  </td>
                  <td className="mono small wrap">{c.fingerprint ?? <span className="muted">not recorded</span>}</td>
                </tr>
              ))}
            </Table>
          )
        }
      </Loaded>
    </section>
  );
}
