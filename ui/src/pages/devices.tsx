import { useState, type FormEvent } from 'react';
import { z } from 'zod';
import { device, deviceRegistration } from '../../../protocol/api.ts';
import { call, getJson } from '../api.ts';
import { navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';

export function DevicesPage() {
  const session = useSession();
  const location = useLocation();
  const group = location.query.get('group') ?? '';
  const [draftGroup, setDraftGroup] = useState(group);
  const load = useLoad(() => getJson(session.client, '/api/v1/devices', z.array(device), group ? { group } : undefined), [group]);
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ id: '', group: '' });
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const filter = (event: FormEvent) => {
    event.preventDefault();
    navigate(draftGroup.trim() ? `/devices?group=${encodeURIComponent(draftGroup.trim())}` : '/devices');
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
        <div className="notice notice-success" role="status">
          <strong>Device registered.</strong> Its token is shown only once:
          <div className="secret-row">
            <label htmlFor="device-secret" className="sr-only">
              Device token
            </label>
            <input id="device-secret" readOnly value={secret} className="mono" />
            <button type="button" className="button button-ghost" onClick={() => setSecret(undefined)}>
              Done
            </button>
          </div>
        </div>
      )}
      <form className="toolbar" role="search" onSubmit={filter}>
        <label htmlFor="device-group">Group</label>
        <input id="device-group" value={draftGroup} onChange={(e) => setDraftGroup(e.target.value)} placeholder="all groups" />
        <button type="submit" className="button">
          Filter
        </button>
      </form>
      <Loaded load={load} what="devices">
        {(list) =>
          list.length === 0 ? (
            <Empty title={group ? `No devices in ${group}` : 'No devices yet'} />
          ) : (
            <table className="table">
              <caption className="sr-only">Devices</caption>
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col">Group</th>
                  <th scope="col">State</th>
                  <th scope="col">Installed</th>
                  <th scope="col">Target</th>
                  <th scope="col">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {list.map((d) => (
                  <tr key={d.id}>
                    <td className="mono">{d.id}</td>
                    <td>{d.group}</td>
                    <td>
                      {d.state ? <Badge tone={d.state === 'failed' ? 'danger' : d.state === 'installed' ? 'success' : 'info'}>{d.state}</Badge> : <span className="muted">never reported</span>}
                      {d.error && <div className="error-text small">{d.error.message}</div>}
                    </td>
                    <td>{d.installed ? `${d.installed.bundle} ${d.installed.version}` : <span className="muted">—</span>}</td>
                    <td>{d.target ? `${d.target.bundle} ${d.target.version}` : <span className="muted">—</span>}</td>
                    <td>
                      <Time at={d.lastSeenAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
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
        <div className="field">
          <label htmlFor="device-id">Device id</label>
          <input id="device-id" value={form.id} onChange={(e) => setForm({ ...form, id: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="device-new-group">Group</label>
          <input id="device-new-group" value={form.group} onChange={(e) => setForm({ ...form, group: e.target.value })} />
        </div>
      </ConfirmDialog>
    </>
  );
}
