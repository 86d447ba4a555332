import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { buildUi } from '../helpers/browser.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/*
 * How the server hands out the web UI, over real HTTP: what a browser, a cache and curl see.
 */

async function withUiServer(run: (server: TestServer, uiDir: string) => Promise<void>): Promise<void> {
  const uiDir = await buildUi();
  const server = await startTestServer({}, { uiDir });
  try {
    await run(server, uiDir);
  } finally {
    await server.dispose();
  }
}

const page = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

test('GET / answers the app: never cached, with a Content-Security-Policy that allows nothing from elsewhere', async (t) => {
  await withUiServer(async (server) => {
    const res = await fetch(`${server.url}/`, { headers: page });
    t.is(res.status, 200);
    t.regex(res.headers.get('content-type') ?? '', /^text\/html/);
    t.is(res.headers.get('cache-control'), 'no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    t.regex(csp, /default-src 'self'/);
    t.regex(csp, /script-src 'self'(;|$)/, 'no inline or remote scripts');
    t.regex(csp, /frame-ancestors 'none'/);
    t.is(res.headers.get('x-content-type-options'), 'nosniff');
    const html = await res.text();
    t.regex(html, /<html lang="en">/);
    // Nothing is fetched from the network at run time: every script and style is our own.
    t.notRegex(html, /(src|href)="(https?:)?\/\//);
  });
});

test('hashed assets are cached for good; other files are revalidated', async (t) => {
  await withUiServer(async (server, uiDir) => {
    const assets = await fs.readdir(path.join(uiDir, 'assets'));
    const script = assets.find((name) => name.endsWith('.js'))!;
    const res = await fetch(`${server.url}/assets/${script}`);
    t.is(res.status, 200);
    t.regex(res.headers.get('content-type') ?? '', /^text\/javascript/);
    t.is(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    t.is(Number(res.headers.get('content-length')), (await fs.stat(path.join(uiDir, 'assets', script))).size);
    const icon = await fetch(`${server.url}/favicon.svg`);
    t.is(icon.status, 200);
    t.is(icon.headers.get('cache-control'), 'no-cache');
    const head = await fetch(`${server.url}/assets/${script}`, { method: 'HEAD' });
    t.is(head.status, 200);
    t.is(Number(head.headers.get('content-length')), (await fs.stat(path.join(uiDir, 'assets', script))).size);
  });
});

test('a deep link reloads into the app; API, registry and TUF paths are never shadowed', async (t) => {
  await withUiServer(async (server) => {
    const deep = await fetch(`${server.url}/bundles/pos-app/versions/1.2.0`, { headers: page });
    t.is(deep.status, 200);
    t.regex(await deep.text(), /<div id="root">/);
    // A script asking for JSON at a page URL gets the API's 404, not HTML.
    const json = await fetch(`${server.url}/bundles/pos-app`, { headers: { accept: 'application/json' } });
    t.is(json.status, 404);
    t.is(((await json.json()) as any).error.code, 'not_found');
    const api = await fetch(`${server.url}/api/v1/no-such-route`, { headers: page });
    t.is(api.status, 404);
    t.regex(api.headers.get('content-type') ?? '', /json/);
    const tuf = await fetch(`${server.url}/tuf/no-such.json`, { headers: page });
    t.not(tuf.headers.get('content-type')?.startsWith('text/html'), true);
    const v2 = await fetch(`${server.url}/v2/`, { headers: page });
    t.not(v2.headers.get('content-type')?.startsWith('text/html'), true);
    // A missing asset is a 404, not the app (a stale page asking for an old bundle must see it fail).
    const missing = await fetch(`${server.url}/assets/index-gone.js`, { headers: page });
    t.is(missing.status, 404);
  });
});

test('no path leaves the UI directory', async (t) => {
  await withUiServer(async (server) => {
    for (const probe of ['/..%2f..%2fpackage.json', '/%2e%2e/%2e%2e/package.json', '/assets/..%2f..%2f..%2fpackage.json', '/%00index.html']) {
      const res = await fetch(`${server.url}${probe}`, { headers: { accept: 'application/json' } });
      const body = await res.text();
      t.false(body.includes('"name": "convoy"'), `${probe} served a file outside the UI`);
    }
  });
});

test('without a built UI the server still starts, and / answers the JSON 404 it always did', async (t) => {
  const server = await startTestServer({}, { uiDir: path.join(await fs.mkdtemp('/tmp/convoy-no-ui-'), 'missing') });
  try {
    const res = await fetch(`${server.url}/`, { headers: page });
    t.is(res.status, 404);
    t.is(((await res.json()) as any).error.code, 'not_found');
    t.true(server.logs.some((line) => line.includes('web UI is not built')));
  } finally {
    await server.dispose();
  }
});
