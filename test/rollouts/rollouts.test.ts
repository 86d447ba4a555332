import test from 'ava';
import mqtt from 'mqtt';
import { startFleet, type Fleet, type FleetOptions } from '../../scripts/fleet-sim.ts';
import { openDatabase } from '../../server/db/knex.ts';
import { adminToken, pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Rollouts end to end (issue #10): a real server (HTTP + embedded MQTT broker, SQLite or
 * PostgreSQL) and the fleet simulator, whose devices speak the real protocol and skip the install.
 */

async function ok(server: TestServer, method: string, path: string, json?: unknown, token?: string): Promise<any> {
  const res = await server.api(method, path, { ...(json === undefined ? {} : { json }), ...(token ? { token } : {}) });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
  return res.body;
}

async function approved(server: TestServer, bundle: string, ...versions: string[]): Promise<void> {
  if ((await server.api('GET', `/api/v1/bundles/${bundle}`)).status === 404) await ok(server, 'POST', '/api/v1/bundles', { name: bundle });
  for (const version of versions) {
    await pushArtifact(server, bundle, version, 'app.txt', Buffer.from(`${bundle} ${version}\n`));
    await ok(server, 'POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`);
  }
}

async function withFleet(server: TestServer, options: Omit<FleetOptions, 'url' | 'adminToken'>, run: (fleet: Fleet) => Promise<void>): Promise<void> {
  const fleet = await startFleet({ url: server.url, adminToken, ...options });
  try {
    await run(fleet);
  } finally {
    await fleet.close();
  }
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);
const deploymentState = async (server: TestServer, id: number) => (await ok(server, 'GET', `/api/v1/deployments/${id}`)) as { state: string; phase: number; reason: string | null; counts: Record<string, number>; perPhase: { size: number }[]; devices: { id: string; state: string; attempt: number; transitions: { state: string }[] }[] };

test('a phased deployment pauses itself when devices fail; resume goes on; retry re-arms the failed devices', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '1.0.0');
    const broken = new Set<string>(); // devices whose "mirror" serves a corrupted manifest
    await withFleet(server, { devices: ids('till', 20).map((id) => ({ id, group: 'shop' })), installMs: 50, fails: (id) => broken.has(id) }, async (fleet) => {
      const created = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.0.0', group: 'shop', phases: [{ percent: 10 }, { percent: 50 }, { percent: 100 }], maxFailures: { count: 1 } });
      t.is(created.state, 'running');
      const detail = await deploymentState(server, created.id);
      t.deepEqual(detail.perPhase.map((p) => p.size), [2, 8, 10], 'phase sizes: 10 %, 50 %, 100 % of 20, stored per device');
      // The second phase's devices fail (more than one failure pauses).
      const secondPhase = detail.devices.filter((d) => detail.perPhase.length && (d as unknown as { phase: number }).phase === 1).map((d) => d.id);
      for (const id of secondPhase.slice(0, 3)) broken.add(id);

      const paused = await waitFor('the deployment to pause itself', async () => {
        const d = await deploymentState(server, created.id);
        return d.state === 'paused' ? d : undefined;
      });
      // Paused at the second failure (over 1); the third device fails after it, and is counted.
      t.regex(paused.reason!, /[23] of 10 devices released so far failed, over the limit of 1 devices/);
      t.is(paused.phase, 1, 'paused in the second phase');
      await waitFor('the third failure', async () => ((await deploymentState(server, created.id)).counts.failed === 3 ? true : undefined));
      t.is((await deploymentState(server, created.id)).counts.pending, 10, 'the last phase was not released');
      t.true(fleet.devices.filter((d) => d.installed).length <= 7);

      // The operator fixes the mirror, retries the failed devices, and resumes.
      broken.clear();
      const retried = await ok(server, 'POST', `/api/v1/deployments/${created.id}/retry`, {});
      t.is(retried.devices, 3);
      const resumed = await ok(server, 'POST', `/api/v1/deployments/${created.id}/resume`);
      t.not(resumed.deployment.state, 'paused');
      const done = await waitFor('the deployment to complete', async () => {
        const d = await deploymentState(server, created.id);
        return d.state === 'completed' ? d : undefined;
      });
      await waitFor('every report', async () => ((await deploymentState(server, created.id)).counts.installed === 20 ? true : undefined));
      t.true(fleet.devices.every((d) => d.installed?.version === '1.0.0'));
      const retriedDevice = done.devices.find((d) => d.id === secondPhase[0])!;
      t.is(retriedDevice.attempt, 1);
      t.deepEqual(retriedDevice.transitions.map((x) => x.state).filter((s) => s !== 'updating'), ['notified', 'failed', 'retry', 'installed'], 'each device shows its transitions');
      const listed = await server.api('GET', '/api/v1/deployments?state=completed');
      t.is(listed.headers.get('x-total'), '1');
    });
  });
});

