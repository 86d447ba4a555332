import { useState } from 'react';
import { enrollmentToken, maxEnrollmentTtlSeconds, maxEnrollmentUses, parseDuration, type EnrollmentToken } from '../../../protocol/enrollment.ts';
import { deviceGroup } from '../../../protocol/rollout.ts';
import { call, getAll } from '../api.ts';
import { Link, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { ConfirmDialog, PageHeader, SecretRow, Time, useLoad } from '../ui.tsx';

/*
 * Enrollment tokens (docs/device-install.md): a short-lived secret that lets a batch of devices
 * join a group with keys made on the devices, or one device enroll again after its certificate
 * lapsed. The server keeps only a hash, so the secret is shown here once, and the API has no
 * listing or revocation of them: a short TTL and few uses are the control.
 */

export function EnrollmentPage() {
  const session = useSession();
  const location = useLocation();
  const forDevice = location.query.get('device') ?? '';
  const groups = useLoad(() => getAll(session.client, '/api/v1/groups', deviceGroup), []);
  const [open, setOpen] = useState(forDevice !== '');
  const [form, setForm] = useState({ target: forDevice ? 'device' : 'group', group: '', device: forDevice, ttl: forDevice ? '1h' : '1d', uses: '1' });
  const [made, setMade] = useState<EnrollmentToken[]>([]);
  const set = (key: keyof typeof form, value: string) => setForm({ ...form, [key]: value });
  const ttlSeconds = parseDuration(form.ttl.trim());
  const uses = Number(form.uses);
  const problem =
    ttlSeconds === undefined || ttlSeconds < 60 || ttlSeconds > maxEnrollmentTtlSeconds
      ? 'Valid for: a duration from 1m to 7d, such as 30m, 12h or 7d.'
      : form.target === 'group' && (!Number.isInteger(uses) || uses < 1 || uses > maxEnrollmentUses)
        ? `Uses: a whole number from 1 to ${maxEnrollmentUses}.`
        : undefined;
  const canCreate = session.can('enrollment:create');
  const latest = made[0];
  return (
    <>
      <PageHeader
        title="Device enrollment"
        actions={
          canCreate && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              New enrollment token
            </button>
          )
        }
      >
        <p className="lede">
          A device enrolls with a short-lived token and a key it makes itself: it gets a certificate naming its id, the fleet’s CA and the TUF root to pin. Only a hash of each token is stored, so a token is
          shown once and cannot be listed or revoked later: keep its life short and its uses few.
        </p>
      </PageHeader>
      {!canCreate && (
        <div className="notice notice-warning" role="status">
          Creating enrollment tokens needs an administrator (a token with the <span className="mono">admin</span> scope).
        </div>
      )}
      {latest && latest.token && (
        <div className="notice notice-success secret" role="status">
          <strong>Enrollment token created</strong> for {latest.group ? `group ${latest.group}` : `device ${latest.device}`}: {latest.uses} use{latest.uses === 1 ? '' : 's'}, valid until <Time at={latest.expiresAt} />. Copy it now: it is shown only once.
          <SecretRow id="enrollment-secret" label="The new enrollment token" value={latest.token} onDone={() => setMade(made.map((t, i) => (i === 0 ? { ...t, token: '' } : t)))} />
          <p className="small">On the device:</p>
          <pre className="manifest small">{`convoyd enroll --server ${window.location.origin} --token "$TOKEN" --dir /etc/convoy${latest.device ? ` --id ${latest.device}` : ' --id <device id>'}`}</pre>
        </div>
      )}
      <section className="section" aria-labelledby="made-heading">
        <h2 id="made-heading">Created in this tab</h2>
        {made.length === 0 ? (
          <p className="muted">None yet. Tokens made elsewhere (convoy device token) are not listed: the server cannot show them.</p>
        ) : (
          <table className="table">
            <caption className="sr-only">Enrollment tokens created in this tab</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">For</th>
                <th scope="col">Uses</th>
                <th scope="col">Expires</th>
              </tr>
            </thead>
            <tbody>
              {made.map((t) => (
                <tr key={t.id}>
                  <td>{t.id}</td>
                  <td>{t.group ? <Link to={`/groups/${encodeURIComponent(t.group)}`}>group {t.group}</Link> : <Link to={`/devices/${encodeURIComponent(t.device!)}`}>device {t.device}</Link>}</td>
                  <td>{t.uses}</td>
                  <td>
                    <Time at={t.expiresAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <ConfirmDialog
        open={open}
        title="New enrollment token"
        confirmLabel="Create token"
        confirmDisabled={problem !== undefined || (form.target === 'group' ? !form.group.trim() : !form.device.trim())}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          const token = await call(session.client, 'POST', '/api/v1/enrollment-tokens', enrollmentToken, {
            ...(form.target === 'group' ? { group: form.group.trim(), uses } : { device: form.device.trim() }),
            ttlSeconds,
          });
          // Only the newest keeps its secret on screen; older ones keep their facts.
          setMade([token!, ...made.map((t) => ({ ...t, token: '' }))]);
        }}
      >
        <fieldset className="field">
          <legend>For</legend>
          <div className="field-check">
            <input id="enroll-for-group" type="radio" name="enroll-for" checked={form.target === 'group'} onChange={() => set('target', 'group')} />
            <label htmlFor="enroll-for-group">A batch of new devices joining a group</label>
          </div>
          <div className="field-check">
            <input id="enroll-for-device" type="radio" name="enroll-for" checked={form.target === 'device'} onChange={() => set('target', 'device')} />
            <label htmlFor="enroll-for-device">One existing device enrolling again</label>
          </div>
        </fieldset>
        <div className="form-grid">
          {form.target === 'group' ? (
            <div className="field">
              <label htmlFor="enroll-group">Group</label>
              <input id="enroll-group" list="enroll-groups" value={form.group} onChange={(e) => set('group', e.target.value)} placeholder="shop-berlin" />
              <datalist id="enroll-groups">
                {groups.state === 'ok' &&
                  groups.data
                    .filter((g) => g.kind === 'static')
                    .map((g) => (
                      <option key={g.name} value={g.name} />
                    ))}
              </datalist>
            </div>
          ) : (
            <div className="field">
              <label htmlFor="enroll-device">Device id</label>
              <input id="enroll-device" value={form.device} onChange={(e) => set('device', e.target.value)} placeholder="till-042" />
            </div>
          )}
          <div className="field">
            <label htmlFor="enroll-ttl">Valid for</label>
            <input id="enroll-ttl" value={form.ttl} onChange={(e) => set('ttl', e.target.value)} aria-describedby="enroll-ttl-hint" />
            <p className="hint" id="enroll-ttl-hint">
              e.g. 30m, 12h, 7d (at most 7 days).
            </p>
          </div>
          {form.target === 'group' && (
            <div className="field">
              <label htmlFor="enroll-uses">Uses</label>
              <input id="enroll-uses" type="number" min={1} max={maxEnrollmentUses} value={form.uses} onChange={(e) => set('uses', e.target.value)} aria-describedby="enroll-uses-hint" />
              <p className="hint" id="enroll-uses-hint">
                How many devices may enroll with it.
              </p>
            </div>
          )}
        </div>
        {problem && (
          <p className="error-text" role="alert">
            {problem}
          </p>
        )}
      </ConfirmDialog>
    </>
  );
}
