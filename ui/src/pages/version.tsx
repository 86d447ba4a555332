import { Fragment, useRef, useState, type DragEvent } from 'react';
import { z } from 'zod';
import { artifact, bundleVersion, packageFormats, type Artifact, type BundleVersion } from '../../../protocol/api.ts';
import { artifactTypes } from '../../../protocol/names.ts';
import { signatureReceipt, signingProposal, trustStatus } from '../../../protocol/trust.ts';
import { ApiFailure, call, describeError, getAll, getJson, uploadFile, type UploadHandle } from '../api.ts';
import { SelectField, TextAreaField } from '../components/fields.tsx';
import { RowAction, Table } from '../components/table.tsx';
import { enc, Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Digest, Empty, ErrorNotice, Flash, formatBytes, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';
import { resumableFromBytes, uploadResumable } from '../upload.ts';
import { verifyRelease, type Verification } from '../verify.ts';

export function VersionPage({ name, version }: { name: string; version: string }) {
  const session = useSession();
  const base = `/api/v1/bundles/${enc(name)}/versions/${enc(version)}`;
  // The approvals route answers the version with who approved it and any revocation.
  const details = useLoad(() => getJson(session.client, `${base}/approvals`, bundleVersion), [base]);
  const artifacts = useLoad(() => getAll(session.client, `${base}/artifacts`, artifact), [base]);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const uploads = useUploads(name, base, (message) => (setFlash(message), artifacts.reload()));
  const reload = () => {
    details.reload();
    artifacts.reload();
  };

  return (
    <Loaded load={details} what="the version">
      {(v) => (
        <>
          <PageHeader
            title={
              <>
                {name} <span className="version-number">{v.version}</span> <Badge>{v.status}</Badge>
              </>
            }
            crumbs={[
              { to: '/bundles', label: 'Bundles' },
              { to: `/bundles/${enc(name)}`, label: name },
            ]}
            actions={
              <Link to={`/bundles/${enc(name)}/diff?to=${enc(version)}`} className="button">
                Compare…
              </Link>
            }
          />
          <Flash message={flash} />
          <div className="grid-2">
            <ApprovalPanel name={name} v={v} artifacts={artifacts.state === 'ok' ? artifacts.data : []} onChanged={(message) => (setFlash(message), reload())} />
            <SignaturePanel name={name} v={v} />
          </div>
          {v.status === 'draft' && session.can('version:sign', name) && <OfflineSigning name={name} version={v.version} onSigned={(message) => (setFlash(message), reload())} />}
          <section className="section" aria-labelledby="artifacts-heading">
            <div className="section-head">
              <h2 id="artifacts-heading">Artifacts</h2>
              {artifacts.state === 'ok' && (
                <span className="muted">
                  {artifacts.data.length} artifact{artifacts.data.length === 1 ? '' : 's'}, {formatBytes(artifacts.data.reduce((sum, a) => sum + a.size, 0))}
                </span>
              )}
            </div>
            {v.status === 'draft' && session.can('bundle:write', name) && <UploadZone uploads={uploads} />}
            <Loaded load={artifacts} what="artifacts">
              {(list) => <ArtifactTable list={list} base={base} editable={v.status === 'draft' && session.can('bundle:write', name)} onRemoved={(message) => (setFlash(message), artifacts.reload())} onReplace={(a, file) => uploads.start([file], a.type === 'package' ? `package:${a.package?.format ?? 'generic'}` : a.type, a.name)} />}
            </Loaded>
          </section>
          {v.status === 'draft' && session.can('bundle:write', name) && <DeleteDraft name={name} version={version} base={base} />}
        </>
      )}
    </Loaded>
  );
}

function ApprovalPanel({ name, v, artifacts, onChanged }: { name: string; v: BundleVersion; artifacts: Artifact[]; onChanged: (message: string) => void }) {
  const session = useSession();
  const [approving, setApproving] = useState(false);
  const [revoking, setRevoking] = useState(false);
  const [reason, setReason] = useState('');
  const base = `/api/v1/bundles/${enc(name)}/versions/${enc(v.version)}`;
  const by = v.approvals?.by ?? [];
  const required = v.approvals?.required ?? 1;
  const mine = by.some((a) => a.principal === session.user.name);
  const total = artifacts.reduce((sum, a) => sum + a.size, 0);
  return (
    <section className="panel" aria-labelledby="approval-heading">
      <h2 id="approval-heading">Approval</h2>
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <Badge>{v.status}</Badge>
        </dd>
        <dt>Approvals</dt>
        <dd>
          {by.length} of {required} required
        </dd>
        <dt>Created</dt>
        <dd>
          <Time at={v.createdAt} />
        </dd>
        {v.approvedAt && (
          <>
            <dt>Approved</dt>
            <dd>
              <Time at={v.approvedAt} />
            </dd>
          </>
        )}
      </dl>
      {by.length > 0 ? (
        <ul className="approvals" aria-label="Approved by">
          {by.map((a) => (
            <li key={a.principal}>
              <span className="avatar" aria-hidden="true">
                {a.principal.slice(0, 1).toUpperCase()}
              </span>
              <span>
                <strong>{a.principal}</strong> approved <Time at={a.at} />
                {a.keyId && (
                  <>
                    {' '}
                    with key <code>{a.keyId.slice(0, 12)}</code>
                  </>
                )}
              </span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">Nobody has approved this version yet.</p>
      )}
      {v.revocation && (
        <div className="notice notice-error">
          <strong>Revoked</strong> by {v.revocation.by} <Time at={v.revocation.at} />: {v.revocation.reason}
        </div>
      )}
      <div className="button-row">
        {v.status === 'draft' && session.can('version:approve', name) && (
          <button type="button" className="button button-primary" onClick={() => setApproving(true)} disabled={mine}>
            {mine ? 'You approved this' : 'Approve…'}
          </button>
        )}
        {v.status === 'approved' && session.can('version:revoke', name) && (
          <button type="button" className="button button-danger" onClick={() => setRevoking(true)}>
            Revoke…
          </button>
        )}
      </div>
      {v.status === 'draft' && !session.can('version:approve', name) && <p className="hint">Approving needs the Maintainer role on {name} and a token with the “approve” scope.</p>}
      <ConfirmDialog
        open={approving}
        title={`Approve ${name} ${v.version}?`}
        confirmLabel="Approve and sign"
        onClose={() => setApproving(false)}
        onConfirm={async () => {
          const result = await call(session.client, 'POST', `${base}/approve`, bundleVersion);
          onChanged(result!.status === 'approved' ? `${name} ${v.version} is approved and signed.` : `Your approval is recorded (${result!.approvals?.by.length ?? 1} of ${result!.approvals?.required ?? required}).`);
        }}
      >
        <p>
          Your approval covers exactly these {artifacts.length} artifact{artifacts.length === 1 ? '' : 's'} ({formatBytes(total)}). {by.length + 1 >= required ? 'It completes the approvals needed: the version is frozen and signed, and devices may install it.' : `${required - by.length - 1} more approval(s) will be needed before it is signed.`}
        </p>
        <ul className="cover-list">
          {artifacts.map((a) => (
            <li key={a.name}>
              <span>{a.name}</span> <span className="muted">{formatBytes(a.size)}</span> <Digest value={a.digest} />
            </li>
          ))}
        </ul>
        <p className="hint">An approved version cannot change; a fix is a new version.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={revoking}
        title={`Revoke ${name} ${v.version}?`}
        confirmLabel="Revoke version"
        tone="danger"
        confirmDisabled={!reason.trim()}
        onClose={() => setRevoking(false)}
        onConfirm={async () => {
          await call(session.client, 'POST', `${base}/revoke`, z.unknown(), { reason: reason.trim() });
          onChanged(`${name} ${v.version} is revoked: devices will never install it again.`);
        }}
      >
        <p>The version is removed from the signed targets. Devices will never install it again.</p>
        <TextAreaField id="revoke-reason" label="Reason (recorded and shown to everyone)" rows={3} value={reason} onChange={setReason} />
      </ConfirmDialog>
    </section>
  );
}

function SignaturePanel({ name, v }: { name: string; v: BundleVersion }) {
  const session = useSession();
  const check = useLoad<Verification | undefined>(() => (v.status === 'approved' ? verifyRelease(session.client, name, v.version, v.manifestDigest) : Promise.resolve(undefined)), [name, v.version, v.status, v.manifestDigest]);
  return (
    <section className="panel" aria-labelledby="signature-heading">
      <h2 id="signature-heading">Signed manifest</h2>
      {v.status === 'draft' && <p className="muted">A draft is not signed. Once approved, its manifest is signed into the TUF targets metadata that devices verify.</p>}
      {v.status === 'revoked' && <p className="muted">This version was removed from the signed targets when it was revoked.</p>}
      {v.status === 'approved' && (
        <>
          <dl className="facts">
            <dt>Manifest</dt>
            <dd>
              <Digest value={v.manifestDigest} />
            </dd>
          </dl>
          {check.state === 'loading' && <p role="status">Checking the signed metadata…</p>}
          {check.state === 'error' && (
            <div className="notice notice-warning" role="status">
              Could not check the signed metadata: {describeError(check.error)}
            </div>
          )}
          {check.state === 'ok' && check.data && (
            <div className={`verification ${check.data.ok ? 'verification-ok' : 'verification-bad'}`} role="status">
              <Badge tone={check.data.ok ? 'success' : 'danger'}>{check.data.ok ? 'signed' : 'not verified'}</Badge>
              <ul>
                {check.data.steps.map((step) => (
                  <li key={step.what} className={step.ok ? 'step-ok' : 'step-bad'}>
                    <span aria-hidden="true">{step.ok ? '✓' : '✗'}</span> {step.what}
                  </li>
                ))}
              </ul>
              {check.data.manifest && (
                <details className="manifest">
                  <summary>Show the signed manifest</summary>
                  <pre tabIndex={0} aria-label="Signed manifest">{check.data.manifest}</pre>
                </details>
              )}
            </div>
          )}
          {check.state === 'ok' && check.data && <RollbackSetting name={name} version={v.version} allowed={check.data.rollback} onChanged={check.reload} />}
        </>
      )}
    </section>
  );
}

/**
 * Offline mode (targets signed by the approvers' own keys, not the server's): review what the
 * signature adds and removes, sign with the CLI (the key never leaves its owner's machine), or
 * paste a signature made elsewhere.
 */
function OfflineSigning({ name, version, onSigned }: { name: string; version: string; onSigned: (message: string) => void }) {
  const session = useSession();
  const base = `/api/v1/bundles/${enc(name)}/versions/${enc(version)}`;
  const trust = useLoad(() => getJson(session.client, '/api/v1/trust', trustStatus), []);
  const offline = trust.state === 'ok' && trust.data.targetsSigning === 'offline';
  const proposal = useLoad(() => (offline ? getJson(session.client, `${base}/signing`, signingProposal) : Promise.resolve(undefined)), [base, offline]);
  const [keyid, setKeyid] = useState('');
  const [sig, setSig] = useState('');
  // One signature per further document the change needs (targets.json when the set of bundles changes).
  const [alsoSigs, setAlsoSigs] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(undefined);
  if (!offline) return null;
  return (
    <section className="panel section" aria-labelledby="offline-heading">
      <h2 id="offline-heading">Offline signing</h2>
      <Loaded load={proposal} what="the signing proposal">
        {(p) =>
          p && (
            <>
              <p>
                {p.signatures.length} of {p.threshold} signatures. Signing publishes to devices:{' '}
                {p.added.length > 0 ? <>adds {p.added.map((x) => <code key={x}>{x} </code>)}</> : 'adds nothing'}
                {p.removed.length > 0 && <>, removes {p.removed.map((x) => <code key={x}>{x} </code>)}</>}.
              </p>
              <p className="hint">
                Sign with your own key: <code>convoy bundle sign {name}@{version} --key FILE</code>, or paste a signature over the proposal's canonical JSON (proposal {p.proposalId}, role <code>{p.role}</code>)
                {p.also.length > 0 && <>, and one over each further document this change needs ({p.also.map((doc) => doc.role).join(', ')})</>}:
              </p>
              <div className="toolbar">
                <label htmlFor="sign-keyid">Key id</label>
                <input id="sign-keyid" className="mono" value={keyid} onChange={(e) => setKeyid(e.target.value.trim())} />
                <label htmlFor="sign-sig">Signature (hex)</label>
                <input id="sign-sig" className="mono" value={sig} onChange={(e) => setSig(e.target.value.trim())} />
                {p.also.map((doc) => (
                  <Fragment key={doc.role}>
                    <label htmlFor={`sign-also-${doc.role}`}>Signature over {doc.role} (hex)</label>
                    <input id={`sign-also-${doc.role}`} className="mono" value={alsoSigs[doc.role] ?? ''} onChange={(e) => setAlsoSigs({ ...alsoSigs, [doc.role]: e.target.value.trim() })} />
                  </Fragment>
                ))}
                <button
                  type="button"
                  className="button button-primary"
                  disabled={!keyid || !sig || p.also.some((doc) => !alsoSigs[doc.role])}
                  onClick={() => {
                    setError(undefined);
                    const also = p.also.map((doc) => ({ role: doc.role, sig: alsoSigs[doc.role]! }));
                    call(session.client, 'POST', `${base}/signatures`, signatureReceipt, { proposalId: p.proposalId, keyid, sig, ...(also.length > 0 ? { also } : {}) }).then(
                      (r) => onSigned(r!.published ? `Signed and published to devices.` : `Signature recorded: ${r!.signatures.length} of ${r!.threshold}.`),
                      setError,
                    );
                  }}
                >
                  Add signature
                </button>
              </div>
              {error !== undefined && <ErrorNotice error={error} title="The signature was refused" />}
            </>
          )
        }
      </Loaded>
    </section>
  );
}

/** Whether devices may downgrade to this version (a signed rollback), and the switch for it. */
function RollbackSetting({ name, version, allowed, onChanged }: { name: string; version: string; allowed: boolean; onChanged: () => void }) {
  const session = useSession();
  const [open, setOpen] = useState(false);
  return (
    <div className="rollback">
      <p>
        Devices may roll back to this version: <strong>{allowed ? 'yes' : 'no'}</strong>
        {session.can('version:approve', name) && (
          <>
            {' '}
            <button type="button" className="button button-small" onClick={() => setOpen(true)}>
              {allowed ? 'Stop allowing…' : 'Allow rollback…'}
            </button>
          </>
        )}
      </p>
      <ConfirmDialog
        open={open}
        title={allowed ? `Stop allowing rollbacks to ${version}?` : `Allow rollbacks to ${version}?`}
        confirmLabel={allowed ? 'Stop allowing' : 'Allow rollback'}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await call(session.client, 'PUT', `/api/v1/bundles/${enc(name)}/versions/${enc(version)}/rollback`, z.unknown(), { allowed: !allowed });
          onChanged();
        }}
      >
        <p>
          {allowed
            ? 'Devices running a newer version will refuse to downgrade to this one again.'
            : 'Devices running a newer version will accept this one when it is deployed with --rollback: the permission is signed into the targets metadata.'}
        </p>
      </ConfirmDialog>
    </div>
  );
}

function ArtifactTable({ list, base, editable, onRemoved, onReplace }: { list: Artifact[]; base: string; editable: boolean; onRemoved: (message: string) => void; onReplace: (artifact: Artifact, file: File) => void }) {
  const session = useSession();
  const [removing, setRemoving] = useState<string | undefined>(undefined);
  const replaceInput = useRef<HTMLInputElement>(null);
  const [replacing, setReplacing] = useState<Artifact | undefined>(undefined);
  const [editing, setEditing] = useState<Artifact | undefined>(undefined);
  if (list.length === 0) return <Empty title="No artifacts yet">{editable ? 'Drop files above to add them.' : null}</Empty>;
  return (
    <>
      <Table caption="Artifacts" columns={['Name', 'Type', 'Package', { label: 'Size', className: 'num' }, 'Digest', 'Updated']} actions>
        {list.map((a) => (
          <tr key={a.name}>
            <td className="mono">{a.name}</td>
            <td>
              <Badge tone="neutral">{a.type}</Badge>
            </td>
            <td>{a.package ? `${a.package.name} ${a.package.version} (${a.package.format}, ${a.package.architecture})` : <span className="muted">—</span>}</td>
            <td className="num">{formatBytes(a.size)}</td>
            <td>
              <Digest value={a.digest} />
            </td>
            <td>
              <Time at={a.updatedAt} />
            </td>
            <td className="row-actions">
              {session.can('blob:read') && (
                <RowAction label={`Download ${a.name}`} onClick={() => void download(session.client, a)}>
                  Download
                </RowAction>
              )}
            {editable && (
              <>
                <RowAction label={`Edit ${a.name}`} onClick={() => setEditing(a)}>
                  Edit
                </RowAction>
                {a.type !== 'image' && (
                  <button
                    type="button"
                    className="button button-small button-ghost"
                    aria-label={`Replace ${a.name}`}
                    onClick={() => {
                      setReplacing(a);
                      replaceInput.current?.click();
                    }}
                  >
                    Replace
                  </button>
                )}
                <RowAction label={`Remove ${a.name}`} onClick={() => setRemoving(a.name)}>
                  Remove
                </RowAction>
              </>
            )}
            </td>
          </tr>
        ))}
      </Table>
      <input
        ref={replaceInput}
        type="file"
        className="sr-only"
        tabIndex={-1}
        aria-label={replacing ? `New file for ${replacing.name}` : 'New file'}
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file && replacing) onReplace(replacing, file);
          e.target.value = '';
        }}
      />
      {editing && <EditArtifactDialog base={base} artifact={editing} onClose={() => setEditing(undefined)} onSaved={(message) => onRemoved(message)} />}
      <ConfirmDialog
        open={removing !== undefined}
        title={`Remove ${removing ?? ''}?`}
        confirmLabel="Remove artifact"
        tone="danger"
        onClose={() => setRemoving(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `${base}/artifacts/${enc(removing!)}`, undefined);
          onRemoved(`${removing} was removed from the draft.`);
        }}
      >
        <p>The artifact leaves this draft. Other versions that hold the same bytes keep them.</p>
      </ConfirmDialog>
    </>
  );
}

