import type { ReactNode } from 'react';
import type { Load } from '../ui.tsx';
import { Loaded } from '../ui.tsx';

/*
 * Tables of records: a caption for screen readers, one header cell per column (scope="col"), and
 * an "Actions" column whose header only screen readers hear. Rows stay the page's own JSX.
 */

/** A column: its header, or its header with a class for its cells' alignment (`num`). */
export type Column = string | { label: string; className: string };

export function Table({
  caption,
  columns,
  actions = false,
  actionsLabel = 'Actions',
  className,
  children,
}: {
  caption: ReactNode;
  columns: readonly Column[];
  /** A last column of row buttons or links, its header heard but not seen. */
  actions?: boolean;
  actionsLabel?: string;
  /** More classes beside `table` (e.g. `spaced`). */
  className?: string;
  children: ReactNode;
}) {
  return (
    <table className={className ? `table ${className}` : 'table'}>
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          {columns.map((column) =>
            typeof column === 'string' ? (
              <th scope="col" key={column}>
                {column}
              </th>
            ) : (
              <th scope="col" key={column.label} className={column.className}>
                {column.label}
              </th>
            ),
          )}
          {actions && (
            <th scope="col">
              <span className="sr-only">{actionsLabel}</span>
            </th>
          )}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/** A small quiet button in a row; `label` names the row it acts on (e.g. "Remove alice"). */
export function RowAction({ label, onClick, children }: { label: string; onClick: () => void; children: ReactNode }) {
  return (
    <button type="button" className="button button-small button-ghost" aria-label={label} onClick={onClick}>
      {children}
    </button>
  );
}

/** A loaded list: spinner, error, the designed empty state when it has nothing, else the content. */
export function LoadedList<T>({ load, what, empty, children }: { load: Load<T[]> & { reload: () => void }; what: string; empty: ReactNode; children: (list: T[]) => ReactNode }) {
  return (
    <Loaded load={load} what={what}>
      {(list) => (list.length === 0 ? empty : children(list))}
    </Loaded>
  );
}

/** A row's last cell holding one RowAction; empty (the cell kept, so columns line up) when `show` is false. */
export function RowActionCell({ show = true, label, onClick, children }: { show?: boolean; label: string; onClick: () => void; children: ReactNode }) {
  return (
    <td className="row-actions">
      {show && (
        <RowAction label={label} onClick={onClick}>
          {children}
        </RowAction>
      )}
    </td>
  );
}