test('abort mid-flight: devices that have not switched stop and stay where they are', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '1.0.0', '1.1.0');
    await withFleet(server, { devices: ids('kiosk', 6).map((id) => ({ id, group: 'mall' })), installMs: 100 }, async (fleet) => {
      const first = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.0.0', group: 'mall' });
      await waitFor('1.0.0 everywhere', () => (fleet.devices.every((d) => d.installed?.version === '1.0.0') ? true : undefined));
      await waitFor('the first deployment to complete', async () => ((await deploymentState(server, first.id)).state === 'completed' ? true : undefined));
    });
    // The same devices again, now installing slowly: abort catches them before the switch.
    const fleet = await startFleet({ url: server.url, adminToken, devices: [], installMs: 60_000 });
    try {
      const slow = await fleet.add(ids('slow', 4).map((id) => ({ id, group: 'mall' })));
      const second = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.1.0', group: 'mall', force: true });
      await waitFor('the slow devices to start', () => (slow.every((d) => d.reports.some((r) => r.state === 'downloading')) ? true : undefined));
      const aborted = await ok(server, 'POST', `/api/v1/deployments/${second.id}/abort`);
      t.is(aborted.deployment.state, 'aborted');
      await waitFor('every slow device to stop', () => (slow.every((d) => d.notices.some((n) => n.type === 'abort') && d.reports.at(-1)?.state === 'idle') ? true : undefined));
      t.true(slow.every((d) => d.installed === null), 'nothing was switched');
      const detail = await deploymentState(server, second.id);
      t.true(detail.devices.every((d) => d.state === 'aborted' || d.state === 'installed'));
      t.is((await server.api('POST', `/api/v1/deployments/${second.id}/retry`, { json: {} })).body.error.code, 'invalid_state', 'an aborted deployment is never retried');
      t.is((await server.api('POST', `/api/v1/deployments/${second.id}/resume`)).status, 409);
      // What each device should run now says so (its poll twin answers the abort).
      const device = slow[0]!;
      const polled = await server.api('GET', `/api/v1/devices/${device.id}/release`, { token: device.token });
      t.is(polled.body.type, 'abort');
    } finally {
      await fleet.close();
    }
  });
});

test('a dynamic group previews its members, and a device that starts matching mid-run gets the release', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '2.0.0');
    const devices = [
      ...ids('eu', 3).map((id) => ({ id, group: 'shops', attributes: { model: 'pos-x2', region: 'eu-west' } })),
      ...ids('us', 2).map((id) => ({ id, group: 'shops', attributes: { model: 'pos-x2', region: 'us-east' } })),
      { id: 'eu-old', group: 'shops', attributes: { model: 'pos-x1', region: 'eu-west' } },
    ];
    await withFleet(server, { devices, installMs: 20 }, async (fleet) => {
      const filter = 'model = "pos-x2" and region = "eu-west"';
      const preview = await waitFor('inventory to arrive', async () => {
        const p = await ok(server, 'POST', '/api/v1/groups/preview', { filter });
        return p.total === 3 ? p : undefined;
      });
      t.deepEqual(preview.devices, ['eu-01', 'eu-02', 'eu-03']);
      const bad = await server.api('POST', '/api/v1/groups/preview', { json: { filter: 'model = ' } });
      t.is(bad.status, 400);
      t.regex(bad.body.error.message, /expected a value at the end/);

      await ok(server, 'POST', '/api/v1/groups', { name: 'eu-x2', filter, description: 'new tills in Europe' });
      const shown = await ok(server, 'GET', '/api/v1/groups/eu-x2');
      t.like(shown, { kind: 'dynamic', devices: 3, filter });
      const listed = await ok(server, 'GET', '/api/v1/groups');
      t.deepEqual(listed.map((g: { name: string }) => g.name), ['eu-x2', 'shops']);
      const members = await ok(server, 'GET', '/api/v1/devices?group=eu-x2');
      t.deepEqual(members.map((d: { id: string }) => d.id), ['eu-01', 'eu-02', 'eu-03']);

      const created = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '2.0.0', group: 'eu-x2' });
      await waitFor('the eu devices to install', () => (['eu-01', 'eu-02', 'eu-03'].every((id) => fleet.byId(id).installed?.version === '2.0.0') ? true : undefined));
      t.is(fleet.byId('us-01').installed, null, 'devices outside the filter are not touched');

      // An x1 till is upgraded in the field and reports its new model: it joins and gets 2.0.0.
      await fleet.byId('eu-old').setAttributes({ model: 'pos-x2' });
      await waitFor('the joining device to install', () => (fleet.byId('eu-old').installed?.version === '2.0.0' ? true : undefined));
      // And a device registered later in a targeted static group as well.
      await fleet.add([{ id: 'eu-new', group: 'shops', attributes: { model: 'pos-x2', region: 'eu-west' } }]);
      await waitFor('the new device to install', () => (fleet.byId('eu-new').installed?.version === '2.0.0' ? true : undefined));
      // The simulator counts a device installed before its report reaches the server.
      await waitFor('five devices reported installed', async () => ((await deploymentState(server, created.id)).counts.installed === 5 ? true : undefined));
      const device = await ok(server, 'GET', '/api/v1/devices/eu-old');
      t.deepEqual(device.groups, ['shops', 'eu-x2']);
      t.like(device.assigned, { deploymentId: created.id, version: '2.0.0', group: 'eu-x2' });
      t.true(device.online);
      t.is(device.inventory.model, 'pos-x2');
      t.true(device.history.some((h: { state: string }) => h.state === 'installed'));
      const online = await server.api('GET', '/api/v1/devices?online=true&filter=region%20%3D%20%22us-east%22');
      t.deepEqual(online.body.map((d: { id: string }) => d.id), ['us-01', 'us-02']);
    });
  });
});

