import { useState } from 'react';
import { member } from '../../../protocol/access.ts';
import { bundle, bundleVersion, nextVersion } from '../../../protocol/api.ts';
import { trustPolicy } from '../../../protocol/trust.ts';
import { call, getJson, getPage } from '../api.ts';
import { SelectField } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { MembersSection } from '../components/members.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Flash, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';

const statuses = ['draft', 'approved', 'revoked'] as const;

export function BundlePage({ name }: { name: string }) {
  const session = useSession();
  const location = useLocation();
  const status = location.query.get('status') ?? '';
  const page = Number(location.query.get('page') ?? 1) || 1;
  const info = useLoad(() => getJson(session.client, `/api/v1/bundles/${enc(name)}`, bundle), [name]);
  const versions = useLoad(() => getPage(session.client, `/api/v1/bundles/${enc(name)}/versions`, bundleVersion, { status: status || undefined, page }), [name, status, page]);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const setQuery = (next: { status?: string; page?: number }) => {
    const params = new URLSearchParams();
    const s = next.status ?? status;
    if (s) params.set('status', s);
    if ((next.page ?? 1) > 1) params.set('page', String(next.page));
    navigate(`/bundles/${enc(name)}${params.size ? `?${params}` : ''}`);
  };

  return (
    <>
      <PageHeader
        title={name}
        crumbs={[{ to: '/bundles', label: 'Bundles' }]}
        actions={
          <>
            <Link to={`/bundles/${enc(name)}/diff`} className="button">
              Compare versions
            </Link>
            {session.can('replication:read', name) && (
              <Link to={`/bundles/${enc(name)}/replication`} className="button">
                Replication
              </Link>
            )}
            {session.can('bundle:write', name) && (
              <button type="button" className="button button-primary" onClick={() => setCreating(true)}>
                New draft
              </button>
            )}
          </>
        }
      >
        {info.state === 'ok' && info.data.description && <p className="lede">{info.data.description}</p>}
      </PageHeader>
      <Flash message={flash} />

      <section aria-labelledby="versions-heading" className="section">
        <div className="section-head">
          <h2 id="versions-heading">Versions</h2>
          <div className="segmented" role="group" aria-label="Filter by status">
            {['', ...statuses].map((s) => (
              <button key={s || 'all'} type="button" className="button button-small" aria-pressed={status === s} onClick={() => setQuery({ status: s, page: 1 })}>
                {s || 'all'}
              </button>
            ))}
          </div>
        </div>
        <Loaded load={versions} what="versions">
          {(result) =>
            result.items.length === 0 ? (
              <Empty title={status ? `No ${status} versions` : 'No versions yet'}>{session.can('bundle:write', name) && !status ? 'Start one with “New draft”.' : null}</Empty>
            ) : (
              <>
                <Table caption={`Versions of ${name}`} columns={['Version', 'Status', 'Created', 'Approved']}>
                  {[...result.items].reverse().map((v) => (
                    <tr key={v.version}>
                      <td>
                        <Link to={`/bundles/${enc(name)}/versions/${enc(v.version)}`} className="strong-link">
                          {v.version}
                        </Link>
                      </td>
                      <td>
                        <Badge>{v.status}</Badge>
                      </td>
                      <td>
                        <Time at={v.createdAt} />
                      </td>
                      <td>
                        <Time at={v.approvedAt} />
                      </td>
                    </tr>
                  ))}
                </Table>
                <Pager page={result.page} pages={result.pages} onPage={(p) => setQuery({ page: p })} />
              </>
            )
          }
        </Loaded>
      </section>

      <MembersSection
        of={name}
        base={`/api/v1/bundles/${enc(name)}`}
        idPrefix="member"
        schema={member}
        canRead={session.can('member:read', name)}
        canWrite={session.can('member:write', name)}
        defaultRole="reporter"
        addTitle="Add a member or change a role"
        removeText={(user) => (
          <p>
            {user} will lose access to {name}.
          </p>
        )}
      />
      {session.can('keys:admin', name) && <ApprovalPolicySection name={name} onSaved={setFlash} />}

      {session.can('bundle:delete', name) && (
        <section className="section danger-zone" aria-labelledby="danger-heading">
          <h2 id="danger-heading">Delete this bundle</h2>
          <p>Only a bundle without an approved version can be deleted. Its drafts go with it.</p>
          <button type="button" className="button button-danger" onClick={() => setDeleting(true)}>
            Delete bundle…
          </button>
        </section>
      )}

      <NewDraftDialog name={name} open={creating} onClose={() => setCreating(false)} versions={versions.state === 'ok' ? versions.data.items.map((v) => v.version) : []} />
      <ConfirmDialog
        open={deleting}
        title={`Delete ${name}?`}
        confirmLabel="Delete bundle"
        tone="danger"
        onClose={() => setDeleting(false)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `/api/v1/bundles/${enc(name)}`, undefined);
          navigate('/bundles');
        }}
      >
        <p>
          The bundle <strong>{name}</strong> and its drafts will be deleted. This cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

