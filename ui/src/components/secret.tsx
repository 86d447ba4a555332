import type { ReactNode } from 'react';
import { SecretRow } from '../ui.tsx';

/**
 * A secret just created (an access, edge or enrollment token), shown this once: what was made,
 * the secret with Copy and Done, and what to do with it. The server keeps only a hash, so after
 * Done (or a reload) it is gone for good.
 */
export function SecretNotice({ title, note, id, label, value, onDone, children }: { title: ReactNode; note: ReactNode; id: string; label: string; value: string; onDone: () => void; children?: ReactNode }) {
  return (
    <div className="notice notice-success secret" role="status">
      <strong>{title}</strong> {note}
      {/* Keyed on the secret: "Copied" belongs to one secret, not to the next one made. */}
      <SecretRow key={value} id={id} label={label} value={value} onDone={onDone} />
      {children}
    </div>
  );
}
