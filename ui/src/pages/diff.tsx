import { useState, type FormEvent } from 'react';
import { artifact, bundleVersion, type Artifact } from '../../../protocol/api.ts';
import { getAll } from '../api.ts';
import { diffArtifacts } from '../diff.ts';
import { enc, Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { Badge, Digest, Empty, formatBytes, Loaded, PageHeader, useLoad } from '../ui.tsx';

function describePackage(a: Artifact): string {
  return a.package ? `${a.package.name} ${a.package.version}` : '—';
}

/** The diff between two versions of a bundle: `/bundles/NAME/diff?from=A&to=B` (a shareable link). */
export function DiffPage({ name }: { name: string }) {
  const session = useSession();
  const location = useLocation();
  const versions = useLoad(() => getAll(session.client, `/api/v1/bundles/${enc(name)}/versions`, bundleVersion), [name]);
  const fromParam = location.query.get('from') ?? '';
  const toParam = location.query.get('to') ?? '';
  const list = versions.state === 'ok' ? versions.data.map((v) => v.version) : [];
  // Default: the version asked for against the one before it.
  const to = toParam || list[list.length - 1] || '';
  const from = fromParam || list[Math.max(0, list.indexOf(to) - 1)] || '';
  const [pick, setPick] = useState<{ from: string; to: string } | undefined>(undefined);
  const chosen = pick ?? { from, to };
  const diff = useLoad(
    async () => {
      if (!from || !to || from === to) return undefined;
      const base = `/api/v1/bundles/${enc(name)}/versions`;
      const [a, b] = await Promise.all([getAll(session.client, `${base}/${enc(from)}/artifacts`, artifact), getAll(session.client, `${base}/${enc(to)}/artifacts`, artifact)]);
      return diffArtifacts(a, b);
    },
    [name, from, to],
  );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setPick(undefined);
    navigate(`/bundles/${enc(name)}/diff?from=${enc(chosen.from)}&to=${enc(chosen.to)}`);
  };
  const statusOf = (version: string) => (versions.state === 'ok' ? versions.data.find((v) => v.version === version)?.status : undefined);

  return (
    <>
      <PageHeader
        title="Compare versions"
        crumbs={[
          { to: '/bundles', label: 'Bundles' },
          { to: `/bundles/${enc(name)}`, label: name },
        ]}
      />
      <Loaded load={versions} what="versions">
        {() =>
          list.length < 2 ? (
            <Empty title="Nothing to compare yet">A bundle needs two versions to compare.</Empty>
          ) : (
            <>
              <form className="toolbar" onSubmit={submit}>
                <label htmlFor="diff-from">From</label>
                <select id="diff-from" value={chosen.from} onChange={(e) => setPick({ ...chosen, from: e.target.value })}>
                  {list.map((v) => (
                    <option key={v} value={v}>
                      {v} ({statusOf(v)})
                    </option>
                  ))}
                </select>
                <label htmlFor="diff-to">To</label>
                <select id="diff-to" value={chosen.to} onChange={(e) => setPick({ ...chosen, to: e.target.value })}>
                  {list.map((v) => (
                    <option key={v} value={v}>
                      {v} ({statusOf(v)})
                    </option>
                  ))}
                </select>
                <button type="submit" className="button button-primary">
                  Compare
                </button>
              </form>
              <Loaded load={diff} what="the difference">
                {(d) =>
                  !d ? (
                    <Empty title="Pick two different versions" />
                  ) : (
                    <section aria-labelledby="diff-heading" className="section">
                      <h2 id="diff-heading">
                        <Link to={`/bundles/${enc(name)}/versions/${enc(from)}`}>{from}</Link> → <Link to={`/bundles/${enc(name)}/versions/${enc(to)}`}>{to}</Link>
                      </h2>
                      <p className="diff-summary">
                        <Badge tone="success">{`${d.added.length} added`}</Badge> <Badge tone="danger">{`${d.removed.length} removed`}</Badge> <Badge tone="warning">{`${d.changed.length} changed`}</Badge> <Badge tone="neutral">{`${d.unchanged.length} unchanged`}</Badge>
                      </p>
                      {d.added.length + d.removed.length + d.changed.length === 0 ? (
                        <Empty title="The two versions hold the same artifacts" />
                      ) : (
                        <table className="table diff-table">
                          <caption className="sr-only">
                            Differences from {from} to {to}
                          </caption>
                          <thead>
                            <tr>
                              <th scope="col">Change</th>
                              <th scope="col">Artifact</th>
                              <th scope="col">{from}</th>
                              <th scope="col">{to}</th>
                            </tr>
                          </thead>
                          <tbody>
                            {d.added.map((a) => (
                              <tr key={`+${a.name}`} className="diff-added">
                                <td>
                                  <Badge tone="success">added</Badge>
                                </td>
                                <td className="mono">{a.name}</td>
                                <td className="muted">—</td>
                                <td>
                                  {a.type}, {formatBytes(a.size)} <Digest value={a.digest} /> {a.package && describePackage(a)}
                                </td>
                              </tr>
                            ))}
                            {d.removed.map((a) => (
                              <tr key={`-${a.name}`} className="diff-removed">
                                <td>
                                  <Badge tone="danger">removed</Badge>
                                </td>
                                <td className="mono">{a.name}</td>
                                <td>
                                  {a.type}, {formatBytes(a.size)} <Digest value={a.digest} /> {a.package && describePackage(a)}
                                </td>
                                <td className="muted">—</td>
                              </tr>
                            ))}
                            {d.changed.map((c) => (
                              <tr key={`~${c.name}`} className="diff-changed">
                                <td>
                                  <Badge tone="warning">changed</Badge>
                                </td>
                                <td className="mono">
                                  {c.name}
                                  <div className="muted small">{c.fields.join(', ')}</div>
                                </td>
                                <td>
                                  {c.from.type}, {formatBytes(c.from.size)} <Digest value={c.from.digest} /> {c.from.package && describePackage(c.from)}
                                </td>
                                <td>
                                  {c.to.type}, {formatBytes(c.to.size)} <Digest value={c.to.digest} /> {c.to.package && describePackage(c.to)}
                                </td>
                              </tr>
                            ))}
                          </tbody>
                        </table>
                      )}
                    </section>
                  )
                }
              </Loaded>
            </>
          )
        }
      </Loaded>
    </>
  );
}
