import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import test from 'ava';
import type { Page } from 'playwright-core';
import { signIn, withBrowser, type BrowserFixture } from '../helpers/browser.ts';
import { pushArtifact, type TestServer } from '../helpers/server.ts';

/*
 * A release manager's day, in headless Chromium against a real server: create a draft, upload a
 * file with a progress bar, see that a reporter is not offered the approve button, approve as a
 * maintainer through the confirmation step, see the version signed, and diff two versions.
 * Every screen is checked with axe-core and saved as a screenshot (test-artifacts/ui/).
 */

async function api(server: TestServer, method: string, path: string, json?: unknown): Promise<any> {
  const res = await server.api(method, path, json === undefined ? {} : { json });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
  return res.body;
}

async function addUser(server: TestServer, name: string, bundle: string, role: string, scopes: string[]): Promise<string> {
  await api(server, 'POST', '/api/v1/users', { name });
  await api(server, 'POST', `/api/v1/bundles/${bundle}/members`, { user: name, role });
  return (await api(server, 'POST', '/api/v1/tokens', { name: `${name} in the browser`, scopes, user: name })).token;
}

async function expectAccessible(t: any, fx: BrowserFixture, page: Page, screen: string): Promise<void> {
  t.deepEqual(await fx.accessibility(page), [], `accessibility of ${screen}`);
}