function NewDraftDialog({ name, open, onClose, versions }: { name: string; open: boolean; onClose: () => void; versions: string[] }) {
  const session = useSession();
  const [version, setVersion] = useState('');
  const [copyFrom, setCopyFrom] = useState('');
  const suggest = async (bump: 'major' | 'minor' | 'patch') => {
    const next = await getJson(session.client, `/api/v1/bundles/${enc(name)}/versions/next`, nextVersion, { bump });
    setVersion(next.version);
    if (next.previous && !copyFrom) setCopyFrom(next.previous);
  };
  return (
    <ConfirmDialog
      open={open}
      title="New draft version"
      confirmLabel="Create draft"
      confirmDisabled={!version.trim()}
      onClose={onClose}
      onConfirm={async () => {
        const created = await call(session.client, 'POST', `/api/v1/bundles/${enc(name)}/versions`, bundleVersion, { version: version.trim(), ...(copyFrom ? { copyFrom } : {}) });
        navigate(`/bundles/${enc(name)}/versions/${enc(created!.version)}`);
      }}
    >
      <div className="field">
        <label htmlFor="draft-version">Version</label>
        <input id="draft-version" value={version} onChange={(e) => setVersion(e.target.value)} placeholder="1.0.0" aria-describedby="draft-version-hint" />
        <p className="hint" id="draft-version-hint">
          Semantic version (major.minor.patch, optionally -rc.1). Suggest the next:
        </p>
        <div className="button-row">
          {(['patch', 'minor', 'major'] as const).map((bump) => (
            <button key={bump} type="button" className="button button-small" onClick={() => void suggest(bump)}>
              next {bump}
            </button>
          ))}
        </div>
      </div>
      <SelectField id="draft-copy" label="Start from" value={copyFrom} onChange={setCopyFrom}>
        <option value="">an empty draft</option>
        {versions.map((v) => (
          <option key={v} value={v}>
            the artifacts of {v}
          </option>
        ))}
      </SelectField>
    </ConfirmDialog>
  );
}

function ApprovalPolicySection({ name, onSaved }: { name: string; onSaved: (message: string) => void }) {
  const session = useSession();
  const [required, setRequired] = useState('1');
  const [error, setError] = useState<string | undefined>(undefined);
  const save = async () => {
    setError(undefined);
    try {
      const saved = await call(session.client, 'PUT', `/api/v1/bundles/${enc(name)}/trust-policy`, trustPolicy, { requiredApprovals: Number(required) });
      onSaved(`Versions of ${name} now need ${saved!.requiredApprovals} approval${saved!.requiredApprovals === 1 ? '' : 's'}.`);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };
  return (
    <section className="section" aria-labelledby="policy-heading">
      <h2 id="policy-heading">Approval policy</h2>
      <p>How many different people must approve a draft before it is signed.</p>
      <div className="toolbar">
        <label htmlFor="policy-required">Required approvals</label>
        <input id="policy-required" type="number" min={1} max={32} value={required} onChange={(e) => setRequired(e.target.value)} className="input-narrow" />
        <button type="button" className="button" onClick={() => void save()}>
          Save policy
        </button>
      </div>
      {error && (
        <div className="notice notice-error" role="alert">
          {error}
        </div>
      )}
    </section>
  );
}
