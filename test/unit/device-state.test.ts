import test from 'ava';
import {
  backoffDelay,
  canStart,
  delayUntilWindow,
  emptyJournal,
  insideWindow,
  journalSchema,
  maxRestarts,
  recover,
  reportedState,
  transition,
  TransitionError,
  updateStates,
  type Journal,
  type UpdateEvent,
  type UpdateState,
} from '../../device/state.ts';

const release = { bundle: 'pos-app', version: '2.0.0' };
const old = { bundle: 'pos-app', version: '1.0.0', slot: 'pos-app@1.0.0-aaaaaa' };
const artifacts = [{ name: 'app.bin', type: 'file' as const, length: 3, sha256: 'a'.repeat(64) }];
const fatal = { code: 'digest_mismatch' as const, message: 'bad bytes' };

function run(journal: Journal, ...events: UpdateEvent[]): Journal {
  return events.reduce((j, e) => {
    const next = transition(j, e);
    // Every journal the machine produces is one the daemon can read back after a restart.
    journalSchema.parse(next);
    return next;
  }, journal);
}

const start: UpdateEvent = { type: 'start', id: 'abcdef1234', release, deploymentId: 7, at: '2026-01-01T00:00:00.000Z' };
const installedOld: Journal = { ...emptyJournal, installed: old };

test('the happy path walks every state in order and commits, keeping the previous slot', (t) => {
  const states: string[] = [];
  let j = installedOld;
  for (const e of [start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }, { type: 'switched' }, { type: 'healthy' }] as UpdateEvent[]) {
    j = run(j, e);
    states.push(j.update!.state);
  }
  t.deepEqual(states, ['fetching-metadata', 'downloading', 'verifying', 'staging', 'switching', 'testing', 'committed']);
  t.deepEqual(j.installed, { ...release, slot: 'pos-app@2.0.0-abcdef1234' });
  t.deepEqual(j.kept, [old]);
  t.is(j.storeCount, 7);
});

test('the rollback target is recorded before the switch, and restored by the rollback', (t) => {
  const staged = run(installedOld, start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' });
  t.deepEqual(staged.update!.from, old);
  t.deepEqual(staged.installed, old, 'nothing switched yet');
  const testing = run(staged, { type: 'switched' });
  t.is(testing.installed!.version, '2.0.0');
  const back = run(testing, { type: 'unhealthy', error: { code: 'health_check_failed', message: 'no answer' } }, { type: 'reverted' });
  t.is(back.update!.state, 'rolled-back');
  t.deepEqual(back.installed, old);
  t.is(back.update!.error!.code, 'health_check_failed');
});

const failures: [string, UpdateEvent[], UpdateState][] = [
  ['fatal while fetching metadata', [start], 'failed'],
  ['fatal while downloading', [start, { type: 'planned', artifacts }], 'failed'],
  ['fatal while staging', [start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }], 'failed'],
  ['fatal while switching', [start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }], 'rolling-back'],
  ['fatal while testing', [start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }, { type: 'switched' }], 'rolling-back'],
];
for (const [title, events, expected] of failures) {
  test(`${title} → ${expected}`, (t) => {
    const j = run(installedOld, ...events, { type: 'fail', error: fatal });
    t.is(j.update!.state, expected);
    t.deepEqual(j.update!.error, fatal);
  });
}

test('transient failures stay in the state and count attempts; progress resets the count', (t) => {
  const downloading = run(installedOld, start, { type: 'planned', artifacts });
  const error = { code: 'download_failed' as const, message: 'cut' };
  const twice = run(downloading, { type: 'retry', error, progressed: false }, { type: 'retry', error, progressed: false });
  t.is(twice.update!.state, 'downloading');
  t.is(twice.update!.attempts, 2);
  t.is(run(twice, { type: 'retry', error, progressed: true }).update!.attempts, 0);
  // A local step is not retried: a failed switch goes back.
  const switching = run(installedOld, start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' });
  t.is(run(switching, { type: 'retry', error, progressed: false }).update!.state, 'rolling-back');
});

test('bad bytes are fetched again a bounded number of times', (t) => {
  let j = run(installedOld, start, { type: 'planned', artifacts });
  j = run(j, { type: 'corrupted', error: fatal }, { type: 'corrupted', error: fatal });
  t.is(j.update!.state, 'downloading');
  t.is(run(j, { type: 'corrupted', error: fatal }).update!.state, 'failed');
});

test('the recovery table: redo every step, except a crash while testing, which rolls back', (t) => {
  const table = Object.fromEntries(updateStates.map((s) => [s, recover(s)]));
  t.deepEqual(table, {
    idle: 'nothing',
    'fetching-metadata': 'redo',
    downloading: 'redo',
    verifying: 'redo',
    staging: 'redo',
    switching: 'redo',
    testing: 'roll-back',
    committed: 'nothing',
    'rolling-back': 'redo',
    'rolled-back': 'nothing',
    failed: 'nothing',
    aborted: 'nothing',
  });
  const testing = run(installedOld, start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }, { type: 'switched' });
  const restarted = run(testing, { type: 'restarted' });
  t.is(restarted.update!.state, 'rolling-back');
  t.regex(restarted.update!.error!.message, /restarted while the new release was being tested/);
});

