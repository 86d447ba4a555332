import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { describeError } from './api.ts';
import { Link } from './router.tsx';

/** Shared pieces: data loading with its three designed states, badges, dialogs, formatting. */

export type Load<T> = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'ok'; data: T };

/** Loads data for a screen; `reload` fetches again (after an action) without a blank flash. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Load<T> & { reload: () => void } {
  const [result, setResult] = useState<Load<T>>({ state: 'loading' });
  const [round, setRound] = useState(0);
  const reload = useCallback(() => setRound((n) => n + 1), []);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setResult({ state: 'ok', data }),
      (error: unknown) => live && setResult({ state: 'error', error }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  useEffect(() => setResult({ state: 'loading' }), deps); // eslint-disable-line react-hooks/exhaustive-deps
  return { ...result, reload };
}

export function Loading({ what }: { what: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      Loading {what}…
    </div>
  );
}

export function ErrorNotice({ error, title = 'Something went wrong', retry }: { error: unknown; title?: string; retry?: () => void }) {
  return (
    <div className="notice notice-error" role="alert">
      <strong>{title}</strong>
      <p>{describeError(error)}</p>
      {retry && (
        <button type="button" className="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <p className="state-title">{title}</p>
      {children && <div className="state-body">{children}</div>}
    </div>
  );
}

/** Renders a Load: spinner, error with retry, or the content. */
export function Loaded<T>({ load, what, children }: { load: Load<T> & { reload: () => void }; what: string; children: (data: T) => ReactNode }) {
  if (load.state === 'loading') return <Loading what={what} />;
  if (load.state === 'error') {
    // A refusal is not a failure to retry: say so, and what would be needed.
    const status = (load.error as { status?: number }).status;
    if (status === 403) return <ErrorNotice error={load.error} title={`You do not have access to ${what}`} />;
    if (status === 404) return <ErrorNotice error={load.error} title={`There is no such ${what.replace(/^the /, '')}`} />;
    return <ErrorNotice error={load.error} title={`Could not load ${what}`} retry={load.reload} />;
  }
  return <>{children(load.data)}</>;
}

const badgeTone: Record<string, string> = {
  draft: 'neutral',
  approved: 'success',
  signed: 'success',
  revoked: 'danger',
  success: 'success',
  denied: 'danger',
  unauthenticated: 'warning',
  failed: 'danger',
  installed: 'success',
  active: 'success',
  expired: 'warning',
  admin: 'info',
  owner: 'info',
  maintainer: 'info',
  developer: 'neutral',
  reporter: 'neutral',
  guest: 'neutral',
};

export function Badge({ children, tone }: { children: string; tone?: string }) {
  return <span className={`badge badge-${tone ?? badgeTone[children] ?? 'neutral'}`}>{children}</span>;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  const date = new Date(at);
  return (
    <time dateTime={at} title={date.toISOString()}>
      {date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })}
    </time>
  );
}

export function Digest({ value }: { value: string | null | undefined }) {
  if (!value) return <span className="muted">—</span>;
  const hex = value.replace(/^sha256:/, '');
  return (
    <code className="digest" title={value}>
      {hex.slice(0, 12)}
    </code>
  );
}

export function PageHeader({ title, crumbs, actions, children }: { title: ReactNode; crumbs?: { to: string; label: string }[]; actions?: ReactNode; children?: ReactNode }) {
  return (
    <header className="page-header">
      {crumbs && crumbs.length > 0 && (
        <nav aria-label="Breadcrumb" className="crumbs">
          <ol>
            {crumbs.map((crumb) => (
              <li key={crumb.to}>
                <Link to={crumb.to}>{crumb.label}</Link>
              </li>
            ))}
          </ol>
        </nav>
      )}
      <div className="page-title-row">
        <h1>{title}</h1>
        {actions && <div className="page-actions">{actions}</div>}
      </div>
      {children}
    </header>
  );
}

/**
 * A modal confirmation (the native <dialog>: focus moves into it, Escape closes it, the page
 * behind is inert). `onConfirm` may fail; its error is shown in the dialog.
 */
export function ConfirmDialog({
  open,
  title,
  confirmLabel,
  tone = 'primary',
  onConfirm,
  onClose,
  children,
  confirmDisabled,
}: {
  open: boolean;
  title: string;
  confirmLabel: string;
  tone?: 'primary' | 'danger';
  onConfirm: () => Promise<void>;
  onClose: () => void;
  children: ReactNode;
  confirmDisabled?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      setError(undefined);
      dialog.showModal();
    } else if (!open && dialog.open) dialog.close();
  }, [open]);
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await onConfirm();
      onClose();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} className="dialog" aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      <h2 id={titleId}>{title}</h2>
      <div className="dialog-body">{children}</div>
      {error !== undefined && <ErrorNotice error={error} title="That did not work" />}
      <div className="dialog-actions">
        <button type="button" className="button" onClick={onClose} disabled={busy}>
          Cancel
        </button>
        <button type="button" className={`button button-${tone}`} onClick={() => void confirm()} disabled={busy || confirmDisabled}>
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** A status line announced to screen readers (results of actions). */
export function Flash({ message, tone = 'success' }: { message: string | undefined; tone?: 'success' | 'error' }) {
  return (
    <div className={message ? `notice notice-${tone}` : 'sr-only'} role="status" aria-live="polite">
      {message ?? ''}
    </div>
  );
}

export function Pager({ page, pages, onPage }: { page: number; pages: number; onPage: (page: number) => void }) {
  if (pages <= 1) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" className="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span>
        Page {page} of {pages}
      </span>
      <button type="button" className="button" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

/** A secret shown once (a new token): read-only, selected on focus, with Copy and Done. */
export function SecretRow({ id, label, value, onDone }: { id: string; label: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret-row">
      <label htmlFor={id} className="sr-only">
        {label}
      </label>
      <input id={id} readOnly value={value} className="mono" onFocus={(e) => e.target.select()} />
      <button type="button" className="button" onClick={() => void navigator.clipboard?.writeText(value).then(() => setCopied(true))}>
        {copied ? 'Copied' : 'Copy'}
      </button>
      <button type="button" className="button button-ghost" onClick={onDone}>
        Done
      </button>
    </div>
  );
}
