import { createHash } from 'node:crypto';
import test from 'ava';
import type { Page, Route } from 'playwright-core';
import { signIn, withBrowser } from '../helpers/browser.ts';

/*
 * A large file dropped on a draft goes up in chunks through a resumable session: a connection
 * reset costs one retry of the chunk in flight, and after a reload the same file dropped again
 * continues where the server stopped. Real server, real Chromium; the network faults are
 * injected by intercepting the browser's requests.
 */

const mib = 1024 * 1024;
const size = 24 * mib; // three chunks of 8 MiB
const lastModified = 1_750_000_000_000;

/** The file's bytes, the same in the page and here. */
function fill(length: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + (i >>> 13)) & 255;
  return data;
}

async function dropFile(page: Page): Promise<void> {
  const transfer = await page.evaluateHandle(
    ({ length, modified }) => {
      const data = new Uint8Array(length);
      for (let i = 0; i < length; i++) data[i] = (i * 31 + (i >>> 13)) & 255;
      const web = globalThis as unknown as { DataTransfer: new () => { items: { add(file: unknown): void } }; File: new (parts: unknown[], name: string, options: unknown) => unknown };
      const dt = new web.DataTransfer();
      dt.items.add(new web.File([data], 'disk.img', { type: 'application/octet-stream', lastModified: modified }));
      return dt;
    },
    { length: size, modified: lastModified },
  );
  await page.locator('.dropzone').dispatchEvent('drop', { dataTransfer: transfer });
}

test('a large upload survives a connection reset and a reload, sending each byte once', async (t) => {
  await withBrowser(t, async (fx) => {
    const { server } = fx;
    await server.api('POST', '/api/v1/bundles', { json: { name: 'images' } });
    await server.api('POST', '/api/v1/bundles/images/versions', { json: { version: '3.0.0' } });
    const page = await fx.newPage();
    await signIn(page, server.url, 'admin', (await server.api('POST', '/api/v1/tokens', { json: { name: 'ui', scopes: ['read', 'write'] } })).body.token, '/bundles/images/versions/3.0.0');
    await page.getByText('Drop files here').waitFor();

    const sent: { phase: number; method: string; range: string | undefined }[] = [];
    let phase = 1;
    let resetDone = false;
    let holding: Route | undefined;
    await page.route('**/v2/images/ui-uploads/blobs/uploads/**', async (route) => {
      const request = route.request();
      const range = (await request.allHeaders())['content-range'];
      sent.push({ phase, method: request.method(), range });
      if (phase === 1 && request.method() === 'PATCH' && range?.startsWith(`${8 * mib}-`) && !resetDone) {
        resetDone = true;
        return route.abort('connectionreset');
      }
      if (phase === 1 && request.method() === 'PATCH' && range?.startsWith(`${16 * mib}-`)) {
        holding = route; // never answered: the tab is reloaded while this chunk is in flight
        return;
      }
      return route.continue();
    });

    await dropFile(page);
    const progress = page.getByRole('progressbar', { name: 'Upload of disk.img' });
    await progress.waitFor();
    for (let i = 0; i < 300 && !holding; i++) await page.waitForTimeout(100);
    t.truthy(holding, 'the third chunk was sent after the reset chunk was retried');
    t.true(Number(await progress.getAttribute('value')) >= 16 * mib, 'progress shows two chunks held by the server');
    await fx.screenshot(page, 'upload-01-large-in-flight');

    // The tab reloads mid-chunk; the same file dropped again continues from 16 MiB.
    phase = 2;
    await page.reload();
    await page.getByText('Drop files here').waitFor();
    await dropFile(page);
    await page.getByText('Uploaded', { exact: true }).waitFor({ timeout: 60_000 });
    await page.getByRole('cell', { name: 'disk.img', exact: true }).waitFor();
    await fx.screenshot(page, 'upload-02-large-done');

    const phase1 = sent.filter((s) => s.phase === 1);
    const phase2 = sent.filter((s) => s.phase === 2);
    t.deepEqual(phase1.filter((s) => s.method === 'PATCH').map((s) => s.range), [`0-${8 * mib - 1}`, `${8 * mib}-${16 * mib - 1}`, `${8 * mib}-${16 * mib - 1}`, `${16 * mib}-${24 * mib - 1}`], 'the reset chunk is sent again, nothing else');
    t.is(phase2.filter((s) => s.method === 'POST').length, 0, 'no new session after the reload');
    t.deepEqual(phase2.filter((s) => s.method === 'PATCH').map((s) => s.range), [`${16 * mib}-${24 * mib - 1}`], 'only the missing chunk after the reload');

    const stored = await server.api('GET', '/api/v1/bundles/images/versions/3.0.0/artifacts/disk.img');
    t.is(stored.body.size, size);
    t.is(stored.body.digest, `sha256:${createHash('sha256').update(fill(size)).digest('hex')}`);
    t.deepEqual(fx.pageErrors.filter((e) => !/net::ERR_CONNECTION_RESET/.test(e)), []);
  });
});