test('deploying to an empty group or a downgrade is refused unless forced; an emergency rollback is a deploy action', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '1.0.0', '1.1.0');
    await withFleet(server, { devices: ids('till', 2).map((id) => ({ id, group: 'shop' })) }, async (fleet) => {
      const empty = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos', version: '1.1.0', group: 'shpo' } });
      t.is(empty.status, 404, 'a group that does not exist (a typo)');
      await ok(server, 'POST', '/api/v1/groups', { name: 'empty' });
      const none = await server.api('POST', '/api/v1/deployments', { json: { bundle: 'pos', version: '1.1.0', group: 'empty' } });
      t.is(none.status, 409);
      t.is(none.body.error.code, 'group_empty');
      await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.1.0', group: 'shop' });
      await waitFor('1.1.0 installed', () => (fleet.devices.every((d) => d.installed?.version === '1.1.0') ? true : undefined));

      // The on-call engineer: Maintainer of the group, Guest of the bundle, a deploy-only token.
      await ok(server, 'POST', '/api/v1/users', { name: 'oncall' });
      await ok(server, 'POST', '/api/v1/groups/shop/members', { user: 'oncall', role: 'maintainer' });
      await ok(server, 'POST', '/api/v1/bundles/pos/members', { user: 'oncall', role: 'guest' });
      const token = (await ok(server, 'POST', '/api/v1/tokens', { name: 'pager', scopes: ['read', 'deploy'], user: 'oncall' })).token;
      const downgrade = await server.api('POST', '/api/v1/deployments', { token, json: { bundle: 'pos', version: '1.0.0', group: 'shop' } });
      t.is(downgrade.status, 409);
      t.is(downgrade.body.error.code, 'downgrade_not_allowed');
      t.regex(downgrade.body.error.message, /--rollback/);
      const rollback = await server.api('POST', '/api/v1/deployments', { token, json: { bundle: 'pos', version: '1.0.0', group: 'shop', rollback: true } });
      t.is(rollback.status, 201, 'the emergency rollback needs no approve scope');
      t.true(rollback.body.rollback);
      // Another group's maintainer cannot deploy to this one (groups are owned).
      await ok(server, 'POST', '/api/v1/users', { name: 'other' });
      await ok(server, 'POST', '/api/v1/groups', { name: 'other-shop' });
      await ok(server, 'POST', '/api/v1/groups/other-shop/members', { user: 'other', role: 'owner' });
      await ok(server, 'POST', '/api/v1/bundles/pos/members', { user: 'other', role: 'maintainer' });
      const otherToken = (await ok(server, 'POST', '/api/v1/tokens', { name: 'x', scopes: ['read', 'deploy'], user: 'other' })).token;
      const foreign = await server.api('POST', '/api/v1/deployments', { token: otherToken, json: { bundle: 'pos', version: '1.1.0', group: 'shop', force: true } });
      t.is(foreign.status, 403);
      t.regex(foreign.body.error.message, /group "shop"/);
    });
  });
});

