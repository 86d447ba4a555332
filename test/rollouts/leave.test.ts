import test from 'ava';
import { startFleet, type Fleet, type FleetOptions } from '../../scripts/fleet-sim.ts';
import { adminToken, pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Devices leaving a targeted group while its deployment runs (issue #10 follow-up; the leave rule
 * in server/deployments/plan.ts): a real server (SQLite, or PostgreSQL with CONVOY_DATABASE_URL)
 * and simulated devices speaking the real protocol. A device moved out, decommissioned, or no
 * longer matching a dynamic filter before it installed is `left`, counts in no bar, has its
 * notice withdrawn, and gets its new group's release; one that installed stays counted.
 */

type Detail = { state: string; phase: number; counts: Record<string, number>; devices: { id: string; phase: number; state: string; transitions: { state: string; detail: string | null }[] }[] };

async function ok(server: TestServer, method: string, path: string, json?: unknown): Promise<any> {
  const res = await server.api(method, path, json === undefined ? {} : { json });
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.raw}`);
  return res.body;
}

async function approved(server: TestServer, bundle: string, ...versions: string[]): Promise<void> {
  await ok(server, 'POST', '/api/v1/bundles', { name: bundle });
  for (const version of versions) {
    await pushArtifact(server, bundle, version, 'app.txt', Buffer.from(`${bundle} ${version}\n`));
    await ok(server, 'POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`);
  }
}

async function fleetOf(server: TestServer, options: Omit<FleetOptions, 'url' | 'adminToken'>): Promise<Fleet> {
  return startFleet({ url: server.url, adminToken, ...options });
}

const detailOf = (server: TestServer, id: number) => ok(server, 'GET', `/api/v1/deployments/${id}`) as Promise<Detail>;
const stateOf = async (server: TestServer, id: number, device: string) => (await detailOf(server, id)).devices.find((d) => d.id === device)?.state;

test('devices moved out or decommissioned mid-deployment leave it: not counted, notice replaced by their new group’s release', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '1.0.0', '2.0.0');
    const fast = await fleetOf(server, { devices: [{ id: 'south-1', group: 'south' }], installMs: 10 });
    // North's devices install slowly: they are caught before they switch.
    const slow = await fleetOf(server, { devices: ['n-1', 'n-2', 'n-3', 'n-4'].map((id) => ({ id, group: 'north' })), installMs: 60_000 });
    try {
      const south = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.0.0', group: 'south' });
      await waitFor('south to complete', async () => ((await detailOf(server, south.id)).state === 'completed' ? true : undefined));
      await waitFor('south-1 to report installed', async () => ((await stateOf(server, south.id, 'south-1')) === 'installed' ? true : undefined));

      const north = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '2.0.0', group: 'north', phases: [{ count: 2 }, { percent: 100 }] });
      const detail = await detailOf(server, north.id);
      const [a, b] = detail.devices.filter((d) => d.phase === 0).map((d) => d.id) as [string, string];
      const [c, d] = detail.devices.filter((d) => d.phase === 1).map((d) => d.id) as [string, string];
      await waitFor('the first phase to start updating', () => ([a, b].every((id) => slow.byId(id).reports.some((r) => r.state === 'downloading')) ? true : undefined));

      // C, not released yet, moves to south: it leaves north untold and gets south's release.
      await ok(server, 'POST', `/api/v1/devices/${c}/move`, { group: 'south' });
      await waitFor(`${c} to leave north`, async () => ((await stateOf(server, north.id, c)) === 'left' ? true : undefined));
      await waitFor(`${c} to get south's release`, () => (slow.byId(c).notices.some((n) => n.type === 'release' && n.deploymentId === south.id) ? true : undefined));
      t.false(slow.byId(c).notices.some((n) => n.deploymentId === north.id), 'never told north’s release');

      // A, updating, moves to south too; B is decommissioned: the first phase has nobody left to
      // wait for, so the second starts (devices that left count in no bar).
      await ok(server, 'POST', `/api/v1/devices/${a}/move`, { group: 'south' });
      await ok(server, 'DELETE', `/api/v1/devices/${b}`);
      const advanced = await waitFor('the second phase to start', async () => {
        const now = await detailOf(server, north.id);
        return now.phase === 1 ? now : undefined;
      });
      t.is(advanced.state, 'running');
      t.like(advanced.counts, { left: 3, installed: 0, failed: 0 }, JSON.stringify(advanced.devices));
      t.deepEqual(advanced.devices.find((x) => x.id === b)!.transitions.at(-1), { ...advanced.devices.find((x) => x.id === b)!.transitions.at(-1)!, state: 'left', detail: 'device decommissioned' });
      t.is(advanced.devices.find((x) => x.id === a)!.transitions.at(-1)!.detail, 'left group north');
      await waitFor(`${d} to be told`, () => (slow.byId(d).notices.some((n) => n.type === 'release' && n.deploymentId === north.id) ? true : undefined));
      // A stopped 2.0.0 before its switch and follows south's release now (its retained notice).
      await waitFor(`${a} to follow south`, () => (slow.byId(a).notices.at(-1)?.deploymentId === south.id ? true : undefined));
      t.is(slow.byId(a).installed, null, 'north’s release was never switched to');
      const polled = await server.api('GET', `/api/v1/devices/${a}/release`, { token: slow.byId(a).token });
      t.like(polled.body, { type: 'release', deploymentId: south.id, version: '1.0.0' });
      t.like(await ok(server, 'GET', `/api/v1/devices/${a}`), { group: 'south', assigned: { deploymentId: south.id, version: '1.0.0' } });
      t.is((await server.api('POST', `/api/v1/deployments/${north.id}/retry`, { json: { device: a } })).status, 409, 'a device that left is not retried');

      // A device that installed stays counted when it leaves; one that comes back rejoins.
      await ok(server, 'POST', '/api/v1/devices/south-1/move', { group: 'north' });
      await waitFor('south-1 to join north', async () => ((await stateOf(server, north.id, 'south-1')) !== undefined ? true : undefined));
      t.is(await stateOf(server, south.id, 'south-1'), 'installed', 'an installed device stays counted where it installed');
      await ok(server, 'POST', `/api/v1/devices/${c}/move`, { group: 'north' });
      await waitFor(`${c} to rejoin north and be told`, () => (slow.byId(c).notices.some((n) => n.type === 'release' && n.deploymentId === north.id) ? true : undefined));
      t.not(await stateOf(server, north.id, c), 'left');
    } finally {
      await Promise.all([fast.close(), slow.close()]);
    }
  });
});

