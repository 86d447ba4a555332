import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { createDeviceCsr, createRootCa, createServerCertificate, generateKeyPem, signDeviceCsr } from '../../certs/pki.ts';
import { deviceConfig, deviceConfigSchemaId } from '../../protocol/device-config.ts';
import { createLogger } from '../../protocol/log.ts';
import { answered, createServerPool, isOutage, tryOrder } from '../../device/servers.ts';
import { readText } from '../../lib/http.ts';

/*
 * The device's list of servers: the pure rule (which server first, when to move on, when to go
 * back to the preferred one), the config's two forms, and the pool on real loopback HTTP servers.
 */

const failback = 60_000;

test('try order: the server that last answered first, then the rest in list order; the preferred one again once failback is due', (t) => {
  const table: Array<[string, { active: number; since: number }, number, number[]]> = [
    ['preferred is healthy', { active: 0, since: 0 }, 10, [0, 1, 2]],
    ['moved to the second', { active: 1, since: 0 }, 1_000, [1, 0, 2]],
    ['moved to the third', { active: 2, since: 0 }, 1_000, [2, 0, 1]],
    ['failback due', { active: 2, since: 0 }, failback, [0, 1, 2]],
    ['failback due, second active', { active: 1, since: 5 }, failback + 5, [0, 1, 2]],
  ];
  for (const [what, state, now, order] of table) t.deepEqual(tryOrder(3, state, now, failback), order, what);
  t.deepEqual(tryOrder(1, { active: 0, since: 0 }, 0, failback), [0]);
});

test('answered: a new server is remembered with the time; the same one keeps its time (failback counts from the move)', (t) => {
  const state = { active: 0, since: 0 };
  t.is(answered(state, 0, 99), state);
  t.deepEqual(answered(state, 1, 99), { active: 1, since: 99 });
  const moved = { active: 1, since: 99 };
  t.is(answered(moved, 1, 500), moved);
  t.deepEqual(answered(moved, 0, 700), { active: 0, since: 700 });
  // A failback that found the preferred one down: the interval starts over.
  t.deepEqual(answered(moved, 1, 900, true), { active: 1, since: 900 });
  t.deepEqual(answered({ active: 0, since: 0 }, 0, 900, true), { active: 0, since: 0 });
});

test('outage: no connection, no answer or a 5xx move on; a 4xx is an answer', (t) => {
  t.true(isOutage({ error: new TypeError('ECONNREFUSED') }));
  for (const status of [500, 502, 503, 504]) t.true(isOutage({ status }), String(status));
  for (const status of [200, 204, 206, 304, 401, 403, 404, 416]) t.false(isOutage({ status }), String(status));
});

const base = { schema: deviceConfigSchemaId, id: 'd-1', group: 'g' };

test('device.json: the one-server form and the servers list read into one; mixing them or a list with no broker is refused', (t) => {
  const one = deviceConfig.parse({ ...base, serverUrl: 'http://origin:8080', mqttUrl: 'mqtt://origin:1883' });
  t.deepEqual(one.servers, [{ url: 'http://origin:8080', mqttUrl: 'mqtt://origin:1883' }]);
  t.is(one.failbackSeconds, 300);
  const list = deviceConfig.parse({ ...base, servers: [{ url: 'https://edge:8443' }, { url: 'https://origin:8443', mqttUrl: 'mqtts://origin:8883' }] });
  t.is(list.serverUrl, 'https://edge:8443');
  t.is(list.mqttUrl, 'mqtts://origin:8883');
  t.is(list.servers.length, 2);
  t.false(deviceConfig.safeParse({ ...base, serverUrl: 'http://a', mqttUrl: 'mqtt://a', servers: [{ url: 'http://b', mqttUrl: 'mqtt://b' }] }).success);
  t.false(deviceConfig.safeParse({ ...base, servers: [{ url: 'http://b' }] }).success, 'no broker at all');
  t.false(deviceConfig.safeParse({ ...base, servers: [] }).success);
  t.false(deviceConfig.safeParse({ ...base, mqttUrl: 'mqtt://a' }).success, 'no server');
  t.false(deviceConfig.safeParse({ ...base, servers: [{ url: 'ftp://b', mqttUrl: 'mqtt://b' }] }).success);
});

