import test from 'ava';
import { matchesFilter, parseFilter, type Attributes } from '../../protocol/filter.ts';
import { parseDuration, parseFailureThreshold, parsePhases } from '../../protocol/rollout.ts';
import { assignPhases, membershipChanges, nextStep, normalizePhases, overThreshold, phaseSizes, targetStateOf, type PlanInput } from '../../server/deployments/plan.ts';

/* The pure cores of rollouts, by table: the filter language, phase planning, the lifecycle. */

const till: Attributes = { model: 'pos-x2', region: 'eu-west', disk_free_mb: 812, arch: 'arm64', kiosk: true, hostname: 'Till-Berlin-04' };

const filterCases: [string, boolean][] = [
  ['model = "pos-x2"', true],
  ['model = "pos-x2" and region = "eu-west"', true],
  ['model = "pos-x2" and region = "us-east"', false],
  ['region = "us-east" or model = "pos-x2"', true],
  ['not region = "us-east"', true],
  ['disk_free_mb < 1000', true],
  ['disk_free_mb >= 812 and disk_free_mb <= 812', true],
  ['disk_free_mb > 1000', false],
  ['arch in ("amd64", "arm64")', true],
  ['arch in ("amd64")', false],
  ['hostname ~ "berlin"', true],
  ['has kiosk and kiosk = true', true],
  ['has battery', false],
  ['battery = "low"', false],
  ['battery != "low"', true],
  ['(region = "us-east" or region = "eu-west") and not (model = "pos-x1")', true],
  ['a = 1 or b = 2 and c = 3', false],
  ['model = "pos-x2" or region = "x" and kiosk = false', true],
  ['model < 5', false],
];
for (const [text, expected] of filterCases) {
  test(`filter: ${text} → ${expected}`, (t) => {
    t.is(matchesFilter(parseFilter(text), till), expected);
  });
}

const badFilters: [string, RegExp][] = [
  ['', /expected a condition/],
  ['model =', /expected a value at the end/],
  ['model "x"', /expected an operator/],
  ['model = "x" region = "y"', /expected "and", "or" or the end at 13/],
  ['(model = "x"', /expected "\)"/],
  ['model = "x', /unterminated string/],
  ['model = x', /expected a value/],
  ['and = 1', /expected an attribute name/],
  ['model ; 1', /unexpected ";"/],
  ['not '.repeat(40) + 'a = 1', /nested/],
];
for (const [text, message] of badFilters) {
  test(`filter refused: ${JSON.stringify(text.slice(0, 30))}`, (t) => {
    const error = t.throws(() => parseFilter(text));
    t.regex(error!.message, message);
  });
}

test('phases: percentages and counts parse; sizes are cumulative, never shrink, and reach everyone', (t) => {
  t.deepEqual(parsePhases('1,10,50,100'), [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }]);
  t.deepEqual(parsePhases('5dev, 10%,100'), [{ count: 5 }, { percent: 10 }, { percent: 100 }]);
  t.throws(() => parsePhases('0,100'), { message: /neither a percentage/ });
  t.throws(() => parsePhases('150'), { message: /neither a percentage/ });
  t.deepEqual(phaseSizes([{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }], 2000), [20, 200, 1000, 2000]);
  t.deepEqual(phaseSizes([{ percent: 1 }, { percent: 100 }], 20), [1, 20], 'a phase of 1 % of 20 is one device, not none');
  t.deepEqual(phaseSizes([{ count: 10 }, { percent: 5 }], 1000), [10, 50, 1000], 'an implicit last phase reaches every device');
  t.deepEqual(phaseSizes([{ count: 50 }, { count: 10 }], 20), [20, 20]);
  t.deepEqual(phaseSizes([{ percent: 100 }], 0), [0]);
  t.deepEqual(normalizePhases([{ percent: 10 }]), [{ percent: 10 }, { percent: 100 }]);
  t.deepEqual(normalizePhases(undefined), [{ percent: 100 }]);
});