/**
 * Saves an artifact's bytes (GET /api/v1/blobs/:digest with the session's token: a plain link
 * could not send it). The bytes pass through memory, which suits files up to a few hundred MB.
 */
async function download(client: { token: string }, a: Artifact): Promise<void> {
  const response = await fetch(`/api/v1/blobs/${a.digest}`, { headers: { authorization: `Bearer ${client.token}` } });
  if (!response.ok) {
    window.alert(`The download was refused (${response.status}).`);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = a.name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Changes what an artifact of a draft is (its type, its package metadata); new bytes go through Replace. */
function EditArtifactDialog({ base, artifact: a, onClose, onSaved }: { base: string; artifact: Artifact; onClose: () => void; onSaved: (message: string) => void }) {
  const session = useSession();
  const [type, setType] = useState<string>(a.type);
  const [pkg, setPkg] = useState({ format: a.package?.format ?? 'generic', name: a.package?.name ?? '', version: a.package?.version ?? '', architecture: a.package?.architecture ?? '' });
  const field = (key: 'name' | 'version' | 'architecture', label: string) => (
    <div className="field">
      <label htmlFor={`edit-pkg-${key}`}>{label}</label>
      <input id={`edit-pkg-${key}`} value={pkg[key]} onChange={(e) => setPkg({ ...pkg, [key]: e.target.value })} aria-describedby="edit-pkg-hint" />
    </div>
  );
  return (
    <ConfirmDialog
      open
      title={`Edit ${a.name}`}
      confirmLabel="Save"
      onClose={onClose}
      onConfirm={async () => {
        const body =
          type === 'package'
            ? { type, package: { format: pkg.format, ...(pkg.name ? { name: pkg.name } : {}), ...(pkg.version ? { version: pkg.version } : {}), ...(pkg.architecture ? { architecture: pkg.architecture } : {}) } }
            : { type, ...(a.package ? { package: null } : {}) };
        await call(session.client, 'PATCH', `${base}/artifacts/${enc(a.name)}`, artifact, body);
        onSaved(`${a.name} was updated.`);
      }}
    >
      <SelectField id="edit-type" label="Type" value={type} onChange={setType} options={artifactTypes} />
      {type === 'package' && (
        <>
          <div className="field">
            <label htmlFor="edit-pkg-format">Package format</label>
            <select id="edit-pkg-format" value={pkg.format} onChange={(e) => setPkg({ ...pkg, format: e.target.value as typeof pkg.format })}>
              {packageFormats.map((f) => (
                <option key={f} value={f}>
                  {f}
                </option>
              ))}
            </select>
          </div>
          {field('name', 'Package name')}
          {field('version', 'Package version')}
          {field('architecture', 'Architecture')}
          <p className="hint" id="edit-pkg-hint">
            deb, rpm and npm packages describe themselves: leave these empty, or give what the file says.
          </p>
        </>
      )}
    </ConfirmDialog>
  );
}

interface Upload {
  id: number;
  name: string;
  size: number;
  sent: number;
  state: 'uploading' | 'done' | 'failed';
  error?: string;
  handle?: UploadHandle;
}

/** Artifact names are an allow-list; a file called "My App (1).deb" becomes "My-App-1-.deb". */
function artifactNameOf(fileName: string): string {
  const cleaned = fileName.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^\.+/, '');
  return cleaned.slice(0, 128) || 'file';
}

/** The uploads of one draft: shared by the drop zone and each artifact's "Replace". */
function useUploads(bundle: string, base: string, onUploaded: (message: string) => void) {
  const session = useSession();
  const [uploads, setUploads] = useState<Upload[]>([]);
  const counter = useRef(0);
  const update = (id: number, change: Partial<Upload>) => setUploads((list) => list.map((u) => (u.id === id ? { ...u, ...change } : u)));

  /** `kind`: an artifact type, or `package:<format>`; `as`: the artifact to replace. */
  const start = (files: FileList | File[], kind: string, as?: string) => {
    for (const file of Array.from(files)) {
      const id = ++counter.current;
      const name = as ?? artifactNameOf(file.name);
      const query = new URLSearchParams();
      if (kind.startsWith('package:')) {
        query.set('type', 'package');
        query.set('format', kind.slice('package:'.length));
      } else query.set('type', kind);
      const onProgress = (sent: number) => update(id, { sent });
      let handle: UploadHandle;
      if (file.size >= resumableFromBytes) {
        // Large files: a resumable session (a dropped connection costs one chunk), then the
        // artifact names the stored blob.
        const task = uploadResumable(session.client, bundle, file, onProgress);
        const type = kind.startsWith('package:') ? 'package' : kind;
        handle = {
          abort: task.abort,
          done: task.done.then(({ digest, size }) =>
            call(session.client, 'PUT', `${base}/artifacts/${enc(name)}`, artifact, { type, digest, size, ...(type === 'package' ? { package: { format: kind.slice('package:'.length) } } : {}) }),
          ),
        };
      } else handle = uploadFile(session.client, `${base}/files/${enc(name)}?${query}`, file, onProgress);
      setUploads((list) => [...list, { id, name, size: file.size, sent: 0, state: 'uploading', handle }]);
      handle.done.then(
        () => {
          update(id, { state: 'done', sent: file.size, handle: undefined });
          onUploaded(as ? `${name} replaced.` : `${name} uploaded.`);
        },
        (error: unknown) => {
          const resumable = file.size >= resumableFromBytes && !(error instanceof ApiFailure && error.code === 'aborted');
          const reason = error instanceof ApiFailure ? describeError(error) : String(error);
          update(id, { state: 'failed', error: resumable ? `${reason}. Drop the same file again to continue where it stopped.` : reason, handle: undefined });
        },
      );
    }
  };
  return { uploads, start };
}

type Uploads = ReturnType<typeof useUploads>;

function UploadZone({ uploads: { uploads, start } }: { uploads: Uploads }) {
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const [kind, setKind] = useState('file');

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (event.dataTransfer.files.length > 0) start(event.dataTransfer.files, kind);
  };

  return (
    <div className="upload">
      <div className="toolbar">
        <label htmlFor="upload-kind">Add files as</label>
        <select id="upload-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          {artifactTypes
            .filter((t) => t !== 'package' && t !== 'image')
            .map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          {packageFormats.map((f) => (
            <option key={f} value={`package:${f}`}>
              {f} package
            </option>
          ))}
        </select>
      </div>
      <div
        className={`dropzone${dragging ? ' dropzone-active' : ''}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <p>
          <strong>Drop files here</strong> to add them to this draft, or
        </p>
        <button type="button" className="button" onClick={() => input.current?.click()}>
          Choose files…
        </button>
        <input ref={input} type="file" multiple className="sr-only" aria-label="Files to upload" tabIndex={-1} onChange={(e) => e.target.files && (start(e.target.files, kind), (e.target.value = ''))} />
        <p className="hint">A file with the name of an existing artifact replaces it. Package metadata is read from .deb, .rpm and npm files.</p>
      </div>
      {uploads.length > 0 && (
        <ul className="uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li key={u.id} className={`upload-row upload-${u.state}`}>
              <span className="mono">{u.name}</span>
              <progress id={`upload-${u.id}`} max={u.size || 1} value={u.sent} aria-label={`Upload of ${u.name}`} />
              <span className="upload-status">
                {u.state === 'uploading' && `${Math.floor((u.sent / (u.size || 1)) * 100)}% of ${formatBytes(u.size)}`}
                {u.state === 'done' && 'Uploaded'}
                {u.state === 'failed' && <span className="error-text">Failed: {u.error}</span>}
              </span>
              {u.handle && (
                <button type="button" className="button button-small button-ghost" onClick={() => u.handle?.abort()}>
                  Cancel
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function DeleteDraft({ name, version, base }: { name: string; version: string; base: string }) {
  const session = useSession();
  const [open, setOpen] = useState(false);
  return (
    <section className="section danger-zone" aria-labelledby="delete-draft-heading">
      <h2 id="delete-draft-heading">Delete this draft</h2>
      <p>The draft and its list of artifacts go; blobs other versions hold stay.</p>
      <button type="button" className="button button-danger" onClick={() => setOpen(true)}>
        Delete draft…
      </button>
      <ConfirmDialog
        open={open}
        title={`Delete draft ${version}?`}
        confirmLabel="Delete draft"
        tone="danger"
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', base, undefined);
          navigate(`/bundles/${enc(name)}`);
        }}
      >
        <p>This cannot be undone.</p>
      </ConfirmDialog>
    </section>
  );
}
