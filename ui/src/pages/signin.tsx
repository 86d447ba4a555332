import { useId, useState, type FormEvent } from 'react';
import { currentUser, type CurrentUser } from '../../../protocol/access.ts';
import { ApiFailure, describeError, getJson } from '../api.ts';
import { TextField } from '../components/fields.tsx';
import type { Stored } from '../session.tsx';

/** Sign in with a user name and an access token (made with `convoy token create` or on the tokens screen). */
export function SignInPage({ onSignedIn, expired }: { onSignedIn: (stored: Stored, user: CurrentUser) => void; expired: boolean }) {
  const [name, setName] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const errorId = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const user = await getJson({ token: token.trim() }, '/api/v1/user', currentUser);
      if (user.name !== name.trim()) {
        setError(`This token belongs to another user, not to "${name.trim()}".`);
        return;
      }
      onSignedIn({ user: user.name, token: token.trim() }, user);
    } catch (failure) {
      if (failure instanceof ApiFailure && failure.status === 401) setError('That access token is not valid: it is wrong, expired or revoked.');
      else if (failure instanceof ApiFailure && failure.status === 403) setError(`This token may not be used to sign in: ${failure.message}. Sign-in needs a token with the "read" scope.`);
      else setError(describeError(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <div className="signin-card">
        <div className="signin-brand">
          <img src="/favicon.svg" alt="" width="40" height="40" />
          <span>Convoy</span>
        </div>
        <h1>Sign in</h1>
        <p className="muted">Release bundles and over-the-air updates. Use your user name and one of your access tokens.</p>
        {expired && (
          <div className="notice notice-warning" role="status">
            Your session ended: the token expired or was revoked. Sign in again.
          </div>
        )}
        <form onSubmit={(e) => void submit(e)} noValidate>
          <TextField id="signin-user" label="User name" name="username" autoComplete="username" required value={name} onChange={setName} autoFocus />
          <div className="field">
            <label htmlFor="signin-token">Access token</label>
            <input
              id="signin-token"
              name="token"
              type="password"
              autoComplete="current-password"
              required
              value={token}
              onChange={(e) => setToken(e.target.value)}
              aria-describedby={`${errorId}-hint${error ? ` ${errorId}` : ''}`}
            />
            <p className="hint" id={`${errorId}-hint`}>
              Kept for this browser tab only; closing the tab signs you out.
            </p>
          </div>
          {error && (
            <div className="notice notice-error" role="alert" id={errorId}>
              {error}
            </div>
          )}
          <button type="submit" className="button button-primary button-block" disabled={busy || !name.trim() || !token.trim()}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      </div>
    </main>
  );
}