test('phase membership is stable for a deployment, spread across the fleet, and differs between deployments', (t) => {
  const devices = Array.from({ length: 100 }, (_, i) => `till-${i}`);
  const phases = [{ percent: 10 }, { percent: 100 }];
  const first = assignPhases(7, devices, phases);
  t.deepEqual(assignPhases(7, [...devices].reverse(), phases), first, 'the input order does not matter');
  t.is([...first.values()].filter((p) => p === 0).length, 10);
  const early = devices.filter((d) => first.get(d) === 0);
  t.notDeepEqual(early, devices.slice(0, 10), 'not the alphabetically first ten');
  const other = assignPhases(8, devices, phases);
  t.notDeepEqual(devices.filter((d) => other.get(d) === 0), early);
});

test('thresholds, durations', (t) => {
  t.deepEqual(parseFailureThreshold('5%'), { percent: 5 });
  t.deepEqual(parseFailureThreshold('3'), { count: 3 });
  t.throws(() => parseFailureThreshold('five'));
  t.false(overThreshold({ count: 1 }, 1, 10));
  t.true(overThreshold({ count: 1 }, 2, 10));
  t.false(overThreshold({ percent: 5 }, 1, 20));
  t.true(overThreshold({ percent: 5 }, 2, 20));
  t.false(overThreshold(null, 20, 20));
  t.is(parseDuration('30m'), 1_800_000);
  t.is(parseDuration('45s'), 45_000);
  t.is(parseDuration('250'), 250);
  t.throws(() => parseDuration('soon'), { message: /30s, 30m/ });
});

const base: PlanInput = { state: 'running', phase: 0, phaseCount: 3, phaseStartedAt: '2026-01-01T00:00:00.000Z', startAt: null, soakMs: 60_000, maxFailures: { count: 1 }, targets: [], now: new Date('2026-01-01T00:10:00.000Z') };
const targets = (...spec: [number, string][]) => spec.map(([phase, state]) => ({ phase, state: state as never }));

const lifecycle: [string, Partial<PlanInput>, unknown, number?][] = [
  ['a scheduled deployment starts at its time', { state: 'scheduled', startAt: '2026-01-01T00:05:00.000Z' }, { type: 'start' }],
  ['…and not before', { state: 'scheduled', startAt: '2026-01-01T01:00:00.000Z' }, { type: 'none' }],
  ['a phase with devices still updating waits', { targets: targets([0, 'installed'], [0, 'updating'], [1, 'pending']) }, { type: 'none' }],
  ['a settled, soaked phase advances', { targets: targets([0, 'installed'], [0, 'installed'], [1, 'pending']) }, { type: 'advance', phase: 1 }],
  ['a settled phase within its soak waits', { phaseStartedAt: '2026-01-01T00:09:30.000Z', targets: targets([0, 'installed'], [1, 'pending']) }, { type: 'none' }],
  ['failures over the threshold pause, with the reason', { targets: targets([0, 'failed'], [0, 'failed'], [0, 'updating'], [1, 'pending']) }, { type: 'pause', reason: '2 of 3 devices released so far failed, over the limit of 1 devices' }],
  ['failures accepted at resume do not pause again', { targets: targets([0, 'failed'], [0, 'failed'], [0, 'installed'], [1, 'pending']) }, { type: 'advance', phase: 1 }, 2],
  ['the last phase settled completes', { phase: 2, targets: targets([0, 'installed'], [2, 'failed'], [2, 'aborted']), maxFailures: null }, { type: 'complete' }],
  ['a paused deployment does nothing by itself', { state: 'paused', targets: targets([0, 'installed'], [1, 'pending']) }, { type: 'none' }],
  ['an aborted one neither', { state: 'aborted' }, { type: 'none' }],
  ['targets counted per phase and state (as the service reads them) decide the same', { maxFailures: { percent: 40 }, targets: [{ phase: 0, state: 'failed', count: 1 }, { phase: 0, state: 'installed', count: 1 }, { phase: 0, state: 'left', count: 500 }, { phase: 1, state: 'pending', count: 9 }] }, { type: 'pause', reason: '1 of 2 devices released so far failed, over the limit of 40%' }],
  ['a phase counted as 1,000 installed and 0 updating advances', { targets: [{ phase: 0, state: 'installed', count: 1000 }, { phase: 0, state: 'updating', count: 0 }, { phase: 1, state: 'pending', count: 5 }] }, { type: 'advance', phase: 1 }],
  ['devices that left the group settle their phase', { targets: targets([0, 'installed'], [0, 'left'], [1, 'pending']) }, { type: 'advance', phase: 1 }],
  ['devices that left count in no bar: 1 failed of 2 is 50 %, not 25 %', { maxFailures: { percent: 40 }, targets: targets([0, 'failed'], [0, 'installed'], [0, 'left'], [0, 'left']) }, { type: 'pause', reason: '1 of 2 devices released so far failed, over the limit of 40%' }],
];
for (const [name, input, expected, accepted] of lifecycle) {
  test(`lifecycle: ${name}`, (t) => {
    t.deepEqual(nextStep({ ...base, ...input }, accepted ?? 0), expected as never);
  });
}

