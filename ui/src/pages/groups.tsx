import { useEffect, useState } from 'react';
import { z } from 'zod';
import { device } from '../../../protocol/api.ts';
import { parseFilter } from '../../../protocol/filter.ts';
import { deviceGroup, groupMember, groupPreview, type DeviceGroup } from '../../../protocol/rollout.ts';
import { call, describeError, getJson, getPage } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { enc, Link, navigate } from '../router.tsx';
import { MembersSection } from '../components/members.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';

export function GroupsPage() {
  const session = useSession();
  const load = useLoad(() => getPage(session.client, '/api/v1/groups', deviceGroup, { per_page: 100 }), []);
  const [open, setOpen] = useState(false);
  return (
    <>
      <PageHeader
        title="Device groups"
        actions={
          session.can('group:create') && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              New group
            </button>
          )
        }
      >
        <p className="lede">Static groups hold the devices registered into them; dynamic groups hold every device whose inventory matches their filter, now and later.</p>
      </PageHeader>
      <Loaded load={load} what="device groups">
        {(result) =>
          result.items.length === 0 ? (
            <Empty title="No device groups yet">{session.can('group:create') ? 'Create one with “New group”, or register a device into a new group name.' : null}</Empty>
          ) : (
            <Table caption="Device groups" columns={['Group', 'Kind', 'Filter', { label: 'Devices', className: 'num' }, 'Created']}>
              {result.items.map((g) => (
                <tr key={g.name}>
                  <td>
                    <Link to={`/groups/${enc(g.name)}`} className="strong-link">
                      {g.name}
                    </Link>
                    {g.description && <div className="muted small">{g.description}</div>}
                  </td>
                  <td>
                    <Badge tone={g.kind === 'dynamic' ? 'info' : 'neutral'}>{g.kind}</Badge>
                  </td>
                  <td className="mono small">{g.filter ?? <span className="muted">—</span>}</td>
                  <td className="num">{g.devices}</td>
                  <td>
                    <Time at={g.createdAt} />
                  </td>
                </tr>
              ))}
            </Table>
          )
        }
      </Loaded>
      {open && <NewGroupDialog onClose={() => setOpen(false)} />}
    </>
  );
}

/**
 * The dynamic-filter editor: the filter is parsed as it is typed (the same parser as the server),
 * and the devices it matches now are previewed by the server a moment after typing stops.
 */
