import { useState } from 'react';
import { z } from 'zod';
import { accessToken, createdToken, scopes, type AccessToken } from '../../../protocol/access.ts';
import { call, getJson } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import { LoadedList, RowActionCell, Table } from '../components/table.tsx';
import { useLocation } from '../router.tsx';
import { SecretNotice } from '../components/secret.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, PageHeader, Time, useLoad } from '../ui.tsx';

function stateOf(t: AccessToken): string {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && new Date(t.expiresAt).getTime() < Date.now()) return 'expired';
  return 'active';
}

/** One's access tokens (admins: anyone's, with ?user=). A new token's secret is shown once. */
export function TokensPage() {
  const session = useSession();
  const location = useLocation();
  const forUser = session.can('user:write') ? (location.query.get('user') ?? undefined) : undefined;
  const load = useLoad(() => getJson(session.client, "/api/v1/tokens", z.array(accessToken), forUser ? { user: forUser } : undefined), [forUser]);
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<string[]>(['read']);
  const [expires, setExpires] = useState('');
  const [secret, setSecret] = useState<{ token: string; name: string } | undefined>(undefined);
  const [revoking, setRevoking] = useState<AccessToken | undefined>(undefined);
  const owner = forUser ?? session.user.name;
  return (
    <>
      <PageHeader
        title={forUser ? `Access tokens of ${forUser}` : 'Access tokens'}
        actions={
          session.can('token:write') && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              New token
            </button>
          )
        }
      >
        <p className="lede">Tokens sign in the CLI, CI jobs and this UI. A token never holds more than its scopes and its user’s roles allow.</p>
      </PageHeader>
      {secret && (
        <SecretNotice title={`Token “${secret.name}” created.`} note="Copy it now: it is shown only once." id="new-secret" label="The new token" value={secret.token} onDone={() => setSecret(undefined)} />
      )}
      <LoadedList load={load} what="tokens" empty={<Empty title="No tokens" />}>
        {(list) => (
          <Table caption="Access tokens" columns={['Name', 'Scopes', 'State', 'Created', 'Expires', 'Last used']} actions>
            {list.map((t) => (
              <tr key={t.id}>
                <td>{t.name}</td>
                <td>{t.scopes.join(', ')}</td>
                <td>
                  <Badge>{stateOf(t)}</Badge>
                </td>
                <td>
                  <Time at={t.createdAt} />
                </td>
                <td>{t.expiresAt ? <Time at={t.expiresAt} /> : 'never'}</td>
                <td>
                  <Time at={t.lastUsedAt} />
                </td>
                <RowActionCell show={stateOf(t) === 'active' && session.can('token:write')} label={`Revoke ${t.name}`} onClick={() => setRevoking(t)}>
                  Revoke
                </RowActionCell>
              </tr>
            ))}
          </Table>
        )}
      </LoadedList>
      <ConfirmDialog
        open={open}
        title={`New token for ${owner}`}
        confirmLabel="Create token"
        confirmDisabled={!name.trim() || chosen.length === 0}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          const made = await call(session.client, 'POST', '/api/v1/tokens', createdToken, {
            name: name.trim(),
            scopes: chosen,
            ...(expires ? { expiresAt: new Date(`${expires}T23:59:59Z`).toISOString() } : {}),
            ...(forUser ? { user: forUser } : {}),
          });
          setSecret({ token: made!.token, name: made!.info.name });
          setName('');
          load.reload();
        }}
      >
        <TextField id="token-name" label="Name" value={name} onChange={setName} placeholder="ci-release-job" />
        <fieldset className="field">
          <legend>Scopes</legend>
          {scopes.map((s) => (
            <div key={s} className="field-check">
              <input id={`scope-${s}`} type="checkbox" checked={chosen.includes(s)} onChange={(e) => setChosen(e.target.checked ? [...chosen, s] : chosen.filter((x) => x !== s))} />
              <label htmlFor={`scope-${s}`}>{s}</label>
            </div>
          ))}
        </fieldset>
        <TextField id="token-expires" label="Expires (optional)" type="date" value={expires} onChange={setExpires} />
      </ConfirmDialog>
      <ConfirmDialog
        open={revoking !== undefined}
        title={`Revoke “${revoking?.name ?? ''}”?`}
        confirmLabel="Revoke token"
        tone="danger"
        onClose={() => setRevoking(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `/api/v1/tokens/${revoking!.id}`, accessToken);
          load.reload();
        }}
      >
        <p>Anything using this token stops working at once{revoking?.user === session.user.name ? ', including this session if you signed in with it' : ''}.</p>
      </ConfirmDialog>
    </>
  );
}