async function listen(handler: http.RequestListener): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/** A port nothing listens on: connections are refused. */
async function closedPort(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

test('the pool on real sockets: a refused first server and a 503 move on, the one that answered is remembered, the preferred one is tried again after failback, a 404 stands', async (t) => {
  const dead = await closedPort();
  const busy = await listen((_req, res) => res.writeHead(503).end());
  const good = await listen((req, res) => {
    if (req.url === '/missing') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`good:${req.headers.authorization ?? ''}:${req.url}`);
  });
  const lines: string[] = [];
  let clock = 1_000;
  try {
    const pool = createServerPool({
      servers: [{ url: dead }, { url: busy.url }, { url: `${good.url}/` }],
      token: 'tok',
      failbackMs: 60_000,
      log: createLogger({ namespace: 'test', level: 'debug', write: (line) => lines.push(line) }),
      now: () => clock,
    });
    const first = await pool.request(`${dead}/api/v1/x`, { answerTimeoutMs: 5_000 });
    t.is(first.server, good.url);
    t.is(await readText(first.response, 1000), 'good:Bearer tok:/api/v1/x');
    t.is(busy.hits(), 1);
    t.is(pool.current(), good.url);
    t.is(lines.filter((l) => l.includes('server unavailable; trying the next')).length, 2);

    // Remembered: the next request goes straight to the one that answered.
    const second = await pool.get('/api/v1/y', { timeoutMs: 5_000 });
    t.is(await readText(second, 1000), 'good:Bearer tok:/api/v1/y');
    t.is(busy.hits(), 1, 'the failed servers are not asked again');
    // A 404 is the server's answer: no failover.
    const missing = await pool.request('/missing', { answerTimeoutMs: 5_000 });
    t.is(missing.response.statusCode, 404);
    missing.response.resume();

    // Failback: after the interval the preferred one is tried first again (still dead here).
    clock += 60_000;
    const third = await pool.request('/api/v1/z', { answerTimeoutMs: 5_000 });
    t.is(third.server, good.url);
    third.response.resume();
    t.is(busy.hits(), 2, 'failback walks the list from the top again');
    // ... once: the preferred one is tried again only after another interval.
    (await pool.request('/api/v1/w', { answerTimeoutMs: 5_000 })).response.resume();
    t.is(busy.hits(), 2);
    clock += 60_000;
    (await pool.request('/api/v1/v', { answerTimeoutMs: 5_000 })).response.resume();
    t.is(busy.hits(), 3);

    // All down: a network failure that names every server.
    await good.close();
    await busy.close();
    const error = await t.throwsAsync(pool.request('/api/v1/q', { answerTimeoutMs: 5_000 }));
    t.true(error instanceof TypeError);
    t.regex(error!.message, /no server answered: .*127\.0\.0\.1/);
  } finally {
    await good.close().catch(() => {});
    await busy.close().catch(() => {});
  }
});

test('the pool: a server that accepts but never answers is given up after the answer timeout, and the next one serves', async (t) => {
  const held = new Set<net.Socket>();
  // Accepts and reads, never answers (a hung server).
  const silent = net.createServer((socket) => void held.add(socket.resume()));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const good = await listen((_req, res) => res.end('ok'));
  try {
    const pool = createServerPool({ servers: [{ url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` }, { url: good.url }], token: 't', failbackMs: 1_000, log: createLogger({ namespace: 'test', level: 'error', write: () => {} }) });
    const answer = await pool.request('/x', { answerTimeoutMs: 300 });
    t.is(answer.server, good.url);
    t.is(await readText(answer.response, 100), 'ok');
    // The caller's own abort is not an outage: nothing else is tried.
    const stop = new AbortController();
    stop.abort();
    await t.throwsAsync(pool.request('/x', { answerTimeoutMs: 300, signal: stop.signal }));
  } finally {
    await good.close();
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('the pool speaks to an https server with the device certificate and no token, to an http one with the token', async (t) => {
  const now = new Date();
  const root = createRootCa({ name: 'Fleet', now });
  const serverCert = createServerCertificate({ issuer: root, dns: ['localhost'], ip: ['127.0.0.1'], now });
  const deviceKey = generateKeyPem();
  const deviceCert = signDeviceCsr({ issuer: root, csrPem: createDeviceCsr({ deviceId: 'd-1', keyPem: deviceKey }), deviceId: 'd-1', now });
  const seen: string[] = [];
  const secure = https.createServer({ cert: serverCert.certPem, key: serverCert.keyPem, ca: root.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
    seen.push(`${peer.subject?.CN}:${req.headers.authorization ?? 'no token'}`);
    res.end('secure');
  });
  await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
  const plain = await listen((req, res) => res.end(`plain:${req.headers.authorization}`));
  const log = createLogger({ namespace: 'test', level: 'error', write: () => {} });
  try {
    const secureUrl = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
    const identity = { cert: deviceCert, key: deviceKey, ca: root.certPem };
    const enrolled = createServerPool({ servers: [{ url: secureUrl }, { url: plain.url }], identity, token: 'tok', failbackMs: 1_000, log });
    t.is(await readText(await enrolled.get('/a', { timeoutMs: 5_000 }), 100), 'secure');
    t.deepEqual(seen, ['d-1:no token']);
    // Without a certificate the mutual-TLS server refuses the handshake: the next server (plain http) answers, with the token.
    const tokenOnly = createServerPool({ servers: [{ url: secureUrl }, { url: plain.url }], token: 'tok', failbackMs: 1_000, log });
    t.is(await readText(await tokenOnly.get('/b', { timeoutMs: 5_000 }), 100), 'plain:Bearer tok');
    // An enrolled device with no token cannot use a plain-http server: it says so and moves on.
    const noToken = createServerPool({ servers: [{ url: plain.url }, { url: secureUrl }], identity, failbackMs: 1_000, log });
    t.is(await readText(await noToken.get('/c', { timeoutMs: 5_000 }), 100), 'secure');
  } finally {
    await plain.close();
    await new Promise<void>((resolve) => (secure.closeAllConnections(), secure.close(() => resolve())));
  }
});
