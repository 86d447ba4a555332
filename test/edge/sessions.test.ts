import test from 'ava';
import type { CredentialVerdict, DeviceCredential } from '../../protocol/edge.ts';
import { createLogger } from '../../protocol/log.ts';
import { createSessionWatch, sessionHolds } from '../../server/edge/sessions.ts';
import { UpstreamUnavailable } from '../../server/edge/upstream.ts';

/*
 * The edge's watch over live MQTT sessions (server/edge/sessions.ts), with the origin's verdicts
 * scripted: who is disconnected, and who is left alone while the origin cannot be reached.
 */

const good: CredentialVerdict = { device: { id: 'till-1', group: 'shop' }, allowed: true };

test('sessionHolds: the same device in the same group; revoked, another device or a move to another group does not', (t) => {
  t.true(sessionHolds(good, 'till-1', 'shop'));
  t.false(sessionHolds({ device: null, allowed: false }, 'till-1', 'shop'), 'revoked or decommissioned');
  t.false(sessionHolds({ device: { id: 'till-2', group: 'shop' }, allowed: true }, 'till-1', 'shop'), 'the credential names another device');
  t.false(sessionHolds({ device: { id: 'till-1', group: 'warehouse' }, allowed: true }, 'till-1', 'shop'), 'moved: its topic rights changed');
});

function watch(answer: (credential: DeviceCredential) => Promise<CredentialVerdict>) {
  const disconnected: string[] = [];
  const sessions = createSessionWatch({ check: answer, disconnect: (id) => disconnected.push(id), intervalMs: 60_000, log: createLogger({ namespace: 'test', level: 'error', write: () => {} }) });
  return { sessions, disconnected };
}

test('a device the origin no longer vouches for is disconnected once; one in good standing is left alone', async (t) => {
  const { sessions, disconnected } = watch(async (credential) => ('token' in credential && credential.token === 'revoked' ? { device: null, allowed: false } : good));
  sessions.signedIn('till-1', 'shop', { token: 'fine' });
  sessions.signedIn('till-9', 'shop', { token: 'revoked' });
  t.deepEqual(await sessions.sweep(), ['till-9']);
  t.deepEqual(disconnected, ['till-9']);
  t.deepEqual(await sessions.sweep(), [], 'forgotten once dropped');
  sessions.stop();
});

test('while the origin cannot be reached (and nothing is cached) the session stays: a link drop does not cut devices off', async (t) => {
  const { sessions, disconnected } = watch(async () => {
    throw new UpstreamUnavailable('link down');
  });
  sessions.signedIn('till-1', 'shop', { certificate: { commonName: 'till-1', serial: '0a' } });
  t.deepEqual(await sessions.sweep(), []);
  t.deepEqual(disconnected, []);
  sessions.stop();
});

test('a device that signed out, or signed in again with another credential while the old one was asked about, is not disconnected for the old one', async (t) => {
  let release!: () => void;
  const asked = new Promise<void>((resolve) => (release = resolve));
  const { sessions, disconnected } = watch(async (credential) => {
    if ('token' in credential && credential.token === 'old') {
      await asked;
      return { device: null, allowed: false };
    }
    return good;
  });
  sessions.signedIn('till-1', 'shop', { token: 'old' });
  const sweeping = sessions.sweep();
  sessions.signedIn('till-1', 'shop', { token: 'new' });
  release();
  t.deepEqual(await sweeping, []);
  sessions.signedOut('till-1');
  t.deepEqual(await sessions.sweep(), []);
  t.deepEqual(disconnected, []);
  sessions.stop();
});
