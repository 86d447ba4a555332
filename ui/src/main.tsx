import { lazy, StrictMode, Suspense, useCallback, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { currentUser, type CurrentUser } from '../../protocol/access.ts';
import { getJson, type Client } from './api.ts';
import { AuditPage } from './pages/audit.tsx';
import { BundlePage } from './pages/bundle.tsx';
import { BundlesPage } from './pages/bundles.tsx';
import { DeploymentPage } from './pages/deployment.tsx';
import { DeploymentsPage } from './pages/deployments.tsx';
import { DevicePage, DevicesPage } from './pages/devices.tsx';
import { DiffPage } from './pages/diff.tsx';
import { GroupPage, GroupsPage } from './pages/groups.tsx';
import { SignInPage } from './pages/signin.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { TrustPage } from './pages/trust.tsx';
import { UsersPage } from './pages/users.tsx';
import { VersionPage } from './pages/version.tsx';
import { describeRoles } from './roles.ts';
import { Link, match, navigate, navigationCount, useLocation } from './router.tsx';
import { canDo, loadStored, saveStored, SessionContext, type Session, type Stored } from './session.tsx';
import { ErrorNotice, Loading } from './ui.tsx';
import './styles.css';

// Replication and identity screens load on first use: most sessions never open them, and they
// keep the first download under Vite's 500 kB warning.
const ReplicationPage = lazy(() => import('./pages/replication.tsx').then((m) => ({ default: m.ReplicationPage })));
const RunPage = lazy(() => import('./pages/replication.tsx').then((m) => ({ default: m.RunPage })));
const EdgesPage = lazy(() => import('./pages/destinations.tsx').then((m) => ({ default: m.EdgesPage })));
const RegistriesPage = lazy(() => import('./pages/destinations.tsx').then((m) => ({ default: m.RegistriesPage })));
const EnrollmentPage = lazy(() => import('./pages/enrollment.tsx').then((m) => ({ default: m.EnrollmentPage })));

/** The screens, by URL. The first that matches wins. */
const screens: { pattern: string; render: (params: Record<string, string>) => React.ReactNode }[] = [
  { pattern: '/', render: () => <BundlesPage /> },
  { pattern: '/bundles', render: () => <BundlesPage /> },
  { pattern: '/bundles/:name', render: (p) => <BundlePage name={p.name!} /> },
  { pattern: '/bundles/:name/diff', render: (p) => <DiffPage name={p.name!} /> },
  { pattern: '/bundles/:name/versions/:version', render: (p) => <VersionPage name={p.name!} version={p.version!} /> },
  { pattern: '/bundles/:name/replication', render: (p) => <ReplicationPage name={p.name!} /> },
  { pattern: '/bundles/:name/replication/runs/:run', render: (p) => <RunPage name={p.name!} id={p.run!} /> },
  { pattern: '/deployments', render: () => <DeploymentsPage /> },
  { pattern: '/deployments/:id', render: (p) => <DeploymentPage id={p.id!} /> },
  { pattern: '/devices', render: () => <DevicesPage /> },
  { pattern: '/devices/:id', render: (p) => <DevicePage id={p.id!} /> },
  { pattern: '/groups', render: () => <GroupsPage /> },
  { pattern: '/groups/:name', render: (p) => <GroupPage name={p.name!} /> },
  { pattern: '/audit', render: () => <AuditPage /> },
  { pattern: '/users', render: () => <UsersPage /> },
  { pattern: '/tokens', render: () => <TokensPage /> },
  { pattern: '/trust', render: () => <TrustPage /> },
  { pattern: '/edges', render: () => <EdgesPage /> },
  { pattern: '/registries', render: () => <RegistriesPage /> },
  { pattern: '/enrollment', render: () => <EnrollmentPage /> },
];

/** Navigation entries, each shown only to those whose role holds the action behind it. */
const nav: { to: string; label: string; needs?: string }[] = [
  { to: '/bundles', label: 'Bundles', needs: 'bundle:list' },
  { to: '/deployments', label: 'Deployments', needs: 'deployment:read' },
  { to: '/groups', label: 'Device groups', needs: 'group:list' },
  { to: '/devices', label: 'Devices', needs: 'device:read' },
  { to: '/enrollment', label: 'Enrollment', needs: 'enrollment:create' },
  { to: '/edges', label: 'Edges', needs: 'edge:read' },
  { to: '/registries', label: 'Registries', needs: 'registry:read' },
  { to: '/trust', label: 'Signing keys', needs: 'keys:read' },
  { to: '/audit', label: 'Audit log', needs: 'audit:read' },
  { to: '/users', label: 'Users', needs: 'user:read' },
  { to: '/tokens', label: 'Access tokens', needs: 'token:read' },
];

function Shell({ session }: { session: Session }) {
  const location = useLocation();
  let content: React.ReactNode = undefined;
  for (const screen of screens) {
    const params = match(screen.pattern, location.path);
    if (params) {
      content = screen.render(params);
      break;
    }
  }
  const active = (to: string) => location.path === to || location.path.startsWith(to + '/') || (to === '/bundles' && location.path === '/');
  const roleSummary = describeRoles(session.user);
  useEffect(() => {
    // After a navigation, move focus to the new screen's heading, so keyboard and screen-reader
    // users land on it; on a page load, leave it at the start (the skip link comes first).
    if (navigationCount() === 0) return;
    const focusHeading = () => {
      // The visible one: while a screen's code loads, React keeps the previous screen in the
      // page, hidden (display: none), behind the fallback.
      const heading = [...document.querySelectorAll<HTMLElement>('main h1')].find((h) => h.offsetParent !== null);
      if (!heading) return false;
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
      return true;
    };
    if (focusHeading()) return;
    // A screen still loading (its code or its data) has no heading yet: wait for it, briefly.
    const main = document.getElementById('main');
    if (!main) return;
    // Not if the person has moved on meanwhile (typing in a field).
    const observer = new MutationObserver(() => {
      if (document.activeElement?.matches('input, select, textarea')) observer.disconnect();
      else if (focusHeading()) observer.disconnect();
    });
    observer.observe(main, { childList: true, subtree: true });
    const timer = setTimeout(() => observer.disconnect(), 5000);
    return () => {
      observer.disconnect();
      clearTimeout(timer);
    };
  }, [location.path]);
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/bundles" className="brand" aria-label="Convoy, home">
          <img src="/favicon.svg" alt="" width="26" height="26" />
          <span>Convoy</span>
        </Link>
        <div className="topbar-user">
          <span className="user-name">{session.user.name}</span>
          <span className="user-role">{roleSummary}</span>
          <button type="button" className="button button-ghost" onClick={session.signOut}>
            Sign out
          </button>
        </div>
      </header>
      <div className="layout">
        <nav className="sidenav" aria-label="Main">
          <ul>
            {nav
              .filter((entry) => !entry.needs || session.can(entry.needs))
              .map((entry) => (
                <li key={entry.to}>
                  <Link to={entry.to} aria-current={active(entry.to) ? 'page' : undefined}>
                    {entry.label}
                  </Link>
                </li>
              ))}
          </ul>
        </nav>
        <main id="main" className="content">
          <Suspense fallback={<Loading what="the screen" />}>
            {content ?? (
              <div>
                <h1>Page not found</h1>
                <p>There is no screen at {location.path}.</p>
                <Link to="/bundles">Go to the bundles</Link>
              </div>
            )}
          </Suspense>
        </main>
      </div>
    </div>
  );
}

