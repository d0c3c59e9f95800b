// Sign-in, then the chat. A token that expires or that Courier refuses brings the user back here
// with the reason.
import { useCallback, useEffect, useState } from 'react';
import { cognitoToken, devToken, msUntilExpiry, savedToken, saveToken } from './auth';
import { loadConfig, type PageConfig } from './config';
import { Shell, type SignOutReason } from './Shell';

const REASONS: Record<SignOutReason, string> = {
  'signed-out': '',
  expired: 'Your sign-in expired. Sign in again.',
  refused: 'Courier did not accept this sign-in (the token is not valid for this stack, or has expired). Sign in again.',
};

export function App() {
  const [config, setConfig] = useState<PageConfig | null>(null);
  const [token, setToken] = useState<string | null>(null);
  const [reason, setReason] = useState('');

  useEffect(() => {
    void loadConfig().then((loaded) => {
      setConfig(loaded);
      const saved = savedToken();
      if (saved && (msUntilExpiry(saved) ?? 1) > 0) setToken(saved);
      else if (saved) setReason(REASONS.expired);
    });
  }, []);

  const signIn = useCallback((next: string) => {
    saveToken(next);
    setReason('');
    setToken(next);
  }, []);

  const signOut = useCallback((why: SignOutReason) => {
    saveToken(null);
    setToken(null);
    setReason(REASONS[why]);
  }, []);

  if (!config) return <p className="muted loading">Loading…</p>;
  if (!token) return <SignIn config={config} reason={reason} onToken={signIn} />;
  return <Shell key={token} config={config} token={token} onSignOut={signOut} />;
}

function SignIn({ config, reason, onToken }: { config: PageConfig; reason: string; onToken(token: string): void }) {
  const [error, setError] = useState(reason);
  const [pasted, setPasted] = useState('');
  const [busy, setBusy] = useState(false);

  const attempt = async (get: () => Promise<string>) => {
    setBusy(true);
    setError('');
    try {
      onToken((await get()).trim());
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <div className="card">
        <h1>Courier</h1>
        <p className="muted">Answers streamed token by token. Sign in to start.</p>
        {error && (
          <p className="error-text" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        {config.devTokens && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              const form = new FormData(event.currentTarget);
              void attempt(() => devToken(String(form.get('user') || 'dev-user'), String(form.get('tenant') || 'dev')));
            }}
          >
            <label>
              User <input name="user" defaultValue="dev-user" autoComplete="off" />
            </label>
            <label>
              Tenant <input name="tenant" defaultValue="dev" autoComplete="off" />
            </label>
            <button type="submit" className="primary wide" disabled={busy} data-testid="dev-signin">
              Sign in with a dev token
            </button>
            <p className="muted small">The local stack issues dev tokens; a deployed stack never does.</p>
          </form>
        )}
        {config.cognito && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              const form = new FormData(event.currentTarget);
              void attempt(() => cognitoToken(config.cognito!, String(form.get('username')), String(form.get('password'))));
            }}
          >
            <label>
              User name <input name="username" autoComplete="username" required />
            </label>
            <label>
              Password <input name="password" type="password" autoComplete="current-password" required />
            </label>
            <button type="submit" className="primary wide" disabled={busy} data-testid="cognito-signin">
              Sign in
            </button>
          </form>
        )}
        <details className="paste" open={!config.devTokens && !config.cognito}>
          <summary>Sign in with a token</summary>
          <form
            onSubmit={(event) => {
              event.preventDefault();
              if (pasted.trim()) void attempt(async () => pasted);
            }}
          >
            <label>
              Token (a JWT, e.g. from <code>courier login</code>)
              <textarea rows={3} value={pasted} onChange={(event) => setPasted(event.target.value)} placeholder="eyJ…" spellCheck={false} data-testid="token-input" />
            </label>
            <button type="submit" className="wide" disabled={busy || !pasted.trim()} data-testid="token-signin">
              Sign in with this token
            </button>
          </form>
        </details>
      </div>
    </main>
  );
}
