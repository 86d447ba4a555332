import test from 'ava';
import { parseContentRange } from '../../protocol/edge.ts';

/* The Content-Range of a pushed blob piece (protocol/edge.ts): what the edge accepts, and what it refuses. */

const cases: [string, ReturnType<typeof parseContentRange>][] = [
  ['bytes 0-1023/4096', { start: 0, end: 1023, total: 4096 }],
  ['bytes 1024-4095/4096', { start: 1024, end: 4095, total: 4096 }],
  ['bytes */0', { start: 0, end: -1, total: 0 }],
  ['bytes 0-4096/4096', undefined], // END past the last byte
  ['bytes 10-9/4096', undefined], // START after END
  ['bytes 0-1/', undefined],
  ['bytes=0-1/2', undefined],
  ['items 0-1/2', undefined],
  ['bytes -1-1/2', undefined],
  ['', undefined],
  ['bytes 0-1/1234567890123456', undefined], // more digits than a safe size
];

for (const [header, expected] of cases) {
  test(`Content-Range "${header}"`, (t) => {
    t.deepEqual(parseContentRange(header), expected);
  });
}