test('release manager: draft, upload with progress, reporter cannot approve, maintainer approves and signs, diff', async (t) => {
  await withBrowser(t, async (fx) => {
    const { server } = fx;
    await api(server, 'POST', '/api/v1/bundles', { name: 'pos-app', description: 'Point-of-sale application for the shop tills' });
    const mara = await addUser(server, 'mara', 'pos-app', 'maintainer', ['read', 'write', 'approve']);
    const rita = await addUser(server, 'rita', 'pos-app', 'reporter', ['read']);
    // 1.0.0 is out already: two artifacts, approved.
    await pushArtifact(server, 'pos-app', '1.0.0', 'app.tar.gz', randomBytes(40_000), 'archive');
    await pushArtifact(server, 'pos-app', '1.0.0', 'config.json', Buffer.from('{"currency":"EUR"}\n'));
    await api(server, 'POST', '/api/v1/bundles/pos-app/versions/1.0.0/approve');

    // The maintainer signs in and lands on the bundles.
    const page = await fx.newPage();
    await signIn(page, server.url, 'mara', mara);
    await page.getByRole('link', { name: 'pos-app' }).click();
    await page.getByRole('heading', { level: 1, name: 'pos-app' }).waitFor();
    await fx.screenshot(page, 'rm-01-bundle');
    await expectAccessible(t, fx, page, 'the bundle page');

    // A new draft that starts from 1.0.0's artifacts.
    await page.getByRole('button', { name: 'New draft' }).click();
    const draftDialog = page.getByRole('dialog', { name: 'New draft version' });
    await draftDialog.getByRole('button', { name: 'next minor' }).click();
    await t.notThrowsAsync(async () => {
      for (let i = 0; i < 50 && (await draftDialog.getByLabel('Version').inputValue()) !== '1.1.0'; i++) await page.waitForTimeout(100);
    });
    t.is(await draftDialog.getByLabel('Version').inputValue(), '1.1.0');
    await draftDialog.getByLabel('Start from').selectOption('1.0.0');
    await fx.screenshot(page, 'rm-02-new-draft');
    await draftDialog.getByRole('button', { name: 'Create draft' }).click();
    await page.waitForURL(`${server.url}/bundles/pos-app/versions/1.1.0`);
    await page.getByText('draft', { exact: true }).first().waitFor();

    // Upload by drag and drop; the network is slowed so the progress bar is seen moving.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
    const size = 3 * 1024 * 1024;
    // Runs in the page: the browser's own DataTransfer and File, as a real drop carries.
    const dropped = await page.evaluateHandle((bytes) => {
      const web = globalThis as unknown as { DataTransfer: new () => { items: { add(file: unknown): void } }; File: new (parts: unknown[], name: string, options: unknown) => unknown };
      const transfer = new web.DataTransfer();
      const data = new Uint8Array(bytes);
      for (let i = 0; i < data.length; i += 4096) data[i] = i % 251;
      transfer.items.add(new web.File([data], 'firmware 2.bin', { type: 'application/octet-stream' }));
      return transfer;
    }, size);
    const zone = page.locator('.dropzone');
    await zone.dispatchEvent('dragover', { dataTransfer: dropped });
    await zone.dispatchEvent('drop', { dataTransfer: dropped });
    const progress = page.getByRole('progressbar', { name: 'Upload of firmware-2.bin' });
    await progress.waitFor();
    // Seen part-way: more than nothing, less than all.
    let partway = false;
    for (let i = 0; i < 100 && !partway; i++) {
      const value = Number(await progress.getAttribute('value'));
      partway = value > 0 && value < size;
      if (!partway) await page.waitForTimeout(50);
    }
    t.true(partway, 'the progress bar showed a partial upload');
    await fx.screenshot(page, 'rm-03-uploading');
    await page.getByText('Uploaded', { exact: true }).waitFor({ timeout: 30_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.getByRole('cell', { name: 'firmware-2.bin', exact: true }).waitFor();
    t.is(await page.locator('table tbody tr').count(), 3, 'the two copied artifacts and the upload');
    await fx.screenshot(page, 'rm-04-draft-with-upload');
    await expectAccessible(t, fx, page, 'the draft');
    // The server holds what was dropped.
    const stored = await api(server, 'GET', '/api/v1/bundles/pos-app/versions/1.1.0/artifacts/firmware-2.bin');
    t.is(stored.size, size);
    // Replace one artifact with new bytes: same name, same type.
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Replace config.json' }).click();
    await (await chooser).setFiles({ name: 'config-new.json', mimeType: 'application/json', buffer: Buffer.from('{"currency":"EUR","tax":true}\n') });
    await page.getByText('config.json replaced.').waitFor();
    const replaced = await api(server, 'GET', '/api/v1/bundles/pos-app/versions/1.1.0/artifacts/config.json');
    t.is(replaced.size, Buffer.byteLength('{"currency":"EUR","tax":true}\n'));
    t.is(replaced.type, 'file');

    // A reporter sees the draft but is not offered the approve button.
    const reporterPage = await fx.newPage();
    await signIn(reporterPage, server.url, 'rita', rita, '/bundles/pos-app/versions/1.1.0');
    await reporterPage.getByRole('heading', { name: 'Approval' }).waitFor();
    t.is(await reporterPage.getByRole('button', { name: /Approve/ }).count(), 0, 'no approve button for a reporter');
    t.is(await reporterPage.getByText('Drop files here').count(), 0, 'no upload for a reporter');
    t.is(await reporterPage.getByRole('button', { name: /Remove/ }).count(), 0, 'no remove for a reporter');
    await reporterPage.getByText('Approving needs the Maintainer role').waitFor();
    // A reporter may download what is in the draft.
    const downloading = reporterPage.waitForEvent('download');
    await reporterPage.getByRole('button', { name: 'Download config.json' }).click();
    const downloaded = await downloading;
    t.is(downloaded.suggestedFilename(), 'config.json');
    t.is((await fs.readFile(await downloaded.path())).toString(), '{"currency":"EUR","tax":true}\n');
    await fx.screenshot(reporterPage, 'rm-05-reporter-view');
    await expectAccessible(t, fx, reporterPage, "the reporter's view");
    // And what the UI does not offer, the server refuses anyway: the message is clear.
    const refused = await server.api('POST', '/api/v1/bundles/pos-app/versions/1.1.0/approve', { token: rita });
    t.is(refused.status, 403);

    // The maintainer approves, through a confirmation that says what the approval covers.
    await page.getByRole('button', { name: 'Approve…' }).click();
    const confirm = page.getByRole('dialog', { name: 'Approve pos-app 1.1.0?' });
    await confirm.getByText('Your approval covers exactly these 3 artifacts').waitFor();
    await fx.screenshot(page, 'rm-06-approve-confirm');
    await expectAccessible(t, fx, page, 'the approval dialog');
    await confirm.getByRole('button', { name: 'Approve and sign' }).click();
    await page.getByText('pos-app 1.1.0 is approved and signed.').waitFor();
    await page.getByRole('heading', { level: 1 }).getByText('approved').waitFor();
    await page.getByRole('list', { name: 'Approved by' }).getByText('mara', { exact: true }).waitFor();
    // The signed manifest is checked against the TUF metadata devices will read.
    const verification = page.locator('.verification');
    await verification.getByText('signed', { exact: true }).waitFor();
    t.is(await verification.locator('.step-bad').count(), 0, await verification.innerText());
    t.is(await page.getByText('Drop files here').count(), 0, 'an approved version takes no uploads');
    await fx.screenshot(page, 'rm-07-approved-signed');
    await expectAccessible(t, fx, page, 'the approved version');

    // The diff between the two versions.
    await page.getByRole('link', { name: 'Compare…' }).click();
    await page.getByRole('heading', { name: 'Compare versions' }).waitFor();
    await page.getByRole('heading', { level: 2, name: '1.0.0 → 1.1.0' }).waitFor();
    await page.getByText('1 added').waitFor();
    await page.getByText('1 changed').waitFor();
    t.is(await page.locator('.diff-added').count(), 1);
    t.is(await page.locator('.diff-added').getByText('firmware-2.bin').count(), 1);
    t.is(await page.locator('.diff-changed').getByText('config.json').count(), 1);
    t.is(await page.locator('.diff-removed').count(), 0);
    await fx.screenshot(page, 'rm-08-diff');
    await expectAccessible(t, fx, page, 'the diff');

    // Deep link: a reload lands on the same screen, still signed in (the tab's session).
    await page.reload();
    await page.getByRole('heading', { level: 2, name: '1.0.0 → 1.1.0' }).waitFor();
    t.deepEqual(fx.pageErrors, [], 'the pages logged no errors (CSP refusals included)');
  });
});