function App() {
  const [stored, setStored] = useState<Stored | undefined>(loadStored);
  const [user, setUser] = useState<CurrentUser | undefined>(undefined);
  const [failure, setFailure] = useState<unknown>(undefined);
  const [expired, setExpired] = useState(false);

  const signOut = useCallback(() => {
    saveStored(undefined);
    setStored(undefined);
    setUser(undefined);
  }, []);
  const client: Client | undefined = useMemo(
    () =>
      stored && {
        token: stored.token,
        onUnauthenticated: () => {
          setExpired(true);
          signOut();
        },
      },
    [stored, signOut],
  );

  // A reload keeps the tab's session: ask the server again who the token belongs to.
  useEffect(() => {
    if (!client || user) return;
    getJson(client, '/api/v1/user', currentUser).then(setUser, (error: unknown) => setFailure(error));
  }, [client, user]);

  const signIn = (value: Stored, who: CurrentUser) => {
    saveStored(value);
    setExpired(false);
    setFailure(undefined);
    setStored(value);
    setUser(who);
    if (window.location.pathname === '/signin') navigate('/bundles', { replace: true });
  };

  if (!client) return <SignInPage onSignedIn={signIn} expired={expired} />;
  if (!user) {
    if (failure !== undefined)
      return (
        <main className="centered">
          <ErrorNotice error={failure} title="Could not restore your session" retry={() => setFailure(undefined)} />
          <button type="button" className="button" onClick={signOut}>
            Sign in again
          </button>
        </main>
      );
    return (
      <main className="centered">
        <Loading what="your session" />
      </main>
    );
  }
  const session: Session = { user, client, signOut, can: (action, bundle, group) => canDo(user, action, bundle, group) };
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} />
    </SessionContext.Provider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
