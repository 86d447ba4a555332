import test from 'ava';
import { createBatchLoader, createPresenceBatcher } from '../../server/broker/batch.ts';

/*
 * The broker's batching (server/broker/batch.ts): a wave of sign-ins shares one lookup, nothing is
 * remembered between lookups (a revocation between two sign-ins is seen by the second), and
 * presence changes collapse to the latest state per device, written in order.
 */

test('a wave of lookups arriving together is answered by one fetch; later ones by the next', async (t) => {
  const fetches: string[][] = [];
  const loader = createBatchLoader(async (keys: readonly string[]) => {
    fetches.push([...keys]);
    return new Map(keys.filter((k) => k !== 'unknown').map((k) => [k, k.toUpperCase()]));
  }, { maxBatch: 3 });
  const wave = await Promise.all(['a', 'b', 'a', 'unknown', 'c'].map((k) => loader.load(k)));
  t.deepEqual(wave, ['A', 'B', 'A', undefined, 'C']);
  // maxBatch 3 items: a, b, a in the first fetch (deduplicated), the rest in the next.
  t.deepEqual(fetches, [['a', 'b'], ['unknown', 'c']]);
  t.is(await loader.load('d'), 'D');
  t.is(fetches.length, 3);
});

test('nothing is cached: a change between two sign-ins is seen by the second (revocation stays immediate)', async (t) => {
  const revoked = new Set<string>();
  const loader = createBatchLoader(async (keys: readonly string[]) => new Map(keys.filter((k) => !revoked.has(k)).map((k) => [k, true])), { maxBatch: 100 });
  t.true(await loader.load('dev-1'));
  revoked.add('dev-1');
  t.is(await loader.load('dev-1'), undefined);
});

test('a failed fetch fails its own wave only', async (t) => {
  let fail = true;
  const loader = createBatchLoader(async (keys: readonly string[]) => {
    if (fail) throw new Error('database gone');
    return new Map(keys.map((k) => [k, k]));
  }, { maxBatch: 100 });
  await t.throwsAsync(Promise.all([loader.load('a'), loader.load('b')]), { message: 'database gone' });
  fail = false;
  t.is(await loader.load('a'), 'a');
});

test('presence: the latest state per device, in few writes, flushed before close', async (t) => {
  const writes: [string[], string[]][] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const batcher = createPresenceBatcher(async (online, offline) => {
    writes.push([[...online], [...offline]]);
    if (writes.length === 1) await gate; // the first write is slow: the next changes pile up meanwhile
  }, (error) => t.fail(String(error)));
  batcher.offer('a', true);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 100; i++) batcher.offer(`d${i}`, true);
  batcher.offer('a', false);
  batcher.offer('d1', false);
  release();
  await batcher.flush();
  t.is(writes.length, 2);
  t.deepEqual(writes[0], [['a'], []]);
  t.is(writes[1]![0].length, 99);
  t.deepEqual(writes[1]![1].sort(), ['a', 'd1']);
});
