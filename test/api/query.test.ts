import net from 'node:net';
import test from 'ava';
import { adminToken, withServer } from '../helpers/server.ts';

/*
 * Query strings and connections as the README promises them (issue 14, items 12, 17 and 18):
 * per_page above 100 counts as 100, only plain whole numbers are numbers, repeated and unknown
 * parameters are refused by name, Link headers never echo the Host header, and an early refusal
 * does not leave a socket waiting for a body nobody will read.
 */

test('per_page above 100 counts as 100 on every listing', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    for (const url of ['/api/v1/bundles?per_page=500', '/api/v1/bundles/pos/versions?per_page=101', '/api/v1/audit?per_page=1000']) {
      const answer = await server.api('GET', url);
      t.is(answer.status, 200, url);
      t.is(answer.headers.get('x-per-page'), '100', url);
      t.regex(answer.headers.get('link') ?? '', /per_page=100/, url);
    }
  });
});

test('numbers are plain whole numbers: 0x10, 1e1, " 5", 5.0 and +5 are refused, naming the parameter', async (t) => {
  await withServer(t, async (server) => {
    for (const value of ['0x10', '1e1', '%205', '5%20', '5.0', '%2B5', '', '0', '-1', '99999999999']) {
      for (const [param, url] of [['per_page', '/api/v1/bundles'], ['page', '/api/v1/bundles'], ['per_page', '/api/v1/audit'], ['page', '/api/v1/audit']] as const) {
        const answer = await server.api('GET', `${url}?${param}=${value}`);
        t.is(answer.status, 400, `${url}?${param}=${value}`);
        t.is(answer.body.error.code, 'invalid_request');
        t.true(answer.body.error.message.includes(param), answer.body.error.message);
      }
    }
  });
});

test('repeated and unknown query parameters are refused, by name, on every route', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    const cases: [string, string][] = [
      ['/api/v1/bundles?page=1&page=2', '"page" is given more than once'],
      ['/api/v1/devices?group=a&group=b', '"group" is given more than once'],
      ['/api/v1/devices?grup=tills', 'grup'],
      ['/api/v1/audit?actr=admin', 'actr'],
      ['/api/v1/tokens?usr=admin', 'usr'],
      ['/api/v1/bundles/pos?verbose=1', '"verbose"'],
      ['/api/v1/deployments?bundel=pos', '"bundel"'],
      ['/api/v1/users?admin=true&x=1', '"admin", "x"'],
    ];
    for (const [url, named] of cases) {
      const answer = await server.api('GET', url);
      t.is(answer.status, 400, url);
      t.is(answer.body.error.code, 'invalid_request', url);
      t.true(answer.body.error.message.includes(named), `${url}: ${answer.body.error.message}`);
    }
    // What is declared still works.
    t.is((await server.api('GET', '/api/v1/devices?group=tills')).status, 200);
    t.is((await server.api('GET', '/api/v1/tokens?user=admin')).status, 200);
    t.is((await server.api('GET', '/api/v1/devices?group=Bad%20Group')).body.error.code, 'invalid_request');
  });
});

/** One raw HTTP/1.1 exchange, so the Host header can be anything a client likes. */
function rawRequest(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n\r\n')) socket.destroy();
    });
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

test('pagination Link headers are relative: a forged Host header never reaches them', async (t) => {
  await withServer(t, async (server) => {
    for (let i = 0; i < 3; i++) await server.api('POST', '/api/v1/bundles', { json: { name: `b${i}` } });
    for (const url of ['/api/v1/bundles?per_page=1', '/api/v1/audit?per_page=1']) {
      const answer = await rawRequest(server.httpPort, `GET ${url} HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${adminToken}\r\nConnection: close\r\n\r\n`);
      const link = /^link: (.*)$/im.exec(answer)?.[1] ?? '';
      t.regex(link, /<\/api\/v1\/[a-z]+\?per_page=1&page=2>; rel="next"/, url);
      t.false(link.includes('evil'), link);
      t.false(link.includes('://'), `links are relative: ${link}`);
    }
  });
});

/**
 * Sends headers announcing a large body and a few bytes of it, then waits: the server must
 * answer and close the connection, not wait for the rest.
 */
function refusedUpload(port: number, head: string): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${head}Content-Length: 10000000000\r\n\r\n${'x'.repeat(1000)}`));
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, 5000);
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, closed: true });
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      // A reset after the answer is a close too.
      if (answer) resolve({ answer, closed: true });
      else reject(error);
    });
  });
}

test('after an early refusal (401, 403, 400) the server closes a connection whose declared body it did not read', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/users', { json: { name: 'rita' } });
    const rita = (await server.api('POST', '/api/v1/tokens', { json: { name: 't', scopes: ['read'], user: 'rita' } })).body.token as string;
    const digest = `sha256:${'a'.repeat(64)}`;
    const cases: [string, string][] = [
      ['401', `PUT /api/v1/blobs/${digest} HTTP/1.1\r\nHost: x\r\n`],
      ['401', `PUT /api/v1/blobs/${digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cvy_not-a-real-token-at-all\r\n`],
      ['403', `PUT /api/v1/blobs/${digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${rita}\r\n`],
      ['400', `PUT /api/v1/blobs/sha256:nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\n`],
      ['413', `POST /api/v1/bundles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminToken}\r\nContent-Type: application/json\r\n`],
    ];
    for (const [status, head] of cases) {
      const { answer, closed } = await refusedUpload(server.httpPort, head);
      t.true(answer.startsWith(`HTTP/1.1 ${status}`), `${status}: ${answer.slice(0, 40)}`);
      t.regex(answer, /^connection: close$/im, `${status}: says it closes`);
      t.true(closed, `${status}: the connection is closed, not kept waiting for the body`);
    }
  });
});
