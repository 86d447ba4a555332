import test from 'ava';
import { signIn, withBrowser } from '../helpers/browser.ts';
import { adminToken, pushArtifact } from '../helpers/server.ts';

/*
 * The rest of a version's life in the browser: edit an artifact's metadata, allow a rollback
 * (signed into the targets devices read), revoke with a reason; and the key ceremony's buttons.
 */

test('edit an artifact, allow a rollback, revoke with a reason, generate an online key', async (t) => {
  await withBrowser(t, async (fx) => {
    const { server } = fx;
    await server.api('POST', '/api/v1/bundles', { json: { name: 'kiosk' } });
    await pushArtifact(server, 'kiosk', '1.0.0', 'run.sh', Buffer.from('#!/bin/sh\necho 1\n'));
    await server.api('POST', '/api/v1/bundles/kiosk/versions/1.0.0/approve');
    await pushArtifact(server, 'kiosk', '1.1.0', 'run.sh', Buffer.from('#!/bin/sh\necho 2\n'));
    const page = await fx.newPage();
    await signIn(page, server.url, 'admin', adminToken, '/bundles/kiosk/versions/1.1.0');

    // The draft's artifact becomes a script.
    await page.getByRole('button', { name: 'Edit run.sh' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit run.sh' });
    await edit.getByLabel('Type').selectOption('script');
    await edit.getByRole('button', { name: 'Save' }).click();
    await page.getByText('run.sh was updated.').waitFor();
    await page.getByRole('row', { name: /run\.sh/ }).getByText('script', { exact: true }).waitFor();
    t.is((await server.api('GET', '/api/v1/bundles/kiosk/versions/1.1.0/artifacts/run.sh')).body.type, 'script');

    // 1.0.0: allow devices to roll back to it; the signed targets say so.
    await page.goto(`${server.url}/bundles/kiosk/versions/1.0.0`);
    await page.getByText('Devices may roll back to this version:').waitFor();
    await page.getByRole('button', { name: 'Allow rollback…' }).click();
    await page.getByRole('dialog', { name: 'Allow rollbacks to 1.0.0?' }).getByRole('button', { name: 'Allow rollback' }).click();
    await page.getByRole('button', { name: 'Stop allowing…' }).waitFor();
    t.regex(await page.locator('.rollback').innerText(), /yes/);

    // Revoke it, with a reason everyone sees.
    await page.getByRole('button', { name: 'Revoke…' }).click();
    const revoke = page.getByRole('dialog', { name: 'Revoke kiosk 1.0.0?' });
    t.true(await revoke.getByRole('button', { name: 'Revoke version' }).isDisabled(), 'a reason is required');
    await revoke.getByLabel(/Reason/).fill('crashes on the old card readers');
    t.deepEqual(await fx.accessibility(page), [], 'accessibility of the revoke dialog');
    await fx.screenshot(page, 'version-01-revoke');
    await revoke.getByRole('button', { name: 'Revoke version' }).click();
    await page.getByRole('heading', { level: 1 }).getByText('revoked').waitFor();
    await page.locator('.notice-error').getByText('crashes on the old card readers').waitFor();
    await fx.screenshot(page, 'version-02-revoked');
    t.is((await server.api('GET', '/api/v1/bundles/kiosk/versions/1.0.0')).body.status, 'revoked');

    // The key ceremony: a new online key.
    await page.getByRole('link', { name: 'Signing keys' }).click();
    await page.getByLabel('Role').selectOption('snapshot');
    await page.getByRole('button', { name: 'Generate online key' }).click();
    await page.getByText(/New snapshot key [0-9a-f]{12}/).waitFor();
    await fx.screenshot(page, 'version-03-keys');
    t.deepEqual(await fx.accessibility(page), [], 'accessibility of the keys page');
    t.deepEqual(fx.pageErrors, []);
  });
});
