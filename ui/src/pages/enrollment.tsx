import { useState } from 'react';
import { enrollmentToken, enrollmentTokenList, enrollmentTokenRevocation, maxEnrollmentTtlSeconds, maxEnrollmentUses, parseDuration, type EnrollmentToken, type EnrollmentTokenInfo } from '../../../protocol/enrollment.ts';
import { deviceGroup } from '../../../protocol/rollout.ts';
import { call, getAll, getJson } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import { LoadedList, RowActionCell, Table } from '../components/table.tsx';
import { Link, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { SecretNotice } from '../components/secret.tsx';
import { ConfirmDialog, Empty, Flash, PageHeader, Time, useLoad } from '../ui.tsx';

/*
 * Enrollment tokens (docs/device-install.md): a short-lived secret that lets a batch of devices
 * join a group with keys made on the devices, or one device enroll again after its certificate
 * lapsed. The server keeps only a hash, so the secret is shown here once; the live tokens are
 * listed (never their secret) and a leaked one is revoked at once.
 */

export function EnrollmentPage() {
  const session = useSession();
  const location = useLocation();
  const forDevice = location.query.get('device') ?? '';
  const groups = useLoad(() => getAll(session.client, '/api/v1/groups', deviceGroup), []);
  const [open, setOpen] = useState(forDevice !== '');
  const [form, setForm] = useState({ target: forDevice ? 'device' : 'group', group: '', device: forDevice, ttl: forDevice ? '1h' : '1d', uses: '1' });
  // The newest token made in this tab, its secret shown once (until Done).
  const [latest, setLatest] = useState<EnrollmentToken | undefined>(undefined);
  const [revoking, setRevoking] = useState<EnrollmentTokenInfo | undefined>(undefined);
  const [flash, setFlash] = useState<string | undefined>(undefined);
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
  const live = useLoad(async () => (canCreate ? (await getJson(session.client, '/api/v1/enrollment-tokens', enrollmentTokenList)).tokens : []), [canCreate]);
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
          shown once; the live ones are listed below, and one that leaked is revoked at once.
        </p>
      </PageHeader>
      {!canCreate && (
        <div className="notice notice-warning" role="status">
          Creating enrollment tokens needs an administrator (a token with the <span className="mono">admin</span> scope).
        </div>
      )}
      {latest && latest.token && (
        <SecretNotice
          title="Enrollment token created"
          note={
            <>
              for {latest.group ? `group ${latest.group}` : `device ${latest.device}`}: {latest.uses} use{latest.uses === 1 ? '' : 's'}, valid until <Time at={latest.expiresAt} />. Copy it now: it is shown only once.
            </>
          }
          id="enrollment-secret"
          label="The new enrollment token"
          value={latest.token}
          onDone={() => setLatest(undefined)}
        >
          <p className="small">On the device:</p>
          <pre className="manifest small">{`convoyd enroll --server ${window.location.origin} --token "$TOKEN" --dir /etc/convoy${latest.device ? ` --id ${latest.device}` : ' --id <device id>'}`}</pre>
        </SecretNotice>
      )}
      <Flash message={flash} />
      {canCreate && (
        <section className="section" aria-labelledby="live-heading">
          <h2 id="live-heading">Live tokens</h2>
          <LoadedList
            load={live}
            what="the enrollment tokens"
            empty={<Empty title="No live enrollment tokens">Used up, expired and revoked tokens are not listed.</Empty>}
          >
            {(list) => (
              <Table caption="Live enrollment tokens, newest first" columns={['Id', 'For', 'Uses left', 'Expires', 'Made by']} actions>
                {list.map((t) => (
                  <tr key={t.id}>
                    <td>{t.id}</td>
                    <td>{t.group ? <Link to={`/groups/${encodeURIComponent(t.group)}`}>group {t.group}</Link> : <Link to={`/devices/${encodeURIComponent(t.device!)}`}>device {t.device}</Link>}</td>
                    <td>
                      {t.usesLeft} of {t.uses}
                    </td>
                    <td>
                      <Time at={t.expiresAt} />
                    </td>
                    <td>
                      {t.createdBy}, <Time at={t.createdAt} />
                    </td>
                    <RowActionCell label={`Revoke enrollment token ${t.id}`} onClick={() => setRevoking(t)}>
                      Revoke
                    </RowActionCell>
                  </tr>
                ))}
              </Table>
            )}
          </LoadedList>
        </section>
      )}
      <ConfirmDialog
        open={revoking !== undefined}
        title={`Revoke enrollment token ${revoking?.id ?? ''}?`}
        confirmLabel="Revoke token"
        tone="danger"
        onClose={() => setRevoking(undefined)}
        onConfirm={async () => {
          const done = await call(session.client, 'DELETE', `/api/v1/enrollment-tokens/${revoking!.id}`, enrollmentTokenRevocation);
          setFlash(`Enrollment token ${done!.id} is revoked: no device enrolls with it from now on.`);
          if (latest?.id === done!.id) setLatest(undefined);
          live.reload();
        }}
      >
        <p>
          No device enrolls with it from now on ({revoking?.usesLeft} of {revoking?.uses} uses were left). Devices already enrolled with it keep their certificates.
        </p>
      </ConfirmDialog>
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
          // Only the newest keeps its secret on screen; the list shows every live one's facts.
          setLatest(token!);
          live.reload();
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
            <TextField
              id="enroll-group"
              label="Group"
              list="enroll-groups"
              value={form.group}
              onChange={(value) => set('group', value)}
              placeholder="shop-berlin"
              extra={
                <datalist id="enroll-groups">
                  {groups.state === 'ok' &&
                    groups.data
                      .filter((g) => g.kind === 'static')
                      .map((g) => (
                        <option key={g.name} value={g.name} />
                      ))}
                </datalist>
              }
            />
          ) : (
            <TextField id="enroll-device" label="Device id" value={form.device} onChange={(value) => set('device', value)} placeholder="till-042" />
          )}
          <TextField id="enroll-ttl" label="Valid for" value={form.ttl} onChange={(value) => set('ttl', value)} hint="e.g. 30m, 12h, 7d (at most 7 days)." />
          {form.target === 'group' && (
            <TextField id="enroll-uses" label="Uses" type="number" min={1} max={maxEnrollmentUses} value={form.uses} onChange={(value) => set('uses', value)} hint="How many devices may enroll with it." />
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
