import { useState, type ReactNode } from 'react';
import { z } from 'zod';
import { roles } from '../../../protocol/access.ts';
import { call, getJson } from '../api.ts';
import { enc } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, ConfirmDialog, Empty, Flash, Time, useLoad } from '../ui.tsx';
import { SelectField, TextField } from './fields.tsx';
import { LoadedList, RowActionCell, Table } from './table.tsx';

/*
 * The members of a bundle or of a device group: who holds which role since when, with "Add
 * member" (or change a role) and "Remove" for those who may. The two APIs have the same shape
 * (`GET|POST {base}/members`, `DELETE {base}/members/:user`); each page says what differs.
 */

interface Member {
  user: string;
  role: string;
  createdAt: string;
}

export function MembersSection({
  of,
  base,
  idPrefix,
  canRead,
  canWrite,
  defaultRole,
  addTitle,
  addedMessage,
  removeText,
  schema,
}: {
  /** The API's member schema (protocol/), so answers are checked as everywhere else. */
  schema: z.ZodType<Member>;
  /** The bundle's or group's name. */
  of: string;
  /** The API path of the bundle or group, e.g. `/api/v1/groups/eu`. */
  base: string;
  /** Prefixes the element ids (`${idPrefix}-user`, `${idPrefix}s-heading`…) so two never clash. */
  idPrefix: string;
  canRead: boolean;
  canWrite: boolean;
  defaultRole: string;
  addTitle: string;
  /** Announced after a member is added; nothing when left out. */
  addedMessage?: (user: string, role: string) => string;
  removeText: (user: string) => ReactNode;
}) {
  const session = useSession();
  const members = useLoad(() => getJson(session.client, `${base}/members`, z.array(schema)), [base]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState(defaultRole);
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<string | undefined>(undefined);
  const [flash, setFlash] = useState<string | undefined>(undefined);
  if (!canRead) return null;
  const headingId = `${idPrefix}s-heading`;
  return (
    <section className="section" aria-labelledby={headingId}>
      <div className="section-head">
        <h2 id={headingId}>Members</h2>
        {canWrite && (
          <button type="button" className="button" onClick={() => setAdding(true)}>
            Add member
          </button>
        )}
      </div>
      {addedMessage && <Flash message={flash} />}
      <LoadedList load={members} what="members" empty={<Empty title="No members" />}>
        {(list) => (
          <Table caption={`Members of ${of}`} columns={['User', 'Role', 'Since']} actions={canWrite}>
            {list.map((m) => (
              <tr key={m.user}>
                <td>{m.user}</td>
                <td>
                  <Badge>{m.role}</Badge>
                </td>
                <td>
                  <Time at={m.createdAt} />
                </td>
                {canWrite && (
                  <RowActionCell label={`Remove ${m.user}`} onClick={() => setRemoving(m.user)}>
                    Remove
                  </RowActionCell>
                )}
              </tr>
            ))}
          </Table>
        )}
      </LoadedList>
      <ConfirmDialog
        open={adding}
        title={addTitle}
        confirmLabel="Save"
        confirmDisabled={!user.trim()}
        onClose={() => setAdding(false)}
        onConfirm={async () => {
          await call(session.client, 'POST', `${base}/members`, schema, { user: user.trim(), role });
          if (addedMessage) setFlash(addedMessage(user.trim(), role));
          members.reload();
        }}
      >
        <TextField id={`${idPrefix}-user`} label="User name" value={user} onChange={setUser} />
        <SelectField id={`${idPrefix}-role`} label="Role" value={role} onChange={setRole} options={roles} />
      </ConfirmDialog>
      <ConfirmDialog
        open={removing !== undefined}
        title={`Remove ${removing ?? ''}?`}
        confirmLabel="Remove member"
        tone="danger"
        onClose={() => setRemoving(undefined)}
        onConfirm={async () => {
          await call(session.client, 'DELETE', `${base}/members/${enc(removing!)}`, undefined);
          members.reload();
        }}
      >
        {removing !== undefined && removeText(removing)}
      </ConfirmDialog>
    </section>
  );
}
