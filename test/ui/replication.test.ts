import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createDeviceCsr, generateKeyPem } from '../../certs/pki.ts';
import type { Page } from 'playwright-core';
import { skopeo, writeLayout } from '../oci/layout.ts';
import { signIn, withBrowser, type BrowserFixture } from '../helpers/browser.ts';
import { startRegistry } from '../helpers/registry.ts';
import { adminToken, makeTempDir, pushArtifact } from '../helpers/server.ts';

/*
 * Replication and identity in headless Chromium against a real server and a real OCI registry
 * (Debian's docker-registry with htpasswd): an administrator adds an edge (its token shown once)
 * and registry endpoints (the password never shown again); a maintainer of the bundle creates a
 * policy, runs it, watches the run's tasks, sees a refused push's error and retries it; a reporter
 * is offered none of it; an administrator makes an enrollment token, sees a device that enrolled
 * with it and its certificate, revokes the token (the next device is refused) and revokes a device.
 */

async function noViolations(t: any, fx: BrowserFixture, page: Page, screen: string) {
  t.deepEqual(await fx.accessibility(page), [], `accessibility of ${screen}`);
}

test('replication: edges, registry endpoints, a policy run with its tasks, a refused push retried; identity: enrollment token, device revoke', async (t) => {
  const registry = await startRegistry();
  const work = await makeTempDir('convoy-ui-replication-');
  try {
    await withBrowser(
      t,
      async (fx) => {
        const { server } = fx;
        const api = async (method: string, url: string, json?: unknown, token?: string) => {
          const res = await server.api(method, url, { ...(json === undefined ? {} : { json }), ...(token ? { token } : {}) });
          if (res.status >= 300) throw new Error(`${method} ${url} answered ${res.status}: ${res.raw}`);
          return res.body;
        };
        // A bundle whose approved version holds an image (what a registry endpoint receives).
        await api('POST', '/api/v1/bundles', { name: 'shop' });
        const image = await writeLayout(path.join(work, 'image'), 'build', [48 * 1024]);
        await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://127.0.0.1:${server.httpPort}/shop/till:1.0.0`]);
        await pushArtifact(server, 'shop', '1.0.0', 'settings.json', Buffer.from('{"till":true}\n'));
        await api('POST', '/api/v1/bundles/shop/versions/1.0.0/approve');
        for (const [user, role] of [
          ['mara', 'maintainer'],
          ['rita', 'reporter'],
        ] as const) {
          await api('POST', '/api/v1/users', { name: user });
          await api('POST', '/api/v1/bundles/shop/members', { user, role });
        }
        const maraToken = (await api('POST', '/api/v1/tokens', { name: 'mara ui', scopes: ['read', 'write', 'deploy'], user: 'mara' })).token as string;
        const ritaToken = (await api('POST', '/api/v1/tokens', { name: 'rita ui', scopes: ['read'], user: 'rita' })).token as string;

        // --- The administrator: an edge, its token shown once.
        const admin = await fx.newPage();
        await signIn(admin, server.url, 'admin', adminToken);
        t.is(await admin.locator('.user-role').innerText(), 'Administrator');
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Edges' }).click();
        await admin.getByText('No edges yet').waitFor();
        // The screen's code loads on first use; focus still lands on its heading.
        await admin.waitForFunction(() => (globalThis as any).document.activeElement?.textContent === 'Edges' && (globalThis as any).document.activeElement?.tagName === 'H1');
        await admin.getByRole('button', { name: 'Add edge' }).click();
        const edgeDialog = admin.getByRole('dialog', { name: 'Add an edge' });
        await edgeDialog.getByLabel('Name', { exact: true }).fill('shop-eu');
        await edgeDialog.getByLabel('Description (optional)').fill('Edge in the Frankfurt shop');
        await edgeDialog.getByRole('button', { name: 'Add edge' }).click();
        const edgeToken = await admin.getByLabel('Edge token').inputValue();
        t.true(edgeToken.length > 20);
        await admin.getByRole('row', { name: /shop-eu/ }).getByText('never connected').waitFor();
        await fx.screenshot(admin, 'repl-01-edge-added');
        await noViolations(t, fx, admin, 'edges');
        await admin.reload();
        await admin.getByRole('cell', { name: 'shop-eu', exact: true }).waitFor();
        t.is(await admin.getByLabel('Edge token').count(), 0, 'the edge token is shown only once');

        // Push mode needs the edge's URL; an edge added without one gives its token once more, which
        // the server keeps sealed (the token is never shown back), then the URL is taken away again.
        await admin.getByRole('button', { name: 'Change the URL of edge shop-eu' }).click();
        const urlDialog = admin.getByRole('dialog', { name: /URL of edge/ });
        await urlDialog.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9');
        await urlDialog.getByLabel("The edge's token").fill(edgeToken);
        await noViolations(t, fx, admin, 'edge URL dialog');
        await urlDialog.getByRole('button', { name: 'Save URL' }).click();
        await admin.getByText('Edge shop-eu can now be pushed to at http://127.0.0.1:9.').waitFor();
        await admin.getByRole('row', { name: /shop-eu/ }).getByText('http://127.0.0.1:9').waitFor();
        t.false((await admin.content()).includes(edgeToken), 'the sealed token never comes back');
        await admin.getByRole('button', { name: 'Change the URL of edge shop-eu' }).click();
        await admin.getByRole('dialog', { name: /URL of edge/ }).getByLabel('URL', { exact: true }).fill('');
        await admin.getByRole('dialog', { name: /URL of edge/ }).getByRole('button', { name: 'Remove URL' }).click();
        await admin.getByRole('row', { name: /shop-eu/ }).getByText('— (pulls)').waitFor();

        // Registry endpoints: the real one, and one with a wrong password (its pushes are refused).
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Registries' }).click();
        await admin.getByText('No registry endpoints yet').waitFor();
        for (const [name, password] of [
          ['site', registry.password],
          ['site-wrong', 'not-the-password'],
        ] as const) {
          await admin.getByRole('button', { name: 'Add registry endpoint' }).click();
          const dialog = admin.getByRole('dialog', { name: 'Add a registry endpoint' });
          await dialog.getByLabel('Name', { exact: true }).fill(name);
          await dialog.getByLabel('URL', { exact: true }).fill(registry.url);
          await dialog.getByLabel('User name (optional)').fill(registry.username);
          t.is(await dialog.getByLabel('Password (optional)').getAttribute('type'), 'password');
          await dialog.getByLabel('Password (optional)').fill(password);
          if (name === 'site') await fx.screenshot(admin, 'repl-02-registry-dialog');
          await dialog.getByRole('button', { name: 'Add endpoint' }).click();
          await admin.getByRole('row', { name: new RegExp(`^${name} `) }).getByText('set').waitFor();
        }
        // The form forgets the password, and no answer the page holds repeats it.
        await admin.getByRole('button', { name: 'Add registry endpoint' }).click();
        t.is(await admin.getByRole('dialog', { name: 'Add a registry endpoint' }).getByLabel('Password (optional)').inputValue(), '');
        await admin.getByRole('dialog', { name: 'Add a registry endpoint' }).getByRole('button', { name: 'Cancel' }).click();
        t.false((await admin.content()).includes(registry.password), 'the password is not on the page');
        await fx.screenshot(admin, 'repl-03-registries');
        await noViolations(t, fx, admin, 'registry endpoints');

        // --- The maintainer: a policy to the registry endpoint, run by hand.
        const mara = await fx.newPage();
        await signIn(mara, server.url, 'mara', maraToken, '/bundles/shop');
        t.is(await mara.locator('.user-role').innerText(), 'maintainer of shop');
        await mara.getByRole('link', { name: 'Replication', exact: true }).click();
        await mara.getByText('No replication policies yet').waitFor();
        await mara.getByRole('button', { name: 'New policy' }).click();
        const policyDialog = mara.getByRole('dialog', { name: 'New replication policy' });
        await policyDialog.getByLabel('Name', { exact: true }).fill('to-site');
        await policyDialog.getByLabel(/^site \(registry\)/).check();
        await policyDialog.getByLabel('Versions (optional)').fill('>=1.0.0');
        await policyDialog.getByLabel('image', { exact: true }).check();
        await policyDialog.getByLabel('Bandwidth limit (KiB/s, optional)').fill('4096');
        await fx.screenshot(mara, 'repl-04-policy-dialog');
        await noViolations(t, fx, mara, 'the policy dialog');
        await policyDialog.getByRole('button', { name: 'Create policy' }).click();
        const policyRow = mara.getByRole('row', { name: /^to-site / });
        await policyRow.getByText('enabled').waitFor();
        t.regex(await policyRow.innerText(), /by hand/);
        t.regex(await policyRow.innerText(), /4\.0 MiB\/s/);
        await mara.getByRole('button', { name: 'Run now to-site' }).click();
        const runDialog = mara.getByRole('dialog', { name: 'Run to-site now' });
        await runDialog.getByLabel('Version').selectOption('1.0.0');
        await noViolations(t, fx, mara, 'the run dialog');
        await runDialog.getByRole('button', { name: 'Start run' }).click();
        await mara.waitForURL(/\/bundles\/shop\/replication\/runs\/\d+$/);
        // The page refreshes itself until the run is done.
        await mara.getByRole('heading', { level: 1 }).getByText('succeeded').waitFor();
        const taskRows = mara.getByRole('table').filter({ has: mara.getByRole('columnheader', { name: 'Attempts' }) }).getByRole('row');
        t.is(await taskRows.count(), 1 + 3, 'a config blob, a layer blob and the manifest');
        t.regex(await taskRows.nth(3).innerText(), /manifest.*shop\/till:1\.0\.0.*succeeded/s);
        await fx.screenshot(mara, 'repl-05-run-succeeded');
        await noViolations(t, fx, mara, 'a run');
        // What the site's users see: the image under the version's tag.
        const inspected = JSON.parse((await skopeo(['inspect', '--tls-verify=false', '--creds', `${registry.username}:${registry.password}`, `docker://${registry.host}/shop/till:1.0.0`])).stdout);
        t.is(inspected.Digest, image.manifestDigest);

        // Pointed at the endpoint with the wrong password: the refusal is shown on the task; retry.
        await mara.getByRole('link', { name: 'Replication' }).click();
        await mara.getByRole('button', { name: 'Edit to-site' }).click();
        const editDialog = mara.getByRole('dialog', { name: 'Edit policy to-site' });
        t.true(await editDialog.getByLabel('image', { exact: true }).isChecked(), 'the form holds the policy as it is');
        await editDialog.getByLabel(/^site \(registry\)/).uncheck();
        await editDialog.getByLabel(/^site-wrong \(registry\)/).check();
        await editDialog.getByRole('button', { name: 'Save policy' }).click();
        await mara.getByRole('row', { name: /^to-site / }).getByRole('link', { name: 'site-wrong' }).waitFor();
        await mara.getByRole('button', { name: 'Run now to-site' }).click();
        await mara.getByRole('dialog', { name: 'Run to-site now' }).getByRole('button', { name: 'Start run' }).click();
        await mara.getByRole('heading', { level: 1 }).getByText('failed').waitFor();
        const failedRow = mara.getByRole('row').filter({ hasText: 'failed' }).first();
        t.regex(await failedRow.innerText(), /401|unauthori[sz]ed/i, "the registry's reason is on the task");
        await fx.screenshot(mara, 'repl-06-run-failed');
        await mara.getByRole('button', { name: 'Retry failed tasks' }).click();
        await mara.getByRole('heading', { level: 1 }).getByText('failed').waitFor();
        await mara.getByRole('row').filter({ hasText: 'failed' }).first().getByRole('cell', { name: '2', exact: true }).waitFor();
        // A deep link reloads to the same screen.
        await mara.reload();
        await mara.getByRole('heading', { level: 1, name: /Run \d+/ }).waitFor();
        await mara.getByRole('link', { name: 'Replication' }).click();
        await mara.getByRole('link', { name: /^Run \d+$/ }).nth(1).waitFor();
        t.is(await mara.getByRole('link', { name: /^Run \d+$/ }).count(), 2, 'both runs in the history');
        await mara.getByRole('button', { name: 'Disable to-site' }).click();
        await mara.getByRole('row', { name: /^to-site / }).getByText('disabled').waitFor();
        await fx.screenshot(mara, 'repl-07-policies-and-runs');
        await noViolations(t, fx, mara, 'replication');
        // A run to the edge waits for it (edge mode is not there to pull): the page says it is
        // live, and the run is cancelled from it; then the policy is deleted.
        await mara.getByRole('button', { name: 'New policy' }).click();
        const edgePolicy = mara.getByRole('dialog', { name: 'New replication policy' });
        await edgePolicy.getByLabel('Name', { exact: true }).fill('to-edge');
        await edgePolicy.getByLabel(/^shop-eu \(edge\)/).check();
        await edgePolicy.getByRole('button', { name: 'Create policy' }).click();
        await mara.getByRole('button', { name: 'Run now to-edge' }).click();
        await mara.getByRole('dialog', { name: 'Run to-edge now' }).getByRole('button', { name: 'Start run' }).click();
        await mara.getByText('Running: this page refreshes by itself.').waitFor();
        await mara.getByRole('row').filter({ hasText: 'timestamp.json' }).getByText('pending').waitFor();
        await fx.screenshot(mara, 'repl-07b-run-running');
        await mara.getByRole('button', { name: 'Cancel run…' }).click();
        await mara.getByRole('dialog', { name: /Cancel run/ }).getByRole('button', { name: 'Cancel run' }).click();
        await mara.getByRole('heading', { level: 1 }).getByText('cancelled').waitFor();
        t.is(await mara.getByText('Running: this page refreshes by itself.').count(), 0);
        await mara.getByRole('link', { name: 'Replication' }).click();
        await mara.getByRole('button', { name: 'Delete to-edge' }).click();
        await mara.getByRole('dialog', { name: /Delete policy/ }).getByRole('button', { name: 'Delete policy' }).click();
        await mara.getByText('Policy to-edge deleted; its run history stays.').waitFor();
        await mara.getByRole('row', { name: /^to-edge / }).waitFor({ state: 'detached' });
        await mara.getByRole('link', { name: 'Run 3' }).waitFor();
        // Not an admin: edges are shown, adding one is not offered.
        await mara.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Edges' }).click();
        await mara.getByRole('cell', { name: 'shop-eu', exact: true }).waitFor();
        t.is(await mara.getByRole('button', { name: 'Add edge' }).count(), 0);
        t.is(await mara.getByRole('button', { name: /Remove edge/ }).count(), 0);

        // A reporter sees the policies and runs, and is offered none of the actions.
        const rita = await fx.newPage();
        await signIn(rita, server.url, 'rita', ritaToken, '/bundles/shop/replication');
        await rita.getByRole('row', { name: /^to-site / }).waitFor();
        for (const name of ['New policy', 'Run now to-site', 'Edit to-site', 'Enable to-site', 'Delete to-site']) t.is(await rita.getByRole('button', { name }).count(), 0, `${name} is not offered to a reporter`);
        t.is(await rita.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Enrollment' }).count(), 0);
        // Following a link there anyway: what is needed is said, nothing is offered.
        await rita.goto(`${server.url}/enrollment`);
        await rita.getByText('Creating enrollment tokens needs an administrator').waitFor();
        t.is(await rita.getByRole('button', { name: 'New enrollment token' }).count(), 0);

        // --- Identity, as the administrator: an enrollment token for a group, and a device revoked.
        const till = await api('POST', '/api/v1/devices', { id: 'till-9', group: 'shop-north' });
        t.is((await server.api('GET', '/api/v1/devices/till-9/release', { token: till.token })).status < 300, true, 'the device token works before');
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Enrollment' }).click();
        await admin.getByRole('button', { name: 'New enrollment token' }).click();
        const enrollDialog = admin.getByRole('dialog', { name: 'New enrollment token' });
        await enrollDialog.getByLabel('Group', { exact: true }).fill('shop-north');
        await enrollDialog.getByLabel('Valid for').fill('2h');
        await enrollDialog.getByLabel('Uses', { exact: true }).fill('20');
        await noViolations(t, fx, admin, 'the enrollment dialog');
        await enrollDialog.getByRole('button', { name: 'Create token' }).click();
        const enrollment = await admin.getByLabel('The new enrollment token').inputValue();
        t.true(enrollment.length >= 16);
        await admin.getByRole('row', { name: /group shop-north/ }).getByRole('cell', { name: '20 of 20', exact: true }).waitFor();
        await fx.screenshot(admin, 'repl-08-enrollment-token');
        await noViolations(t, fx, admin, 'enrollment');

        // A device enrolls with it (its own key, a CSR): its page shows the certificate it got.
        const enrolled = await server.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollment, csr: createDeviceCsr({ deviceId: 'till-10', keyPem: generateKeyPem() }) } });
        t.is(enrolled.status, 201, enrolled.raw.toString());
        const certificate = new X509Certificate(enrolled.body.certificate);
        await admin.goto(`${server.url}/devices/till-10`);
        const certificates = admin.getByRole('table', { name: /Certificates issued to the device/ });
        await certificates.getByRole('cell', { name: certificate.fingerprint256 }).waitFor();
        await certificates.getByText('valid', { exact: true }).waitFor();
        await fx.screenshot(admin, 'repl-08b-device-certificate');
        await noViolations(t, fx, admin, 'a device with its certificate');

        // The token leaked: revoked from the live list, and the next device is told why.
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Enrollment' }).click();
        const tokenRow = admin.getByRole('row', { name: /group shop-north/ });
        await tokenRow.getByRole('cell', { name: '19 of 20', exact: true }).waitFor();
        await tokenRow.getByRole('button', { name: /^Revoke enrollment token / }).click();
        const revokeTokenDialog = admin.getByRole('dialog', { name: /^Revoke enrollment token / });
        await revokeTokenDialog.getByText('19 of 20 uses were left').waitFor();
        await noViolations(t, fx, admin, 'the revoke token dialog');
        await revokeTokenDialog.getByRole('button', { name: 'Revoke token' }).click();
        await admin.getByRole('status').filter({ hasText: 'is revoked: no device enrolls with it' }).waitFor();
        await admin.getByText('No live enrollment tokens').waitFor();
        await fx.screenshot(admin, 'repl-08c-enrollment-token-revoked');
        const refused = await server.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollment, csr: createDeviceCsr({ deviceId: 'till-11', keyPem: generateKeyPem() }) } });
        t.is(refused.status, 401);
        t.regex(refused.body.error.message, /enrollment token was revoked/);

        await admin.goto(`${server.url}/devices/till-9`);
        await admin.getByRole('button', { name: 'Revoke…' }).click();
        const revokeDialog = admin.getByRole('dialog', { name: 'Revoke till-9?' });
        await fx.screenshot(admin, 'repl-09-revoke-confirm');
        await revokeDialog.getByRole('button', { name: 'Revoke device' }).click();
        await admin.getByRole('status').filter({ hasText: 'till-9 is revoked' }).waitFor();
        await admin.getByRole('heading', { level: 1 }).getByText('decommissioned').waitFor();
        t.is((await server.api('GET', '/api/v1/devices/till-9/release', { token: till.token })).status, 401, 'the revoked device is refused');
        await fx.screenshot(admin, 'repl-10-device-revoked');
        await noViolations(t, fx, admin, 'a revoked device');

        // Removing a destination a policy still names is refused with the reason, in the dialog.
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Registries' }).click();
        await admin.getByRole('button', { name: 'Remove registry endpoint site-wrong' }).click();
        const removeDialog = admin.getByRole('dialog', { name: /Remove registry endpoint/ });
        await removeDialog.getByRole('button', { name: 'Remove endpoint' }).click();
        await removeDialog.getByRole('alert').getByText('is a destination of shop/to-site').waitFor();
        await fx.screenshot(admin, 'repl-11-remove-refused');
        await removeDialog.getByRole('button', { name: 'Cancel' }).click();
        await admin.getByRole('button', { name: 'Remove registry endpoint site', exact: true }).click();
        await admin.getByRole('dialog', { name: /Remove registry endpoint/ }).getByRole('button', { name: 'Remove endpoint' }).click();
        await admin.getByRole('row', { name: /^site / }).waitFor({ state: 'detached' });
        await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Edges' }).click();
        await admin.getByRole('button', { name: 'Remove edge shop-eu' }).click();
        await admin.getByRole('dialog', { name: /Remove edge/ }).getByRole('button', { name: 'Remove edge' }).click();
        await admin.getByText('No edges yet').waitFor();
        t.deepEqual(fx.pageErrors, []);
      },
      { secretKey: Buffer.alloc(32, 7) },
    );
  } finally {
    await registry.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
});
