import { useState } from 'react';
import { z } from 'zod';
import { createdEdge, edge, registryEndpoint, type Edge, type RegistryEndpoint } from '../../../protocol/replication.ts';
import { call, getJson } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import { edgeHealth } from '../health.ts';
import { LoadedList, RowAction, RowActionCell, Table } from '../components/table.tsx';
import { SecretNotice } from '../components/secret.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Flash, PageHeader, Time, useLoad } from '../ui.tsx';

/*
 * Replication destinations (admin screens): edges, which mirror approved versions and serve
 * devices near them, and OCI registry endpoints that images are pushed to. A policy names its
 * destinations by these names. Secrets go one way: an edge's token is shown once, a registry's
 * password is sent once and never comes back (the API says only whether credentials are set).
 */

export function EdgesPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/edges', z.array(edge)), []);
  const [adding, setAdding] = useState(false);
  const [form, setForm] = useState({ name: '', description: '', url: '' });
  const [secret, setSecret] = useState<{ name: string; token: string } | undefined>(undefined);
  const [removing, setRemoving] = useState<Edge | undefined>(undefined);
  // Push mode: the origin opens the connection to the edge's URL, holding its token sealed.
  const [editing, setEditing] = useState<Edge | undefined>(undefined);
  const [edit, setEdit] = useState({ url: '', token: '' });
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const canWrite = session.can('edge:write');
  return (
    <>
      <PageHeader
        title="Edges"
        actions={
          canWrite && (
            <button type="button" className="button button-primary" onClick={() => setAdding(true)}>
              Add edge
            </button>
          )
        }
      >
        <p className="lede">
          Edge nodes mirror approved versions from this server and serve the devices near them. Health is when each last reached this server. An edge with a URL can also
          be pushed to (policies in push mode); without one it fetches by itself.
        </p>
      </PageHeader>
      <Flash message={flash} />
      {secret && (
        <SecretNotice
          title={`Edge “${secret.name}” added.`}
          note={
            <>
              Give this token to the edge (<span className="mono">CONVOY_EDGE_TOKEN</span>); it is shown only once.
            </>
          }
          id="edge-secret"
          label="Edge token"
          value={secret.token}
          onDone={() => setSecret(undefined)}
        />
      )}
      <LoadedList load={load} what="the edges" empty={<Empty title="No edges yet">{canWrite ? 'Add one to mirror releases close to a site.' : null}</Empty>}>
        {(list) => (
          <Table caption="Edge nodes" columns={['Name', 'Description', 'URL (push)', 'Health', 'Last seen', 'Added']} actions>
            {list.map((e) => {
              const health = edgeHealth(e);
              return (
                <tr key={e.name}>
                  <td className="mono">{e.name}</td>
                  <td>{e.description || <span className="muted">—</span>}</td>
                  <td className="mono">{e.url ?? <span className="muted">— (pulls)</span>}</td>
                  <td>
                    <Badge tone={health.tone}>{health.label}</Badge>
                  </td>
                  <td>
                    <Time at={e.lastSeenAt} />
                  </td>
                  <td>
                    <Time at={e.createdAt} />
                  </td>
                  <td className="row-actions">
                    {canWrite && (
                      <>
                        <RowAction
                          label={`Change the URL of edge ${e.name}`}
                          onClick={() => {
                            setEdit({ url: e.url ?? '', token: '' });
                            setEditing(e);
                          }}
                        >
                          URL…
                        </RowAction>
                        <RowAction label={`Remove edge ${e.name}`} onClick={() => setRemoving(e)}>
                          Remove
                        </RowAction>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </Table>
        )}
      </LoadedList>
      <ConfirmDialog
        open={adding}
        title="Add an edge"
        confirmLabel="Add edge"
        confirmDisabled={!form.name.trim()}
        onClose={() => setAdding(false)}
        onConfirm={async () => {
          const made = await call(session.client, 'POST', '/api/v1/edges', createdEdge, {
            name: form.name.trim(),
            ...(form.description.trim() ? { description: form.description.trim() } : {}),
            ...(form.url.trim() ? { url: form.url.trim() } : {}),
          });
          setSecret({ name: made!.edge.name, token: made!.token });
          setForm({ name: '', description: '', url: '' });
          load.reload();
        }}
      >
        <TextField id="edge-name" label="Name" value={form.name} onChange={(value) => setForm({ ...form, name: value })} placeholder="shop-eu" hint="Letters, digits, “.”, “_” or “-”. Policies name their destinations by it." />
        <TextField id="edge-description" label="Description (optional)" value={form.description} onChange={(value) => setForm({ ...form, description: value })} />
        <TextField
          id="edge-url"
          label="URL (optional, for push)"
          value={form.url}
          onChange={(value) => setForm({ ...form, url: value })}
          placeholder="https://edge.shop.example:8080"
          hint="Where this server can reach the edge to push to it. Needs CONVOY_SECRET_KEY on this server (it keeps the edge's token sealed). Leave empty for an edge that fetches by itself."
        />
      </ConfirmDialog>
      <ConfirmDialog
        open={editing !== undefined}
        title={`URL of edge “${editing?.name ?? ''}”`}
        confirmLabel={edit.url.trim() ? 'Save URL' : 'Remove URL'}
        onClose={() => setEditing(undefined)}
        onConfirm={async () => {
          const url = edit.url.trim();
          await call(session.client, 'PATCH', `/api/v1/edges/${encodeURIComponent(editing!.name)}`, edge, url ? { url, ...(edit.token ? { token: edit.token } : {}) } : { url: null });
          setFlash(url ? `Edge ${editing!.name} can now be pushed to at ${url}.` : `Edge ${editing!.name} has no URL: it fetches by itself.`);
          setEdit({ url: '', token: '' });
          load.reload();
        }}
      >
        <TextField id="edge-edit-url" label="URL" value={edit.url} onChange={(value) => setEdit({ ...edit, url: value })} placeholder="https://edge.shop.example:8080" hint="Empty: no URL, the edge fetches by itself." />
        {editing?.url === null && edit.url.trim() !== '' && (
          <TextField
            id="edge-edit-token"
            type="password"
            autoComplete="off"
            label="The edge's token"
            value={edit.token}
            onChange={(value) => setEdit({ ...edit, token: value })}
            hint="This server keeps only a hash of the token it showed once; to push, it must hold the token itself (sealed under CONVOY_SECRET_KEY)."
          />
        )}
      </ConfirmDialog>
      <ConfirmDialog
        open={removing !== undefined}
        title={`Remove edge “${removing?.name ?? ''}”?`}
        confirmLabel="Remove edge"
        tone="danger"
        onClose={() => setRemoving(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `/api/v1/edges/${encodeURIComponent(removing!.name)}`, edge);
          setFlash(`Edge ${removing!.name} removed: its token no longer works.`);
          load.reload();
        }}
      >
        <p>Its token stops working at once; the devices it serves must reach another server.</p>
      </ConfirmDialog>
    </>
  );
}

export function RegistriesPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/registries', z.array(registryEndpoint)), []);
  const empty = { name: '', url: '', namespace: '', username: '', password: '' };
  const [adding, setAdding] = useState(false);
  const [form, setForm] = useState(empty);
  const [removing, setRemoving] = useState<RegistryEndpoint | undefined>(undefined);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const canWrite = session.can('registry:write');
  const set = (key: keyof typeof empty, value: string) => setForm({ ...form, [key]: value });
  const halfCredentials = !!form.username !== !!form.password;
  const close = () => {
    // The password is never kept once the dialog is closed.
    setForm(empty);
    setAdding(false);
  };
  return (
    <>
      <PageHeader
        title="Registry endpoints"
        actions={
          canWrite && (
            <button type="button" className="button button-primary" onClick={() => setAdding(true)}>
              Add registry endpoint
            </button>
          )
        }
      >
        <p className="lede">OCI registries that replication policies push a version’s images to. Credentials are stored encrypted and never shown again.</p>
      </PageHeader>
      <Flash message={flash} />
      <LoadedList load={load} what="the registry endpoints" empty={<Empty title="No registry endpoints yet">{canWrite ? 'Add one to push images to a site’s registry.' : null}</Empty>}>
        {(list) => (
          <Table caption="Registry endpoints" columns={['Name', 'URL', 'Namespace', 'Credentials', 'Added']} actions>
            {list.map((r) => (
              <tr key={r.name}>
                <td className="mono">{r.name}</td>
                <td className="mono">{r.url}</td>
                <td className="mono">{r.namespace ?? <span className="muted">—</span>}</td>
                <td>{r.credentials ? <Badge tone="info">set</Badge> : <Badge tone="neutral">none</Badge>}</td>
                <td>
                  <Time at={r.createdAt} />
                </td>
                <RowActionCell show={canWrite} label={`Remove registry endpoint ${r.name}`} onClick={() => setRemoving(r)}>
                  Remove
                </RowActionCell>
              </tr>
            ))}
          </Table>
        )}
      </LoadedList>
      <ConfirmDialog
        open={adding}
        title="Add a registry endpoint"
        confirmLabel="Add endpoint"
        confirmDisabled={!form.name.trim() || !form.url.trim() || halfCredentials}
        onClose={close}
        onConfirm={async () => {
          const made = await call(session.client, 'POST', '/api/v1/registries', registryEndpoint, {
            name: form.name.trim(),
            url: form.url.trim(),
            ...(form.namespace.trim() ? { namespace: form.namespace.trim() } : {}),
            ...(form.username ? { username: form.username, password: form.password } : {}),
          });
          setFlash(`Registry endpoint ${made!.name} added${made!.credentials ? ' with its credentials (stored encrypted)' : ''}.`);
          setForm(empty);
          load.reload();
        }}
      >
        <div className="form-grid">
          <TextField id="registry-name" label="Name" value={form.name} onChange={(value) => set('name', value)} placeholder="site-registry" />
          <TextField id="registry-url" label="URL" className="mono" value={form.url} onChange={(value) => set('url', value)} placeholder="https://registry.example.com:5000" />
          <TextField id="registry-namespace" label="Namespace (optional)" className="mono" value={form.namespace} onChange={(value) => set('namespace', value)} placeholder="site/convoy" hint="Images go to namespace/bundle/image." />
          <div />
          <TextField id="registry-username" label="User name (optional)" autoComplete="off" value={form.username} onChange={(value) => set('username', value)} />
          <TextField id="registry-password" label="Password (optional)" type="password" autoComplete="new-password" value={form.password} onChange={(value) => set('password', value)} />
        </div>
        {halfCredentials && (
          <p className="error-text" role="alert">
            Give both a user name and a password, or neither.
          </p>
        )}
      </ConfirmDialog>
      <ConfirmDialog
        open={removing !== undefined}
        title={`Remove registry endpoint “${removing?.name ?? ''}”?`}
        confirmLabel="Remove endpoint"
        tone="danger"
        onClose={() => setRemoving(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `/api/v1/registries/${encodeURIComponent(removing!.name)}`, registryEndpoint);
          setFlash(`Registry endpoint ${removing!.name} removed with its credentials.`);
          load.reload();
        }}
      >
        <p>Its stored credentials are deleted. Images already pushed stay in the registry.</p>
      </ConfirmDialog>
    </>
  );
}