test('a crash loop in one state ends the update (store count)', (t) => {
  let j = run(installedOld, start, { type: 'planned', artifacts });
  for (let i = 0; i < maxRestarts; i++) j = run(j, { type: 'restarted' });
  t.is(j.update!.state, 'downloading');
  j = run(j, { type: 'restarted' });
  t.is(j.update!.state, 'failed');
  t.regex(j.update!.error!.message, /restarted 20 times/);
});

test('a new release may replace an update only before the switch', (t) => {
  t.true(canStart(emptyJournal));
  const downloading = run(installedOld, start, { type: 'planned', artifacts });
  t.true(canStart(downloading));
  const testing = run(downloading, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }, { type: 'switched' });
  t.false(canStart(testing));
  t.throws(() => transition(testing, start), { instanceOf: TransitionError });
  t.throws(() => transition(downloading, { type: 'healthy' }), { instanceOf: TransitionError });
});

test('reported states fit the server column and map the journal', (t) => {
  t.is(reportedState(emptyJournal, false), 'idle');
  t.is(reportedState(installedOld, false), 'installed');
  const fetching = run(installedOld, start);
  t.is(reportedState(fetching, false), 'updating');
  const switching = run(fetching, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' });
  t.is(reportedState(switching, true), 'waiting');
  for (const s of updateStates) t.true(reportedState({ ...switching, update: { ...switching.update!, state: s } }, false).length <= 16);
});

test('install windows, also across midnight', (t) => {
  const at = (h: number, m: number) => new Date(2026, 0, 1, h, m, 0, 0);
  const night = { start: '02:00', end: '04:00' };
  const table: [Date, { start: string; end: string } | null, boolean][] = [
    [at(3, 0), night, true],
    [at(2, 0), night, true],
    [at(4, 0), night, false],
    [at(12, 0), night, false],
    [at(23, 30), { start: '22:00', end: '04:00' }, true],
    [at(1, 0), { start: '22:00', end: '04:00' }, true],
    [at(5, 0), { start: '22:00', end: '04:00' }, false],
    [at(9, 0), null, true],
  ];
  for (const [now, window, inside] of table) t.is(insideWindow(now, window), inside, `${now.toTimeString()} ${JSON.stringify(window)}`);
  t.is(delayUntilWindow(at(1, 0), night), 60 * 60_000);
  t.is(delayUntilWindow(at(5, 0), night), 21 * 60 * 60_000);
  t.is(delayUntilWindow(at(3, 0), night), 0);
});

test('backoff doubles, is capped, and is jittered ±50 %', (t) => {
  t.is(backoffDelay(0, 1000, 60_000, 0.5), 1000);
  t.is(backoffDelay(3, 1000, 60_000, 0.5), 8000);
  t.is(backoffDelay(30, 1000, 60_000, 0.5), 60_000);
  t.is(backoffDelay(1, 1000, 60_000, 0), 1000);
  t.is(backoffDelay(1, 1000, 60_000, 0.999), 2998);
});

test('the high-water mark per bundle follows each commit and survives other bundles and failed updates', async (t) => {
  const { floorOf } = await import('../../device/guard.ts');
  const through = (j: Journal, bundle: string, version: string, id: string, end: UpdateEvent[] = [{ type: 'healthy' }]) =>
    run(j, { ...start, id, release: { bundle, version } } as UpdateEvent, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' }, { type: 'switched' }, ...end);
  let j = through(emptyJournal, 'alpha', '1.1.0', 'aaaaaa');
  t.deepEqual(j.highWater, { alpha: '1.1.0' });
  j = through(j, 'beta', '1.0.0', 'bbbbbb');
  t.deepEqual(j.highWater, { alpha: '1.1.0', beta: '1.0.0' });
  t.is(floorOf(j, 'alpha'), '1.1.0', 'the detour through beta does not forget alpha');
  j = through(j, 'alpha', '2.0.0', 'cccccc', [{ type: 'unhealthy', error: fatal }, { type: 'reverted' }]);
  t.deepEqual(j.highWater, { alpha: '1.1.0', beta: '1.0.0' }, 'a release that never committed sets no mark');
  // A commit below the mark happens only when the guard let a signed rollback through: it lowers the mark.
  j = through(j, 'alpha', '1.0.0', 'dddddd');
  t.is(floorOf(j, 'alpha'), '1.0.0');
  t.is(floorOf(j, 'gamma'), undefined);
});

test('an abort ends an update before the switch (also while switching waits on its lock), never after', (t) => {
  const waiting = run(installedOld, start, { type: 'planned', artifacts }, { type: 'downloaded' }, { type: 'verified' }, { type: 'staged' });
  t.is(waiting.update!.state, 'switching');
  const aborted = run(waiting, { type: 'abort' });
  t.is(aborted.update!.state, 'aborted');
  t.deepEqual(aborted.installed, installedOld.installed, 'the device stays on what it runs');
  t.is(reportedState(aborted, false), 'installed');
  const downloading = run(installedOld, start, { type: 'planned', artifacts });
  t.is(run(downloading, { type: 'abort' }).update!.state, 'aborted');
  const testing = run(waiting, { type: 'switched' });
  t.throws(() => run(testing, { type: 'abort' }), { message: /cannot abort while testing/ });
});