test('decommissioning a device cuts its token on HTTP, /tuf/ and MQTT at once and closes its session', async (t) => {
  await withServer(t, async (server) => {
    await withFleet(server, { devices: [{ id: 'old-till', group: 'shop' }, { id: 'new-till', group: 'shop' }] }, async (fleet) => {
      const device = fleet.byId('old-till');
      t.is((await server.api('GET', '/tuf/timestamp.json', { token: device.token })).status, 200);
      await waitFor('online', async () => ((await ok(server, 'GET', '/api/v1/devices/old-till')).online ? true : undefined));
      const closed = new Promise<void>((resolve) => device.client!.once('close', () => resolve()));
      const removed = await ok(server, 'DELETE', '/api/v1/devices/old-till');
      t.truthy(removed.decommissionedAt);
      await closed;
      t.is((await server.api('GET', '/tuf/timestamp.json', { token: device.token })).status, 401);
      t.is((await server.api('GET', '/api/v1/devices/old-till/release', { token: device.token })).status, 401);
      const refused = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'old-till', password: device.token, reconnectPeriod: 0 }).then(
        (c) => c.endAsync().then(() => 'connected'),
        (error: Error) => error.message,
      );
      t.regex(refused, /Bad username or password|Not authorized/i);
      const listed = await ok(server, 'GET', '/api/v1/devices?online=true');
      t.deepEqual(listed.map((d: { id: string }) => d.id), ['new-till']);
    });
  });
});

test('a server restart mid-deployment keeps phases and reports: nothing is reshuffled or lost', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '3.0.0');
    await withFleet(server, { devices: ids('till', 10).map((id) => ({ id, group: 'shop' })), installMs: 20 }, async (fleet) => {
      // A long soak: the deployment is certainly between its phases when the server restarts.
      const created = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '3.0.0', group: 'shop', phases: [{ count: 3 }, { percent: 100 }], soakMs: 600_000 });
      const before = await deploymentState(server, created.id);
      await waitFor('phase 1 installed', async () => ((await deploymentState(server, created.id)).counts.installed === 3 ? true : undefined));
      await server.restart();
      const after = await deploymentState(server, created.id);
      const phases = (d: typeof before) => d.devices.map((x) => `${x.id}:${(x as unknown as { phase: number }).phase}`);
      t.deepEqual(phases(after), phases(before), 'phase membership is stored');
      t.like(after, { state: 'running', phase: 0 });
      t.is(after.counts.installed, 3, 'no report was lost');
      t.is(after.counts.pending, 7);
      // Reports sent while the server was down are delivered after it (the devices reconnect).
      await waitFor('the devices to reconnect', async () => ((await ok(server, 'GET', '/api/v1/devices?online=true')).length === 10 ? true : undefined));
      t.is(fleet.devices.filter((d) => d.installed).length, 3, 'the restart released nothing early');
      // The operator skips the soak by a new deployment of the same release: it supersedes this one.
      const next = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '3.0.0', group: 'shop' });
      t.is((await deploymentState(server, created.id)).state, 'superseded');
      const done = await waitFor('the new deployment to complete', async () => {
        const d = await deploymentState(server, next.id);
        return d.state === 'completed' ? d : undefined;
      });
      t.is(done.counts.installed, 10);
      t.true(fleet.devices.every((d) => d.installed?.version === '3.0.0'));
    });
  });
});

test('a report stored just before a crash still counts: progress is reconciled from stored reports at start', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '4.0.0');
    const fleet = await startFleet({ url: server.url, adminToken, devices: ids('till', 2).map((id) => ({ id, group: 'shop' })), installMs: 600_000 });
    const created = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '4.0.0', group: 'shop' });
    await waitFor('both devices updating', async () => ((await deploymentState(server, created.id)).counts.updating === 2 ? true : undefined));
    await fleet.close(); // offline: nothing reports over what is written below
    // The device's row got its report, the deployment did not: what a crash between the two
    // writes leaves behind (written here with a connection of its own).
    const db = await openDatabase({ databaseUrl: server.databaseUrl, dataDir: server.dataDir });
    try {
      await db('devices').where({ id: 'till-01' }).update({ state: 'installed', installed_bundle: 'pos', installed_version: '4.0.0', target_bundle: null, target_version: null });
    } finally {
      await db.destroy();
    }
    t.is((await deploymentState(server, created.id)).counts.installed, 0);
    await server.restart();
    const after = await deploymentState(server, created.id);
    t.is(after.counts.installed, 1, 'the stored report reached its deployment');
    t.is(after.devices.find((d) => d.id === 'till-01')!.state, 'installed');
  });
});
