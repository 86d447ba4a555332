import { useState } from 'react';
import { z } from 'zod';
import { user } from '../../../protocol/access.ts';
import { call, getJson } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import { LoadedList, Table } from '../components/table.tsx';
import { enc, Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Flash, PageHeader, Time, useLoad } from '../ui.tsx';

export function UsersPage() {
  const session = useSession();
  const load = useLoad(() => getJson(session.client, '/api/v1/users', z.array(user)), []);
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  return (
    <>
      <PageHeader
        title="Users"
        actions={
          session.can('user:write') && (
            <button type="button" className="button button-primary" onClick={() => setOpen(true)}>
              New user
            </button>
          )
        }
      >
        <p className="lede">People who may sign in. Their roles are given per bundle, on each bundle’s page.</p>
      </PageHeader>
      <Flash message={flash} />
      <LoadedList load={load} what="users" empty={<Empty title="No users" />}>
        {(list) => (
          <Table caption="Users" columns={['Name', 'Kind', 'Created']} actions actionsLabel="Links">
            {list.map((u) => (
              <tr key={u.name}>
                <td>{u.name}</td>
                <td>{u.admin ? <Badge>admin</Badge> : <Badge tone="neutral">user</Badge>}</td>
                <td>
                  <Time at={u.createdAt} />
                </td>
                <td className="row-actions">
                  {session.can('user:write') && <Link to={`/tokens?user=${enc(u.name)}`}>Tokens</Link>}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </LoadedList>
      <ConfirmDialog
        open={open}
        title="New user"
        confirmLabel="Create user"
        confirmDisabled={!name.trim()}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await call(session.client, 'POST', '/api/v1/users', user, { name: name.trim(), admin });
          setFlash(`${name.trim()} was created. Create an access token for them on the tokens screen.`);
          setName('');
          load.reload();
        }}
      >
        <TextField id="user-name" label="User name" value={name} onChange={setName} hint="Lowercase letters, digits, “.”, “_” and “-”." />
        <div className="field field-check">
          <input id="user-admin" type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} />
          <label htmlFor="user-admin">Instance administrator</label>
        </div>
      </ConfirmDialog>
    </>
  );
}
