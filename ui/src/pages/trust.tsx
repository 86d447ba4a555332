import { trustStatus } from '../../../protocol/trust.ts';
import { getJson } from '../api.ts';
import { useSession } from '../session.tsx';
import { Badge, Loaded, PageHeader, Time, useLoad } from '../ui.tsx';

/** Who signs what: the TUF roles, their keys and thresholds, and which keys this server holds. */
export function TrustPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/trust', trustStatus), []);
  return (
    <>
      <PageHeader title="Signing keys">
        <p className="lede">Devices trust a release only when its metadata is signed by these keys, as the pinned root says.</p>
      </PageHeader>
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
            <table className="table">
              <caption className="sr-only">Roles and keys</caption>
              <thead>
                <tr>
                  <th scope="col">Role</th>
                  <th scope="col">Threshold</th>
                  <th scope="col">Keys</th>
                  <th scope="col">Held by this server</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(t.roles).map(([role, r]) => (
                  <tr key={role}>
                    <td>{role}</td>
                    <td>{r.threshold}</td>
                    <td className="mono small">{r.keyIds.map((k) => k.slice(0, 12)).join(', ')}</td>
                    <td>{r.heldByServer}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loaded>
    </>
  );
}
