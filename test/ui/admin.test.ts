import test from 'ava';
import type { Page } from 'playwright-core';
import { signIn, withBrowser } from '../helpers/browser.ts';
import { adminToken, pushArtifact } from '../helpers/server.ts';

/*
 * An administrator's screens in headless Chromium against a real server: users, tokens (the
 * secret shown once, then revoked), members, the audit log with a filter, signing keys, devices
 * and deployments; and what someone without the rights sees when they follow a link there.
 */

async function noViolations(t: any, fx: { accessibility(page: Page): Promise<string[]> }, page: Page, screen: string) {
  t.deepEqual(await fx.accessibility(page), [], `accessibility of ${screen}`);
}

test('administrator: users, tokens shown once and revoked, members, audit filter, keys, devices, deployments', async (t) => {
  await withBrowser(t, async (fx) => {
    const { server } = fx;
    await server.api('POST', '/api/v1/bundles', { json: { name: 'kiosk' } });
    await pushArtifact(server, 'kiosk', '2.0.0', 'kiosk.bin', Buffer.from('kiosk build 2\n'));
    await server.api('POST', '/api/v1/bundles/kiosk/versions/2.0.0/approve');
    const page = await fx.newPage();
    await signIn(page, server.url, 'admin', adminToken);
    // Everything is offered to an admin.
    for (const entry of ['Bundles', 'Deployments', 'Devices', 'Signing keys', 'Audit log', 'Users', 'Access tokens']) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: entry }).waitFor();
    }

    // A new user.
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByRole('button', { name: 'New user' }).click();
    const userDialog = page.getByRole('dialog', { name: 'New user' });
    await userDialog.getByLabel('User name').fill('dora');
    await userDialog.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('cell', { name: 'dora', exact: true }).waitFor();
    await fx.screenshot(page, 'admin-01-users');
    await noViolations(t, fx, page, 'users');

    // A token for dora: the secret is shown once, works, and is gone after a reload.
    await page.getByRole('row', { name: /dora/ }).getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'Access tokens of dora' }).waitFor();
    await page.getByRole('button', { name: 'New token' }).click();
    const tokenDialog = page.getByRole('dialog', { name: 'New token for dora' });
    await tokenDialog.getByLabel('Name').fill('dora laptop');
    await tokenDialog.getByLabel('write').check();
    await tokenDialog.getByRole('button', { name: 'Create token' }).click();
    const secret = await page.getByLabel('The new token').inputValue();
    t.true(secret.length > 20);
    const who = await server.api('GET', '/api/v1/user', { token: secret });
    t.is(who.body.name, 'dora');
    t.deepEqual(who.body.scopes.sort(), ['read', 'write']);
    await fx.screenshot(page, 'admin-02-token-created');
    await noViolations(t, fx, page, 'tokens');
    await page.reload();
    await page.getByRole('cell', { name: 'dora laptop', exact: true }).waitFor();
    t.is(await page.getByLabel('The new token').count(), 0, 'the secret is shown only once');
    await page.getByRole('button', { name: 'Revoke dora laptop' }).click();
    await page.getByRole('dialog', { name: /Revoke/ }).getByRole('button', { name: 'Revoke token' }).click();
    await page.getByRole('row', { name: /dora laptop/ }).getByText('revoked').waitFor();
    t.is((await server.api('GET', '/api/v1/user', { token: secret })).status, 401, 'the revoked token no longer works');

    // dora becomes a developer of kiosk.
    await page.goto(`${server.url}/bundles/kiosk`);
    await page.getByRole('button', { name: 'Add member' }).click();
    const memberDialog = page.getByRole('dialog', { name: /Add a member/ });
    await memberDialog.getByLabel('User name').fill('dora');
    await memberDialog.getByLabel('Role').selectOption('developer');
    await memberDialog.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('row', { name: /dora/ }).getByText('developer').waitFor();
    await fx.screenshot(page, 'admin-03-members');

    // The audit log, filtered to what was done to tokens.
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('cell', { name: 'member:write', exact: true }).first().waitFor();
    await page.getByLabel('Action').fill('token:write');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/action=token%3Awrite/);
    await page.getByRole('cell', { name: /DELETE \/api\/v1\/tokens/ }).waitFor();
    t.is(await page.getByRole('cell', { name: 'member:write', exact: true }).count(), 0, 'the filter applies');
    // A day range: today holds these events, yesterday none.
    const today = new Date().toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel('From (UTC)').fill(yesterday);
    await page.getByLabel('To (UTC)').fill(yesterday);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No events match these filters').waitFor();
    await page.getByLabel('To (UTC)').fill(today);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('cell', { name: /DELETE \/api\/v1\/tokens/ }).waitFor();
    await fx.screenshot(page, 'admin-04-audit');
    await noViolations(t, fx, page, 'the audit log');

    // Signing keys.
    await page.getByRole('link', { name: 'Signing keys' }).click();
    await page.getByRole('cell', { name: 'timestamp', exact: true }).waitFor();
    await fx.screenshot(page, 'admin-05-keys');
    await noViolations(t, fx, page, 'signing keys');

    // Register a device, deploy to its group.
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.getByText('No devices yet').waitFor();
    await page.getByRole('button', { name: 'Register device' }).click();
    const deviceDialog = page.getByRole('dialog', { name: 'Register a device' });
    await deviceDialog.getByLabel('Device id').fill('till-7');
    await deviceDialog.getByLabel('Group').fill('shop-north');
    await deviceDialog.getByRole('button', { name: 'Register' }).click();
    await page.getByRole('cell', { name: 'till-7', exact: true }).waitFor();
    t.true((await page.getByLabel('Device token').inputValue()).length > 20);
    await noViolations(t, fx, page, 'devices');
    await page.getByRole('link', { name: 'Deployments' }).click();
    await page.getByRole('button', { name: 'New deployment' }).click();
    const deployDialog = page.getByRole('dialog', { name: 'New deployment' });
    await deployDialog.getByLabel('Bundle', { exact: true }).fill('kiosk');
    await deployDialog.getByLabel('Approved version', { exact: true }).selectOption('2.0.0');
    await deployDialog.getByLabel('Device group', { exact: true }).selectOption('shop-north');
    await deployDialog.getByRole('button', { name: 'Start deployment' }).click();
    await page.waitForURL(/\/deployments\/\d+$/);
    await page.getByRole('heading', { level: 1, name: /Deployment \d+/ }).waitFor();
    await page.getByRole('link', { name: 'kiosk 2.0.0' }).waitFor();
    await fx.screenshot(page, 'admin-06-deployments');
    await noViolations(t, fx, page, 'deployments');

    // dora, a developer, follows a link to the audit log: a clear refusal, not a blank page.
    const doraToken = (await server.api('POST', '/api/v1/tokens', { json: { name: 'dora ui', scopes: ['read', 'write'], user: 'dora' } })).body.token;
    const doraPage = await fx.newPage();
    await signIn(doraPage, server.url, 'dora', doraToken, '/audit');
    t.is(await doraPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).count(), 0, 'not offered');
    const alert = doraPage.getByRole('alert');
    await alert.getByText('You do not have access to the audit log').waitFor();
    t.regex(await alert.innerText(), /audit:read/);
    await fx.screenshot(doraPage, 'admin-07-forbidden');
    await noViolations(t, fx, doraPage, 'the refusal');
    t.deepEqual(fx.pageErrors, []);
  });
});