export function FilterEditor({ value, onChange, id }: { value: string; onChange: (text: string) => void; id: string }) {
  const session = useSession();
  const [preview, setPreview] = useState<{ state: 'idle' | 'loading' | 'ok' | 'error'; total?: number; devices?: string[]; message?: string }>({ state: 'idle' });
  let syntax: string | undefined;
  if (value.trim()) {
    try {
      parseFilter(value);
    } catch (error) {
      syntax = (error as Error).message;
    }
  }
  useEffect(() => {
    if (!value.trim() || syntax) {
      setPreview({ state: 'idle' });
      return;
    }
    setPreview((p) => ({ ...p, state: 'loading' }));
    let live = true;
    const timer = setTimeout(() => {
      call(session.client, 'POST', '/api/v1/groups/preview', groupPreview, { filter: value }).then(
        (answer) => live && setPreview({ state: 'ok', total: answer!.total, devices: answer!.devices }),
        (error: unknown) => live && setPreview({ state: 'error', message: describeError(error) }),
      );
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [value, syntax, session.client]);
  return (
    <div className="filter-editor">
      <label htmlFor={id}>Filter over inventory</label>
      <textarea id={id} className="mono" rows={3} value={value} onChange={(e) => onChange(e.target.value)} placeholder='model = "pos-x2" and region = "eu-west"' aria-describedby={`${id}-help ${id}-result`} aria-invalid={syntax !== undefined} />
      <p className="hint" id={`${id}-help`}>
        Compare attributes with = != &lt; &lt;= &gt; &gt;= ~ (contains), <code>in (…)</code>, <code>has key</code>; combine with and, or, not and parentheses.
      </p>
      <div id={`${id}-result`} role="status" aria-live="polite" className="preview">
        {syntax && <span className="error-text">{syntax}</span>}
        {!syntax && preview.state === 'loading' && <span className="muted">Matching devices…</span>}
        {!syntax && preview.state === 'error' && <span className="error-text">{preview.message}</span>}
        {!syntax && preview.state === 'ok' && (
          <>
            <strong>
              {preview.total} device{preview.total === 1 ? '' : 's'} match now
            </strong>
            {preview.devices && preview.devices.length > 0 && (
              <ul className="chips" aria-label="Matching devices">
                {preview.devices.slice(0, 24).map((d) => (
                  <li key={d} className="chip mono">
                    {d}
                  </li>
                ))}
                {preview.total! > 24 && <li className="chip">+{preview.total! - 24} more</li>}
              </ul>
            )}
          </>
        )}
      </div>
    </div>
  );
}

function NewGroupDialog({ onClose }: { onClose: () => void }) {
  const session = useSession();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [kind, setKind] = useState<'static' | 'dynamic'>('dynamic');
  const [filter, setFilter] = useState('');
  return (
    <ConfirmDialog
      open
      title="New device group"
      confirmLabel="Create group"
      confirmDisabled={!name.trim() || (kind === 'dynamic' && !filter.trim())}
      onClose={onClose}
      onConfirm={async () => {
        const made = await call(session.client, 'POST', '/api/v1/groups', deviceGroup, { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}), ...(kind === 'dynamic' ? { filter } : {}) });
        navigate(`/groups/${enc(made!.name)}`);
      }}
    >
      <TextField id="group-name" label="Name" value={name} onChange={setName} placeholder="eu-west-x2" />
      <TextField id="group-description" label="Description (optional)" value={description} onChange={setDescription} />
      <fieldset className="field">
        <legend>Kind</legend>
        <div className="field-check">
          <input id="group-kind-dynamic" type="radio" name="group-kind" checked={kind === 'dynamic'} onChange={() => setKind('dynamic')} />
          <label htmlFor="group-kind-dynamic">Dynamic: every device matching a filter</label>
        </div>
        <div className="field-check">
          <input id="group-kind-static" type="radio" name="group-kind" checked={kind === 'static'} onChange={() => setKind('static')} />
          <label htmlFor="group-kind-static">Static: devices registered or moved into it</label>
        </div>
      </fieldset>
      {kind === 'dynamic' && <FilterEditor id="group-filter" value={filter} onChange={setFilter} />}
    </ConfirmDialog>
  );
}

export function GroupPage({ name }: { name: string }) {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, `/api/v1/groups/${enc(name)}`, deviceGroup), [name]);
  const devices = useLoad(() => getPage(session.client, '/api/v1/devices', device, { group: name, per_page: 100 }), [name]);
  const [deleting, setDeleting] = useState(false);
  return (
    <Loaded load={load} what="the group">
      {(g) => (
        <>
          <PageHeader
            title={
              <>
                {g.name} <Badge tone={g.kind === 'dynamic' ? 'info' : 'neutral'}>{g.kind}</Badge>
              </>
            }
            crumbs={[{ to: '/groups', label: 'Device groups' }]}
            actions={
              <>
                {session.can('deployment:create', undefined, g.name) && (
                  <Link to={`/deployments?group=${enc(g.name)}`} className="button">
                    Deployments
                  </Link>
                )}
                {session.can('group:delete', undefined, g.name) && (
                  <button type="button" className="button button-danger" onClick={() => setDeleting(true)}>
                    Delete…
                  </button>
                )}
              </>
            }
          >
            {g.description && <p className="lede">{g.description}</p>}
          </PageHeader>
          <dl className="facts facts-wide">
            <dt>Devices</dt>
            <dd>{g.devices}</dd>
            {g.filter && (
              <>
                <dt>Filter</dt>
                <dd className="mono">{g.filter}</dd>
              </>
            )}
            <dt>Created</dt>
            <dd>
              by {g.createdBy} <Time at={g.createdAt} />
            </dd>
          </dl>
          <section className="section" aria-labelledby="group-devices-heading">
            <h2 id="group-devices-heading">Devices in {g.name}</h2>
            <Loaded load={devices} what="devices">
              {(result) => (result.items.length === 0 ? <Empty title="No devices in this group now" /> : <DeviceTable list={result.items} />)}
            </Loaded>
          </section>
          <MembersSection
            of={g.name}
            base={`/api/v1/groups/${enc(g.name)}`}
            idPrefix="group-member"
            schema={groupMember}
            canRead={session.can('group-member:read', undefined, g.name)}
            canWrite={session.can('group-member:write', undefined, g.name)}
            defaultRole="maintainer"
            addTitle="Add a member to the group"
            addedMessage={(user, role) => `${user} is now ${role} of ${g.name}.`}
            removeText={(user) => (
              <p>
                {user} loses their role on {g.name}.
              </p>
            )}
          />
          <ConfirmDialog
            open={deleting}
            title={`Delete ${g.name}?`}
            confirmLabel="Delete group"
            tone="danger"
            onClose={() => setDeleting(false)}
            onConfirm={async () => {
              await call(session.client, 'DELETE', `/api/v1/groups/${enc(g.name)}`, undefined);
              navigate('/groups');
            }}
          >
            <p>Only a group without devices and without unfinished deployments can be deleted.</p>
          </ConfirmDialog>
        </>
      )}
    </Loaded>
  );
}

export function DeviceTable({ list }: { list: z.output<typeof device>[] }) {
  return (
    <Table caption="Devices" columns={['Device', 'Online', 'State', 'Runs', 'Model', 'Last seen']}>
      {list.map((d) => (
        <tr key={d.id}>
          <td className="mono">
            <Link to={`/devices/${enc(d.id)}`}>{d.id}</Link>
            {d.decommissionedAt && <Badge tone="danger">decommissioned</Badge>}
          </td>
          <td>
            <span className={`dot ${d.online ? 'tone-success' : 'tone-neutral'}`} aria-hidden="true" /> {d.online ? 'online' : 'offline'}
          </td>
          <td>
            {d.state ? <Badge tone={d.state === 'failed' ? 'danger' : d.state === 'installed' ? 'success' : 'info'}>{d.state}</Badge> : <span className="muted">never reported</span>}
            {d.error && <div className="error-text small">{d.error.message}</div>}
          </td>
          <td>{d.installed ? `${d.installed.bundle} ${d.installed.version}` : <span className="muted">—</span>}</td>
          <td>{String(d.inventory.model ?? '—')}</td>
          <td>
            <Time at={d.lastSeenAt} />
          </td>
        </tr>
      ))}
    </Table>
  );
}

export type { DeviceGroup };
