import { useState } from 'react';
import { z } from 'zod';
import { deployment } from '../../../protocol/api.ts';
import { call, getJson } from '../api.ts';
import { enc, Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { ConfirmDialog, Empty, Flash, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';

export function DeploymentsPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/deployments', z.array(deployment)), []);
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ bundle: '', version: '', group: '' });
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const canDeploy = session.user.actingAsAdmin || session.user.bundles.some((b) => b.actions.includes('deployment:create'));
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
        <p className="lede">A deployment points a device group at an approved version; the devices update themselves.</p>
      </PageHeader>
      <Flash message={flash} />
      <Loaded load={load} what="deployments">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No deployments yet">{canDeploy ? 'Deploy an approved version with “New deployment”.' : null}</Empty>
          ) : (
            <table className="table">
              <caption className="sr-only">Deployments, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Release</th>
                  <th scope="col">Group</th>
                  <th scope="col">By</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {list.map((d) => (
                  <tr key={d.id}>
                    <td>{d.id}</td>
                    <td>
                      <Link to={`/bundles/${enc(d.bundle)}/versions/${enc(d.version)}`}>
                        {d.bundle} {d.version}
                      </Link>
                    </td>
                    <td>
                      <Link to={`/devices?group=${enc(d.group)}`}>{d.group}</Link>
                    </td>
                    <td>{d.createdBy}</td>
                    <td>
                      <Time at={d.createdAt} />
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
        title="New deployment"
        confirmLabel="Deploy"
        confirmDisabled={!form.bundle || !form.version || !form.group}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          const made = await call(session.client, 'POST', '/api/v1/deployments', deployment, form);
          setFlash(`Deployment ${made!.id}: ${made!.bundle} ${made!.version} to ${made!.group}.`);
          load.reload();
        }}
      >
        <div className="field">
          <label htmlFor="deploy-bundle">Bundle</label>
          <select id="deploy-bundle" value={form.bundle} onChange={(e) => setForm({ ...form, bundle: e.target.value })}>
            <option value="">choose…</option>
            {session.user.bundles
              .filter((b) => b.actions.includes('deployment:create'))
              .map((b) => (
                <option key={b.bundle} value={b.bundle}>
                  {b.bundle}
                </option>
              ))}
          </select>
          {session.user.actingAsAdmin && <p className="hint">As an administrator you may also type any bundle name below.</p>}
          {session.user.actingAsAdmin && <input aria-label="Bundle name" value={form.bundle} onChange={(e) => setForm({ ...form, bundle: e.target.value })} />}
        </div>
        <div className="field">
          <label htmlFor="deploy-version">Approved version</label>
          <input id="deploy-version" value={form.version} onChange={(e) => setForm({ ...form, version: e.target.value })} placeholder="1.2.0" />
        </div>
        <div className="field">
          <label htmlFor="deploy-group">Device group</label>
          <input id="deploy-group" value={form.group} onChange={(e) => setForm({ ...form, group: e.target.value })} placeholder="shop-eu" />
        </div>
      </ConfirmDialog>
    </>
  );
}