test('sign-in refuses a wrong token and a token of someone else, and says which', async (t) => {
  await withBrowser(t, async (fx) => {
    const page = await fx.newPage();
    await page.goto(fx.server.url + '/bundles');
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Access token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('not valid').waitFor();
    await page.getByLabel('User name').fill('someone');
    await page.getByLabel('Access token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('belongs to another user').waitFor();
    await fx.screenshot(page, 'signin-refused');
    await noViolations(t, fx, page, 'sign-in');
    // By keyboard alone: the name field has focus, Tab moves on, Enter signs in.
    await page.reload();
    // The name field takes focus by itself once the form is there.
    await page.waitForFunction(() => (globalThis as any).document.activeElement?.id === 'signin-user');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(adminToken);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // On a fresh load, the first Tab reaches the skip link, visibly focused.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Bundles' }).waitFor();
    await page.keyboard.press('Tab');
    const skip = page.getByRole('link', { name: 'Skip to content' });
    t.true(await skip.evaluate((el) => el === (globalThis as any).document.activeElement));
    t.not(await skip.evaluate((el) => (globalThis as any).getComputedStyle(el).outlineStyle), 'none', 'focus is visible');
    await fx.screenshot(page, 'keyboard-skip-link');
    // The token is kept for the tab only: sessionStorage, never localStorage.
    t.is(await page.evaluate(() => (globalThis as any).localStorage.length), 0);
    t.true((await page.evaluate(() => (globalThis as any).sessionStorage.getItem('convoy.session'))).includes(adminToken));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    t.is(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('convoy.session')), null);
    // A fresh tab (context) starts signed out.
    const other = await fx.newPage();
    await other.goto(fx.server.url + '/bundles');
    await other.getByRole('button', { name: 'Sign in' }).waitFor();
    t.pass();
  });
});
