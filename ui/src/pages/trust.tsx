import { useRef, useState } from 'react';
import { createdKey, rootAccepted, trustStatus } from '../../../protocol/trust.ts';
import { call, getJson } from '../api.ts';
import { Table } from '../components/table.tsx';
import { useSession } from '../session.tsx';
import { Badge, ErrorNotice, Flash, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';

/** Who signs what: the TUF roles, their keys and thresholds, and which keys this server holds. */
export function TrustPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/trust', trustStatus), []);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [role, setRole] = useState('timestamp');
  const rootFile = useRef<HTMLInputElement>(null);
  const admin = session.can('keys:admin');
  const run = (action: () => Promise<string>) => {
    setError(undefined);
    action().then((message) => (setFlash(message), load.reload()), setError);
  };
  return (
    <>
      <PageHeader title="Signing keys">
        <p className="lede">Devices trust a release only when its metadata is signed by these keys, as the pinned root says.</p>
      </PageHeader>
      <Flash message={flash} />
      {error !== undefined && <ErrorNotice error={error} title="That did not work" />}
      {admin && (
        <section className="panel section" aria-labelledby="keys-admin-heading">
          <h2 id="keys-admin-heading">Key ceremony</h2>
          <p className="hint">
            A new online key is trusted only once a root signed offline names it (docs/key-ceremony.md). Upload that root here.
          </p>
          <div className="toolbar">
            <label htmlFor="key-role">Role</label>
            <select id="key-role" value={role} onChange={(e) => setRole(e.target.value)}>
              {['timestamp', 'snapshot', 'targets'].map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
            <button type="button" className="button" onClick={() => run(async () => `New ${role} key ${(await call(session.client, 'POST', '/api/v1/trust/keys', createdKey, { role }))!.keyId.slice(0, 12)}: name it in the next root.`)}>
              Generate online key
            </button>
            <button type="button" className="button" onClick={() => rootFile.current?.click()}>
              Upload signed root…
            </button>
            <input
              ref={rootFile}
              type="file"
              accept="application/json,.json"
              className="sr-only"
              tabIndex={-1}
              aria-label="Root metadata file"
              onChange={(e) => {
                const file = e.target.files?.[0];
                e.target.value = '';
                if (file) run(async () => `Root version ${(await call(session.client, 'POST', '/api/v1/trust/root', rootAccepted, JSON.parse(await file.text())))!.version} is in force.`);
              }}
            />
          </div>
        </section>
      )}
      <Loaded load={load} what="the signing keys">
        {(t) => (
          <>
            <dl className="facts facts-wide">
              <dt>Mode</dt>
              <dd>
                <Badge tone={t.mode === 'offline-root' ? 'success' : 'warning'}>{t.mode}</Badge>
              </dd>
              <dt>Targets signed</dt>
              <dd>{t.targetsSigning === 'server' ? 'by this server on approval' : 'offline, by the approvers’ own keys'}</dd>
              <dt>Root</dt>
              <dd>
                version {t.rootVersion}, expires <Time at={t.rootExpires} />
              </dd>
              <dt>Timestamp</dt>
              <dd>{t.timestamp ? <>version {t.timestamp.version}, expires <Time at={t.timestamp.expires} /></> : 'not yet signed'}</dd>
            </dl>
            <Table caption="Roles and keys" columns={['Role', 'Threshold', 'Keys', 'Held by this server']}>
              {Object.entries(t.roles).map(([role, r]) => (
                <tr key={role}>
                  <td>{role}</td>
                  <td>{r.threshold}</td>
                  <td className="mono small">{r.keyIds.map((k) => k.slice(0, 12)).join(', ')}</td>
                  <td>{r.heldByServer}</td>
                </tr>
              ))}
            </Table>
          </>
        )}
      </Loaded>
    </>
  );
}