test("a device's report maps onto its progress in the deployment of one release", (t) => {
  const release = { bundle: 'pos', version: '2.0.0' };
  const r = (state: string, installed: string | null, target: string | null) => ({
    state: state as never,
    installed: installed ? { bundle: 'pos', version: installed } : null,
    target: target ? { bundle: 'pos', version: target } : null,
  });
  t.is(targetStateOf(r('downloading', '1.0.0', '2.0.0'), release, 'notified'), 'updating');
  t.is(targetStateOf(r('waiting', '1.0.0', '2.0.0'), release, 'notified'), 'updating');
  t.is(targetStateOf(r('installed', '2.0.0', null), release, 'updating'), 'installed');
  t.is(targetStateOf(r('failed', '1.0.0', '2.0.0'), release, 'updating'), 'failed');
  t.is(targetStateOf(r('rolled-back', '1.0.0', '2.0.0'), release, 'updating'), 'failed');
  t.is(targetStateOf(r('installed', '2.0.0', null), release, 'failed'), 'installed', 'a device that recovered on its own counts');
  t.is(targetStateOf(r('downloading', '1.0.0', '3.0.0'), release, 'notified'), 'notified', 'a report about another release changes nothing');
  t.is(targetStateOf(r('installed', '2.0.0', null), release, 'aborted'), 'aborted', 'aborted stays aborted');
  t.is(targetStateOf(r('installed', '2.0.0', null), release, 'pending'), 'pending', 'not released yet');
  t.is(targetStateOf(r('installed', '2.0.0', null), release, 'left'), 'left', 'a device that left stays out, whatever it reports later');
});

test('leave rule: who leaves a deployment and who joins it when its group changes', (t) => {
  const rows = (spec: Record<string, string>) => Object.entries(spec).map(([device_id, state]) => ({ device_id, state: state as never }));
  const targets = rows({ a: 'pending', b: 'notified', c: 'updating', d: 'failed', e: 'installed', f: 'aborted', g: 'superseded', h: 'left', i: 'superseded' });
  // Every device but `e`..`i` moved away, `h` came back, `i` is still reached by a newer deployment, `n` is new.
  const members = new Set(['h', 'i', 'n']);
  t.deepEqual(membershipChanges(targets, members, new Set(['i'])), { left: ['a', 'b', 'c', 'd'], joined: ['n'], rejoined: ['h'] });
  // An installed device that leaves stays counted; final states stay as they are.
  t.deepEqual(membershipChanges(rows({ e: 'installed', f: 'aborted', g: 'superseded', h: 'left' }), new Set()), { left: [], joined: [], rejoined: [] });
  // A member superseded here by a newer deployment that no longer reaches it falls back to this one.
  t.deepEqual(membershipChanges(rows({ g: 'superseded' }), new Set(['g'])), { left: [], joined: [], rejoined: ['g'] });
  // Nothing changed, nothing to do.
  t.deepEqual(membershipChanges(rows({ a: 'pending', e: 'installed' }), new Set(['a', 'e'])), { left: [], joined: [], rejoined: [] });
});
