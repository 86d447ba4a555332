import { useState, type FormEvent } from 'react';
import { bundle } from '../../../protocol/api.ts';
import { call, getPage } from '../api.ts';
import { TextAreaField, TextField } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { ConfirmDialog, Empty, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';

export function BundlesPage() {
  const session = useSession();
  const location = useLocation();
  const search = location.query.get('search') ?? '';
  const page = Number(location.query.get('page') ?? 1) || 1;
  const [draftSearch, setDraftSearch] = useState(search);
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const load = useLoad(() => getPage(session.client, '/api/v1/bundles', bundle, { search, page }), [search, page]);
  const go = (next: { search?: string; page?: number }) => {
    const params = new URLSearchParams();
    const s = next.search ?? search;
    if (s) params.set('search', s);
    if ((next.page ?? 1) > 1) params.set('page', String(next.page));
    navigate(`/bundles${params.size ? `?${params}` : ''}`);
  };
  const onSearch = (event: FormEvent) => {
    event.preventDefault();
    go({ search: draftSearch.trim().toLowerCase(), page: 1 });
  };

  return (
    <>
      <PageHeader
        title="Bundles"
        actions={
          session.can('bundle:create') && (
            <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
              New bundle
            </button>
          )
        }
      >
        <p className="lede">A bundle is a product you release: each version lists its artifacts and is signed once approved.</p>
      </PageHeader>
      <form className="toolbar" role="search" onSubmit={onSearch}>
        <label htmlFor="bundle-search">Search bundles</label>
        <input id="bundle-search" type="search" value={draftSearch} placeholder="part of a name" onChange={(e) => setDraftSearch(e.target.value)} />
        <button type="submit" className="button">
          Search
        </button>
      </form>
      <Loaded load={load} what="bundles">
        {(result) =>
          result.items.length === 0 ? (
            <Empty title={search ? `No bundle matches "${search}"` : 'No bundles yet'}>
              {search ? 'Try another part of the name.' : session.can('bundle:create') ? 'Create the first one with “New bundle”.' : 'Ask an administrator to add you to a bundle.'}
            </Empty>
          ) : (
            <>
              <Table caption="Bundles you can read" columns={['Name', 'Description', 'Your role', 'Created']}>
                {result.items.map((b) => (
                  <tr key={b.name}>
                    <td>
                      <Link to={`/bundles/${enc(b.name)}`} className="strong-link">
                        {b.name}
                      </Link>
                    </td>
                    <td>{b.description || <span className="muted">—</span>}</td>
                    <td>{session.user.bundles.find((m) => m.bundle === b.name)?.role ?? (session.user.actingAsAdmin ? 'admin' : '—')}</td>
                    <td>
                      <Time at={b.createdAt} />
                    </td>
                  </tr>
                ))}
              </Table>
              <p className="muted small">{result.total} bundle{result.total === 1 ? '' : 's'}</p>
              <Pager page={result.page} pages={result.pages} onPage={(p) => go({ page: p })} />
            </>
          )
        }
      </Loaded>
      <ConfirmDialog
        open={creating}
        title="New bundle"
        confirmLabel="Create bundle"
        confirmDisabled={!name.trim()}
        onClose={() => setCreating(false)}
        onConfirm={async () => {
          const created = await call(session.client, 'POST', '/api/v1/bundles', bundle, { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}) });
          // The creator becomes an Owner: refresh what the session may do.
          navigate(`/bundles/${enc(created!.name)}`);
          window.location.reload();
        }}
      >
        <TextField id="new-bundle-name" label="Name" value={name} onChange={setName} hint="Lowercase letters, digits, “.”, “_” and “-”, e.g. pos-app." />
        <TextAreaField id="new-bundle-description" label="Description (optional)" rows={2} value={description} onChange={setDescription} />
      </ConfirmDialog>
    </>
  );
}
