import test from 'ava';
import type { CredentialVerdict } from '../../protocol/edge.ts';
import { createCredentialCache } from '../../server/edge/credentials.ts';
import { UpstreamUnavailable } from '../../server/edge/upstream.ts';

/*
 * The edge's cache of device credential verdicts (server/edge/credentials.ts), on a fake clock:
 * fresh answers are reused, a revocation is seen once the fresh time is over and the origin
 * answers, and a link drop keeps devices in for the stale time, no longer.
 */

const valid: CredentialVerdict = { device: { id: 'till-1', group: 'shop' }, allowed: true };
const revoked: CredentialVerdict = { device: null, allowed: false };

function origin() {
  const state = { verdict: valid, up: true, asked: 0, now: 0 };
  const cache = createCredentialCache({
    ask: async () => {
      state.asked++;
      if (!state.up) throw new UpstreamUnavailable('link down');
      return state.verdict;
    },
    now: () => state.now,
    freshMs: 60_000,
    staleMs: 3_600_000,
    maxEntries: 2,
  });
  return { state, cache };
}

test('a fresh verdict is reused without asking the origin again', async (t) => {
  const { state, cache } = origin();
  t.deepEqual(await cache.check({ token: 'tok' }), valid);
  state.now = 59_999;
  t.deepEqual(await cache.check({ token: 'tok' }), valid);
  t.is(state.asked, 1);
  // A different question (a digest) is its own verdict.
  await cache.check({ token: 'tok' }, 'sha256:' + 'a'.repeat(64));
  t.is(state.asked, 2);
});

test('a revoked device is refused once the fresh time is over and the origin answers', async (t) => {
  const { state, cache } = origin();
  await cache.check({ token: 'tok' });
  state.verdict = revoked;
  state.now = 30_000;
  t.deepEqual(await cache.check({ token: 'tok' }), valid, 'within the fresh time the cached answer stands');
  state.now = 60_000;
  t.deepEqual(await cache.check({ token: 'tok' }), revoked);
});

test('while the origin is unreachable a cached verdict stands for the stale time, then the device is not let in', async (t) => {
  const { state, cache } = origin();
  await cache.check({ token: 'tok' });
  state.up = false;
  state.now = 3_599_999;
  t.deepEqual(await cache.check({ token: 'tok' }), valid, 'a link drop does not lock the device out');
  state.now = 3_600_000;
  await t.throwsAsync(cache.check({ token: 'tok' }), { instanceOf: UpstreamUnavailable });
  await t.throwsAsync(cache.check({ token: 'never-seen' }), { instanceOf: UpstreamUnavailable }, 'a token never checked is not let in');
});

test('the cache is bounded: the oldest answers go first', async (t) => {
  const { state, cache } = origin();
  await cache.check({ token: 'a' });
  await cache.check({ token: 'b' });
  await cache.check({ token: 'c' });
  state.asked = 0;
  await cache.check({ token: 'c' });
  t.is(state.asked, 0);
  await cache.check({ token: 'a' });
  t.is(state.asked, 1, '"a" was evicted');
});

test('a certificate is checked under the same rule: by serial (one spelling), revoked refused after the fresh time, kept through a link drop', async (t) => {
  const { state } = origin();
  const asked: unknown[] = [];
  const seen = createCredentialCache({
    ask: async (credential) => {
      asked.push(credential);
      if (!state.up) throw new UpstreamUnavailable('link down');
      return state.verdict;
    },
    now: () => state.now,
    freshMs: 60_000,
    staleMs: 3_600_000,
  });
  t.deepEqual(await seen.check({ certificate: { commonName: 'till-1', serial: '00AB12' } }), valid);
  // Node prints serials in upper case with leading zero octets; the same certificate is one entry.
  t.deepEqual(await seen.check({ certificate: { commonName: 'till-1', serial: 'ab12' } }), valid);
  t.is(asked.length, 1);
  t.deepEqual(asked[0], { certificate: { commonName: 'till-1', serial: '00AB12' } }, 'the origin is asked about the certificate itself');
  state.verdict = revoked;
  state.now = 60_000;
  t.deepEqual(await seen.check({ certificate: { commonName: 'till-1', serial: 'AB12' } }), revoked, 'a revoked certificate is refused once the fresh time is over');
  state.verdict = valid;
  state.now = 120_000;
  await seen.check({ certificate: { commonName: 'till-1', serial: 'AB12' } });
  state.up = false;
  state.now = 120_000 + 3_599_999;
  t.deepEqual(await seen.check({ certificate: { commonName: 'till-1', serial: 'AB12' } }), valid, 'a link drop does not lock the device out');
  await t.throwsAsync(seen.check({ certificate: { commonName: 'till-2', serial: 'CD34' } }), { instanceOf: UpstreamUnavailable });
});