test('a device no longer matching a dynamic group’s filter leaves its deployment; with no other release its notice is withdrawn', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '2.0.0');
    const fleet = await fleetOf(server, { devices: ['lab-1', 'lab-2'].map((id) => ({ id, group: 'lab', attributes: { ring: 'beta' } })), installMs: 60_000 });
    try {
      await waitFor('inventory to arrive', async () => ((await ok(server, 'POST', '/api/v1/groups/preview', { filter: 'ring = "beta"' })).total === 2 ? true : undefined));
      await ok(server, 'POST', '/api/v1/groups', { name: 'beta', filter: 'ring = "beta"' });
      const beta = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '2.0.0', group: 'beta' });
      await waitFor('both to start updating', () => (fleet.devices.every((d) => d.reports.some((r) => r.state === 'downloading')) ? true : undefined));

      await fleet.byId('lab-1').setAttributes({ ring: 'stable' });
      await waitFor('lab-1 to leave beta', async () => ((await stateOf(server, beta.id, 'lab-1')) === 'left' ? true : undefined));
      // Its notice is withdrawn: it stops before the switch and stays where it is.
      await waitFor('lab-1 to stop', () => (fleet.byId('lab-1').notices.at(-1)?.type === 'abort' && fleet.byId('lab-1').reports.at(-1)?.state === 'idle' ? true : undefined));
      t.is(fleet.byId('lab-1').installed, null);
      const polled = await server.api('GET', '/api/v1/devices/lab-1/release', { token: fleet.byId('lab-1').token });
      t.like(polled.body, { type: 'abort', deploymentId: beta.id });
      t.is((await ok(server, 'GET', '/api/v1/devices/lab-1')).assigned, null);
      const detail = await detailOf(server, beta.id);
      t.like(detail.counts, { left: 1, updating: 1 });
      t.is(fleet.byId('lab-2').notices.at(-1)?.type, 'release', 'the device still matching goes on');
    } finally {
      await fleet.close();
    }
  });
});

test('a device leaving a dynamic group falls back to its static group’s deployment, which it had left for the newer one', async (t) => {
  await withServer(t, async (server) => {
    await approved(server, 'pos', '1.0.0', '2.0.0');
    const fleet = await fleetOf(server, { devices: [{ id: 'till-1', group: 'shop', attributes: { ring: 'beta' } }], installMs: 60_000 });
    try {
      const device = fleet.byId('till-1');
      await waitFor('inventory to arrive', async () => ((await ok(server, 'POST', '/api/v1/groups/preview', { filter: 'ring = "beta"' })).total === 1 ? true : undefined));
      const shop = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '1.0.0', group: 'shop' });
      await waitFor('the shop release', () => (device.notices.some((n) => n.deploymentId === shop.id) ? true : undefined));
      await ok(server, 'POST', '/api/v1/groups', { name: 'beta', filter: 'ring = "beta"' });
      const beta = await ok(server, 'POST', '/api/v1/deployments', { bundle: 'pos', version: '2.0.0', group: 'beta' });
      await waitFor('the beta release', () => (device.notices.at(-1)?.deploymentId === beta.id ? true : undefined));
      await waitFor('shop to count it superseded', async () => ((await stateOf(server, shop.id, 'till-1')) === 'superseded' ? true : undefined));

      await device.setAttributes({ ring: 'stable' });
      await waitFor('till-1 to leave beta', async () => ((await stateOf(server, beta.id, 'till-1')) === 'left' ? true : undefined));
      await waitFor('the shop release again', () => (device.notices.at(-1)?.type === 'release' && device.notices.at(-1)?.deploymentId === shop.id ? true : undefined));
      t.not(await stateOf(server, shop.id, 'till-1'), 'superseded');
      t.like((await ok(server, 'GET', '/api/v1/devices/till-1')).assigned, { deploymentId: shop.id, version: '1.0.0' });
    } finally {
      await fleet.close();
    }
  });
});
