import type { InputHTMLAttributes, ReactNode, SelectHTMLAttributes, TextareaHTMLAttributes } from 'react';
import type { Load } from '../ui.tsx';

/*
 * Labelled form controls: every control gets its <label>, and a hint is tied to it with
 * aria-describedby (id `${id}-hint`), so screen readers read it with the control. Extra props
 * (placeholder, type, min, disabled, list…) go to the control itself.
 */

interface FieldProps {
  id: string;
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  /** One line under the control, read with it. */
  hint?: ReactNode;
  /** Inside the field, after the control (a <datalist>, a note). */
  extra?: ReactNode;
}

function describedBy(id: string, hint: ReactNode, given: string | undefined): string | undefined {
  return given ?? (hint !== undefined ? `${id}-hint` : undefined);
}

function Field({ id, label, hint, extra, children }: { id: string; label: ReactNode; hint?: ReactNode; extra?: ReactNode; children: ReactNode }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children}
      {extra}
      {hint !== undefined && (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
    </div>
  );
}

export function TextField({ id, label, value, onChange, hint, extra, ...input }: FieldProps & Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onChange'>) {
  return (
    <Field id={id} label={label} hint={hint} extra={extra}>
      <input id={id} value={value} onChange={(e) => onChange(e.target.value)} {...input} aria-describedby={describedBy(id, hint, input['aria-describedby'])} />
    </Field>
  );
}

export function TextAreaField({ id, label, value, onChange, hint, extra, ...area }: FieldProps & Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, 'id' | 'value' | 'onChange'>) {
  return (
    <Field id={id} label={label} hint={hint} extra={extra}>
      <textarea id={id} value={value} onChange={(e) => onChange(e.target.value)} {...area} aria-describedby={describedBy(id, hint, area['aria-describedby'])} />
    </Field>
  );
}

/** A select: `options` for plain values shown as they are, or <option> children for anything else. */
export function SelectField({
  id,
  label,
  value,
  onChange,
  hint,
  extra,
  options,
  children,
  ...select
}: FieldProps & { options?: readonly string[]; children?: ReactNode } & Omit<SelectHTMLAttributes<HTMLSelectElement>, 'id' | 'value' | 'onChange'>) {
  return (
    <Field id={id} label={label} hint={hint} extra={extra}>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} {...select} aria-describedby={describedBy(id, hint, select['aria-describedby'])}>
        {children}
        {options?.map((option) => (
          <option key={option} value={option}>
            {option}
          </option>
        ))}
      </select>
    </Field>
  );
}

/** The <option>s of loaded versions, newest first (the API lists them oldest first); none until they are loaded. */
export function VersionOptions({ versions }: { versions: Load<readonly { version: string }[]> }) {
  if (versions.state !== 'ok') return null;
  return (
    <>
      {[...versions.data].reverse().map((v) => (
        <option key={v.version} value={v.version}>
          {v.version}
        </option>
      ))}
    </>
  );
}
