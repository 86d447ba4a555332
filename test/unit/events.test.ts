import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import Koa from 'koa';
import { streamSnapshots } from '../../server/http/events.ts';

/*
 * Server-sent snapshot streams over real HTTP: the first snapshot at once, one event per change
 * (none for a read that changed nothing), the end after a final snapshot, and no more reads once
 * the client has gone.
 */

async function serve(load: () => Promise<{ n: number }>, isFinal: (v: { n: number }) => boolean, intervalMs = 30, version?: () => Promise<string>) {
  const app = new Koa();
  app.use(async (ctx) => streamSnapshots(ctx, { load, isFinal, intervalMs, heartbeatMs: 10_000, maxMs: 20_000, ...(version ? { version } : {}) }));
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))) };
}

function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('event: snapshot'))
    .map((block) => JSON.parse(block.split('\n').find((line) => line.startsWith('data: '))!.slice(6)));
}

test('a snapshot per change, none for reads that changed nothing, and the end after the final one', async (t) => {
  const values = [0, 0, 1, 1, 1, 2, 3];
  let reads = 0;
  const s = await serve(async () => ({ n: values[Math.min(reads++, values.length - 1)]! }), (v) => v.n === 3);
  try {
    const res = await fetch(s.url);
    t.regex(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    t.is(res.headers.get('cache-control'), 'no-store');
    t.deepEqual(events(await res.text()), [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
  } finally {
    await s.close();
  }
});

test('with a change token, the resource is read again only when the token changed', async (t) => {
  let token = 0;
  let polls = 0;
  let reads = 0;
  const s = await serve(
    async () => ({ n: (reads++, token) }),
    (v) => v.n === 2,
    20,
    async () => {
      // The token changes on the 5th and the 10th poll only.
      polls++;
      if (polls === 5 || polls === 10) token++;
      return String(token);
    },
  );
  try {
    const res = await fetch(s.url);
    t.deepEqual(events(await res.text()), [{ n: 0 }, { n: 1 }, { n: 2 }]);
    t.is(reads, 3, 'one read at the start and one per change, none for the polls in between');
    t.true(polls >= 10);
  } finally {
    await s.close();
  }
});

test('a client that leaves stops the reads', async (t) => {
  let reads = 0;
  const s = await serve(async () => ({ n: reads++ }), () => false);
  try {
    const controller = new AbortController();
    const res = await fetch(s.url, { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const after = reads;
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.true(reads - after <= 1, `reads went on after the client left (${after} → ${reads})`);
  } finally {
    await s.close();
  }
});

test('a read that fails ends the stream with an error event', async (t) => {
  let reads = 0;
  const s = await serve(async () => {
    if (reads++ > 0) throw Object.assign(new Error('the deployment is gone'), { code: 'not_found' });
    return { n: 1 };
  }, () => false);
  try {
    const text = await (await fetch(s.url)).text();
    t.deepEqual(events(text), [{ n: 1 }]);
    t.regex(text, /event: error\ndata: \{"error":\{"code":"not_found","message":"the deployment is gone"\}\}/);
  } finally {
    await s.close();
  }
});
