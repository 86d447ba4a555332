import test from 'ava';
import { startFleet } from '../../scripts/fleet-sim.ts';
import { signIn, withBrowser } from '../helpers/browser.ts';
import { adminToken, pushArtifact, waitFor } from '../helpers/server.ts';

/*
 * An operator's flow in headless Chromium against a real server and simulated devices that speak
 * the real protocol (scripts/fleet-sim.ts): build a dynamic group with the filter editor and its
 * preview, hand it to an operator, deploy in phases, watch progress move without reloading, pause
 * and resume until every device runs the release.
 */

test('operator: dynamic group with preview, phased deployment, live progress, pause, resume', async (t) => {
  await withBrowser(t, async (fx) => {
    const { server } = fx;
    const api = async (method: string, path: string, json?: unknown) => {
      const res = await server.api(method, path, json === undefined ? {} : { json });
      if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
      return res.body;
    };
    await api('POST', '/api/v1/bundles', { name: 'pos' });
    await pushArtifact(server, 'pos', '1.0.0', 'app.txt', Buffer.from('pos 1.0.0\n'));
    await api('POST', '/api/v1/bundles/pos/versions/1.0.0/approve');
    await api('POST', '/api/v1/users', { name: 'otto' });
    await api('POST', '/api/v1/bundles/pos/members', { user: 'otto', role: 'reporter' });
    const otto = (await api('POST', '/api/v1/tokens', { name: 'otto ui', scopes: ['read', 'write', 'deploy'], user: 'otto' })).token as string;

    const eu = Array.from({ length: 6 }, (_, i) => ({ id: `till-eu-${i + 1}`, group: 'shops', attributes: { model: 'pos-x2', region: 'eu-west' } }));
    const others = [
      { id: 'till-us-1', group: 'shops', attributes: { model: 'pos-x2', region: 'us-east' } },
      { id: 'till-eu-old', group: 'shops', attributes: { model: 'pos-x1', region: 'eu-west' } },
    ];
    const fleet = await startFleet({ url: server.url, adminToken, devices: [...eu, ...others], installMs: 300 });
    try {
      await waitFor('the fleet to report its inventory', async () => ((await api('POST', '/api/v1/groups/preview', { filter: 'model = "pos-x2" and region = "eu-west"' })).total === 6 ? true : undefined));

      // The administrator builds the dynamic group, watching the preview.
      const admin = await fx.newPage();
      await signIn(admin, server.url, 'admin', adminToken, '/groups');
      await admin.getByRole('button', { name: 'New group' }).click();
      const dialog = admin.getByRole('dialog', { name: 'New device group' });
      await dialog.getByLabel('Name').fill('eu-x2');
      await dialog.getByLabel('Filter over inventory').fill('model = "pos-x2" and region =');
      await dialog.getByText(/filter:/).waitFor(); // the parser says what is wrong while typing
      await dialog.getByLabel('Filter over inventory').fill('model = "pos-x2" and region = "eu-west"');
      await dialog.getByText('6 devices match now').waitFor();
      t.is(await dialog.getByRole('list', { name: 'Matching devices' }).getByRole('listitem').count(), 6);
      await fx.screenshot(admin, 'op-01-dynamic-group-preview');
      t.deepEqual(await fx.accessibility(admin), [], 'accessibility of the filter editor');
      await dialog.getByRole('button', { name: 'Create group' }).click();
      await admin.waitForURL(`${server.url}/groups/eu-x2`);
      await admin.getByRole('heading', { name: 'Devices in eu-x2' }).waitFor();
      await admin.getByRole('link', { name: 'till-eu-6' }).waitFor();
      t.is(await admin.getByRole('link', { name: /^till-eu-\d$/ }).count(), 6);
      // The operator gets the group.
      await admin.getByRole('button', { name: 'Add member' }).click();
      const add = admin.getByRole('dialog', { name: 'Add a member to the group' });
      await add.getByLabel('User name').fill('otto');
      await add.getByLabel('Role').selectOption('maintainer');
      await add.getByRole('button', { name: 'Save' }).click();
      await admin.getByText('otto is now maintainer of eu-x2.').waitFor();
      await fx.screenshot(admin, 'op-02-group');

      // The operator deploys in three phases with a soak between them.
      const page = await fx.newPage();
      await signIn(page, server.url, 'otto', otto, '/deployments');
      await page.getByRole('button', { name: 'New deployment' }).click();
      const deploy = page.getByRole('dialog', { name: 'New deployment' });
      await deploy.getByLabel('Bundle', { exact: true }).selectOption('pos');
      await deploy.getByLabel('Approved version', { exact: true }).selectOption('1.0.0');
      await deploy.getByLabel('Device group', { exact: true }).selectOption('eu-x2');
      await deploy.getByLabel('Phases', { exact: true }).fill('1dev,50,100');
      await deploy.getByLabel('Soak per phase', { exact: true }).fill('4s');
      await deploy.getByLabel('Pause after failures', { exact: true }).fill('1');
      await deploy.getByText('Phases: 1 device → 50 % → 100 %, each soaking 4s, pausing when 1 fail.').waitFor();
      await fx.screenshot(page, 'op-03-new-deployment');
      t.deepEqual(await fx.accessibility(page), [], 'accessibility of the deployment form');
      await deploy.getByRole('button', { name: 'Start deployment' }).click();
      await page.waitForURL(/\/deployments\/\d+$/);
      const id = Number(page.url().split('/').pop());
      await page.getByText('Live', { exact: true }).waitFor();

      // Progress moves on the page by itself (no reload, no navigation).
      let navigations = 0;
      page.on('framenavigated', () => navigations++);
      const overall = page.locator('#progress-heading + .statebar-wrap .statebar-label');
      await waitFor('the first phase to install', async () => ((await overall.innerText()) === '1 of 6 installed' ? true : undefined), 30_000);
      await fx.screenshot(page, 'op-04-first-phase');
      // Pause while the first phase soaks: the second is not released.
      await page.getByRole('button', { name: 'Pause' }).click();
      await page.getByRole('heading', { level: 1 }).getByText('paused').waitFor();
      t.is((await api('GET', `/api/v1/deployments/${id}`)).state, 'paused');
      await page.waitForTimeout(5000); // longer than the soak: a paused deployment releases nothing
      t.is((await api('GET', `/api/v1/deployments/${id}`)).phase, 0, 'still in the first phase');
      t.is(await overall.innerText(), '1 of 6 installed');
      await fx.screenshot(page, 'op-05-paused');
      t.deepEqual(await fx.accessibility(page), [], 'accessibility of the deployment page');

      // Resume: the next phases go out, the page follows to the end.
      await page.getByRole('button', { name: 'Resume' }).click();
      await page.getByRole('heading', { level: 1 }).getByText('running').waitFor();
      await waitFor('a later phase to install', async () => (Number((await overall.innerText()).split(' ')[0]) > 1 ? true : undefined), 30_000);
      await page.getByRole('heading', { level: 1 }).getByText('completed').waitFor({ timeout: 60_000 });
      await waitFor('every device installed on the page', async () => ((await overall.innerText()) === '6 of 6 installed' ? true : undefined), 30_000);
      t.is(navigations, 0, 'the page updated itself');
      t.true(eu.every((d) => fleet.byId(d.id).installed?.version === '1.0.0'));
      t.true(others.every((d) => fleet.byId(d.id).installed === null), 'devices outside the filter were not touched');
      await fx.screenshot(page, 'op-06-completed');

      // The deployment list and a device's history tell the same story.
      await page.getByRole('link', { name: 'Deployments' }).first().click();
      await page.getByRole('link', { name: `Deployment ${id}` }).waitFor();
      await fx.screenshot(page, 'op-07-deployments');
      t.deepEqual(fx.pageErrors, []);
    } finally {
      await fleet.close();
    }
  });
});
