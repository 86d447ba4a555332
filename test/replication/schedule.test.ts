import test from 'ava';
import { cronMatches, parseCron } from '../../protocol/cron.ts';
import { pushArtifact, waitFor, withServer } from '../helpers/server.ts';

/* Scheduled policies: the cron grammar by table, then a policy that fires once per minute. */

test('cron: crontab(5) fields in UTC, both day fields restricted means either', (t) => {
  const at = (iso: string) => new Date(iso);
  const cases: [string, string, boolean][] = [
    ['0 3 * * *', '2026-12-01T03:00:00Z', true],
    ['0 3 * * *', '2026-12-01T03:01:00Z', false],
    ['*/15 * * * *', '2026-12-01T10:45:30Z', true],
    ['*/15 * * * *', '2026-12-01T10:46:00Z', false],
    ['0 9-17/4 * * 1-5', '2026-12-01T13:00:00Z', true], // a Tuesday
    ['0 9-17/4 * * 1-5', '2026-12-05T13:00:00Z', false], // a Saturday
    ['0 0 * * 7', '2026-12-06T00:00:00Z', true], // Sunday as 7
    ['0 0 1 * 0', '2026-12-01T00:00:00Z', true], // the 1st, or a Sunday
    ['0 0 1 * 0', '2026-12-06T00:00:00Z', true],
    ['0 0 1 * 0', '2026-12-02T00:00:00Z', false],
    ['30 2 1,15 6 *', '2026-06-15T02:30:00Z', true],
  ];
  for (const [expr, iso, expected] of cases) t.is(cronMatches(parseCron(expr)!, at(iso)), expected, `${expr} at ${iso}`);
  for (const bad of ['', '* * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8', '5-1 * * * *', '*/0 * * * *', 'a * * * *']) t.is(parseCron(bad), undefined, bad);
});

test('a policy on a schedule starts one run in its minute, not one per check', async (t) => {
  await withServer(
    t,
    async (server) => {
      t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'shop' } })).status, 201);
      await pushArtifact(server, 'shop', '1.0.0', 'app.bin', Buffer.from('app'));
      t.is((await server.api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve')).status, 200);
      t.is((await server.api('POST', '/api/v1/edges', { json: { name: 'shop-eu' } })).status, 201);
      const bad = await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'x', destinations: ['shop-eu'], trigger: { type: 'schedule', cron: '61 * * * *' } } });
      t.is(bad.status, 400);
      t.regex(bad.body.error.message, /five cron fields/);
      t.is((await server.api('POST', '/api/v1/bundles/shop/replication-policies', { json: { name: 'nightly', destinations: ['shop-eu'], trigger: { type: 'schedule', cron: '* * * * *' } } })).status, 201);
      const runs = await waitFor('a scheduled run', async () => {
        const res = await server.api('GET', '/api/v1/bundles/shop/replication-runs');
        return res.body.length > 0 ? res.body : undefined;
      });
      t.like(runs[0], { policy: 'nightly', trigger: 'schedule', by: 'schedule', versions: ['1.0.0'] });
      // Many checks later (every 50 ms), still the one run, unless the minute turned meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = (await server.api('GET', '/api/v1/bundles/shop/replication-runs')).body as { startedAt: string }[];
      t.is(new Set(after.map((r) => r.startedAt.slice(0, 16))).size, after.length, 'at most one run per minute');
      // Disabled: no more runs.
      t.is((await server.api('POST', '/api/v1/bundles/shop/replication-policies/nightly/disable')).status, 200);
    },
    { replicationTickMs: 50 },
  );
});
