import { useState, type FormEvent } from 'react';
import { auditEvent, auditOutcomes } from '../../../protocol/access.ts';
import { getPage } from '../api.ts';
import { SelectField, TextField } from '../components/fields.tsx';
import { Table } from '../components/table.tsx';
import { navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, Empty, Loaded, PageHeader, Pager, Time, useLoad } from '../ui.tsx';

const filters = ['actor', 'action', 'bundle', 'outcome', 'since', 'until'] as const;

/** The audit log, newest first; the filters live in the URL so a filtered view can be shared. */
export function AuditPage() {
  const session = useSession();
  const location = useLocation();
  const current = Object.fromEntries(filters.map((f) => [f, location.query.get(f) ?? ''])) as Record<(typeof filters)[number], string>;
  const page = Number(location.query.get('page') ?? 1) || 1;
  const [draft, setDraft] = useState(current);
  // Dates are picked as days (UTC); the API takes instants: since the day's start, until its end.
  const instant = (day: string, end: boolean) => (day ? `${day}T${end ? '23:59:59.999' : '00:00:00.000'}Z` : undefined);
  const load = useLoad(
    () => getPage(session.client, '/api/v1/audit', auditEvent, { ...current, since: instant(current.since, false), until: instant(current.until, true), page, per_page: 25 }),
    [location.query.toString()],
  );
  const go = (values: Record<string, string>, toPage = 1) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v.trim()) params.set(k, v.trim());
    if (toPage > 1) params.set('page', String(toPage));
    navigate(`/audit${params.size ? `?${params}` : ''}`);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    go(draft);
  };
  return (
    <>
      <PageHeader title="Audit log">
        <p className="lede">Every change made through the API: who, what, on which bundle, and whether it was allowed.</p>
      </PageHeader>
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        <TextField id="audit-actor" label="Actor" value={draft.actor} onChange={(value) => setDraft({ ...draft, actor: value })} placeholder="user name" />
        <TextField id="audit-action" label="Action" value={draft.action} onChange={(value) => setDraft({ ...draft, action: value })} placeholder="version:approve" />
        <TextField id="audit-bundle" label="Bundle" value={draft.bundle} onChange={(value) => setDraft({ ...draft, bundle: value })} />
        <SelectField id="audit-outcome" label="Outcome" value={draft.outcome} onChange={(value) => setDraft({ ...draft, outcome: value })}>
          <option value="">any</option>
          {auditOutcomes.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </SelectField>
        <TextField id="audit-since" label="From (UTC)" type="date" value={draft.since} onChange={(value) => setDraft({ ...draft, since: value })} />
        <TextField id="audit-until" label="To (UTC)" type="date" value={draft.until} onChange={(value) => setDraft({ ...draft, until: value })} />
        <div className="field field-actions">
          <button type="submit" className="button button-primary">
            Filter
          </button>
          <button
            type="button"
            className="button button-ghost"
            onClick={() => {
              const empty = { actor: '', action: '', bundle: '', outcome: '', since: '', until: '' };
              setDraft(empty);
              go(empty);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <Loaded load={load} what="the audit log">
        {(result) =>
          result.items.length === 0 ? (
            <Empty title="No events match these filters" />
          ) : (
            <>
              <Table caption="Audit events" columns={['When', 'Actor', 'Action', 'Target', 'Outcome']}>
                {result.items.map((e) => (
                  <tr key={e.id}>
                    <td>
                      <Time at={e.at} />
                    </td>
                    <td>{e.actor ?? <span className="muted">unknown</span>}</td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td className="mono small">
                      {e.method} {e.target}
                    </td>
                    <td>
                      <Badge>{e.outcome}</Badge> {e.error && <span className="muted small">{e.error}</span>}
                    </td>
                  </tr>
                ))}
              </Table>
              <p className="muted small">{result.total} events</p>
              <Pager page={result.page} pages={result.pages} onPage={(p) => go(current, p)} />
            </>
          )
        }
      </Loaded>
    </>
  );
}
