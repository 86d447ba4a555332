import test from 'ava';
import { parseRange } from '../../server/blobs/routes.ts';
import { artifactName, bundleName, parseRelease, version } from '../../protocol/names.ts';
import { deviceIdFromStatusTopic, deviceStatusTopic, groupReleaseTopic } from '../../protocol/messages.ts';

const ok = (schema: { safeParse(v: unknown): { success: boolean } }, value: string) => schema.safeParse(value).success;

test('names that reach paths, URLs and topics are allow-listed', (t) => {
  for (const good of ['pos', 'pos-app', 'a.b_c-1', '0']) t.true(ok(bundleName, good), good);
  for (const badName of ['', 'Pos', '-pos', 'pos-', 'a/b', '..', 'a b', 'é', 'x'.repeat(65)]) t.false(ok(bundleName, badName), badName);
  for (const good of ['app.bin', 'App_1', 'x', '-dash', 'a..b']) t.true(ok(artifactName, good), good);
  for (const badName of ['', '.', '..', '.hidden', 'a/b', 'a\\b', 'a\u0000b', 'line\n']) t.false(ok(artifactName, badName), JSON.stringify(badName));
});

test('versions are strict semver', (t) => {
  for (const good of ['0.0.1', '1.2.3', '1.0.0-rc.1', '10.20.30-alpha.beta']) t.true(ok(version, good), good);
  for (const badVersion of ['1', '1.0', 'v1.0.0', '=1.0.0', '01.0.0', '1.0.0-', ' 1.0.0', '1.0.0 ', '1.0.0+build.5']) t.false(ok(version, badVersion), badVersion);
});

test('NAME@VERSION parsing', (t) => {
  t.deepEqual(parseRelease('pos@1.0.0'), { bundle: 'pos', version: '1.0.0' });
  t.deepEqual(parseRelease('pos@1.0.0-rc.1'), { bundle: 'pos', version: '1.0.0-rc.1' });
  for (const text of ['pos', '@1.0.0', 'pos@', 'pos@1.0', 'Pos@1.0.0', 'pos@1.0.0+b']) t.is(parseRelease(text), undefined, text);
});

test('topics round-trip and reject foreign shapes', (t) => {
  t.is(groupReleaseTopic('shop'), 'convoy/v1/groups/shop/release');
  t.is(deviceIdFromStatusTopic(deviceStatusTopic('till-1')), 'till-1');
  for (const topic of ['convoy/v1/devices/+/status', 'convoy/v1/devices/a/b/status', 'convoy/v2/devices/a/status', 'convoy/v1/devices//status']) t.is(deviceIdFromStatusTopic(topic), undefined, topic);
});

const ranges: [string, number, ReturnType<typeof parseRange>][] = [
  ['bytes=0-99', 1000, { start: 0, end: 99 }],
  ['bytes=900-', 1000, { start: 900, end: 999 }],
  ['bytes=-100', 1000, { start: 900, end: 999 }],
  ['bytes=-5000', 1000, { start: 0, end: 999 }],
  ['bytes=500-99999', 1000, { start: 500, end: 999 }],
  ['bytes=1000-', 1000, 'unsatisfiable'],
  ['bytes=-0', 1000, 'unsatisfiable'],
  ['bytes=5-1', 1000, undefined],
  ['bytes=0-1,5-6', 1000, undefined],
  ['items=0-1', 1000, undefined],
  ['bytes=-', 1000, undefined],
];
for (const [header, size, expected] of ranges) {
  test(`Range ${header} of ${size} bytes`, (t) => t.deepEqual(parseRange(header, size), expected));
}
