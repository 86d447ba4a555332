import test from 'ava';
import { randomBytes } from 'node:crypto';
import { pushArtifact, withServer, type TestServer } from '../helpers/server.ts';

/**
 * The read model of the fleet (issue #14 items 2 and 8, #10; docs/permissions.md "Read model"):
 * a deployment is seen by Reporters of its bundle or its group; a device by Reporters of one of
 * its groups (static or dynamic) and by Maintainers of a bundle it runs or an unfinished
 * deployment sends it. Lists count only what the caller may see; one row the caller may not see
 * answers 404 as a missing one would, on every path (list, one, live events, history).
 */

const scopes = ['read', 'write', 'approve', 'deploy', 'admin'];

async function ok(server: TestServer, method: string, path: string, json?: unknown): Promise<any> {
  const answer = await server.api(method, path, json === undefined ? {} : { json });
  if (answer.status >= 300) throw new Error(`${method} ${path} answered ${answer.status}: ${answer.raw}`);
  return answer.body;
}

async function user(server: TestServer, name: string, roles: { bundle?: [string, string]; group?: [string, string] }): Promise<string> {
  await ok(server, 'POST', '/api/v1/users', { name });
  if (roles.bundle) await ok(server, 'POST', `/api/v1/bundles/${roles.bundle[0]}/members`, { user: name, role: roles.bundle[1] });
  if (roles.group) await ok(server, 'POST', `/api/v1/groups/${roles.group[0]}/members`, { user: name, role: roles.group[1] });
  return (await ok(server, 'POST', '/api/v1/tokens', { name: 'all scopes', scopes, user: name })).token as string;
}

/**
 * alpha@1.0.0 deployed to g1 (devices g1-a, g1-b), beta@1.0.0 deployed to g2 (devices g2-a,
 * g2-b), g3 (device g3-a) runs nothing; a dynamic group "picked" holds g3-a by its id.
 * No daemon runs: the deployments stay unfinished, their devices told and not yet answering.
 */
async function setUp(server: TestServer) {
  for (const name of ['alpha', 'beta']) {
    await ok(server, 'POST', '/api/v1/bundles', { name });
    await pushArtifact(server, name, '1.0.0', 'app.bin', randomBytes(32));
    await ok(server, 'POST', `/api/v1/bundles/${name}/versions/1.0.0/approve`);
  }
  for (const id of ['g1-a', 'g1-b', 'g2-a', 'g2-b', 'g3-a']) await ok(server, 'POST', '/api/v1/devices', { id, group: id.slice(0, 2) });
  await ok(server, 'POST', '/api/v1/groups', { name: 'picked', filter: 'id = "g3-a"' });
  const alpha = (await ok(server, 'POST', '/api/v1/deployments', { bundle: 'alpha', version: '1.0.0', group: 'g1' })).id as number;
  const beta = (await ok(server, 'POST', '/api/v1/deployments', { bundle: 'beta', version: '1.0.0', group: 'g2' })).id as number;
  return {
    deployments: { alpha, beta },
    tokens: {
      alphaReporter: await user(server, 'alpha-reporter', { bundle: ['alpha', 'reporter'] }),
      alphaMaintainer: await user(server, 'alpha-maintainer', { bundle: ['alpha', 'maintainer'] }),
      g1Reporter: await user(server, 'g1-reporter', { group: ['g1', 'reporter'] }),
      pickedReporter: await user(server, 'picked-reporter', { group: ['picked', 'reporter'] }),
    },
  };
}

const ids = (items: { id: unknown }[]) => items.map((i) => i.id).sort();

test("a reporter of bundle alpha sees alpha's deployment, not beta's to group g2 (list, one, live events): 404 as if it did not exist", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.alphaReporter };
    const list = await server.api('GET', '/api/v1/deployments', as);
    t.is(list.status, 200);
    t.deepEqual(ids(list.body), [fx.deployments.alpha]);
    // ?group= asks for beta's group by name: still nothing of it.
    t.deepEqual((await server.api('GET', '/api/v1/deployments?group=g2', as)).body, []);
    t.is((await server.api('GET', `/api/v1/deployments/${fx.deployments.alpha}`, as)).status, 200);
    const missing = await server.api('GET', '/api/v1/deployments/999999', as);
    for (const path of [`/api/v1/deployments/${fx.deployments.beta}`, `/api/v1/deployments/${fx.deployments.beta}/events`]) {
      const answer = await server.api('GET', path, as);
      t.is(answer.status, 404, path);
      t.is(answer.body.error.code, missing.body.error.code, `${path}: the same error as a deployment never made`);
      t.notRegex(answer.raw.toString(), /g2-a|beta/, `${path} leaks nothing of the deployment`);
    }
    // What a group runs (the group notice's pull twin) follows the same rule.
    t.is((await server.api('GET', '/api/v1/groups/g1/release', as)).body.bundle, 'alpha');
    t.is((await server.api('GET', '/api/v1/groups/g2/release', as)).status, 204, "beta's group runs nothing alpha's reporter may see");
    t.is((await server.api('GET', '/api/v1/groups/g2/release')).body.bundle, 'beta');
    // The admin still sees both.
    t.deepEqual(ids((await server.api('GET', '/api/v1/deployments')).body), [fx.deployments.alpha, fx.deployments.beta].sort());
  });
});

test("a reporter of group g1 sees g1's deployments and devices only, with the right totals", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.g1Reporter };
    const deployments = await server.api('GET', '/api/v1/deployments', as);
    t.deepEqual(ids(deployments.body), [fx.deployments.alpha], 'deployed to g1, whatever the bundle');
    t.is(deployments.headers.get('x-total'), '1');
    t.is((await server.api('GET', `/api/v1/deployments/${fx.deployments.beta}`, as)).status, 404);
    const devices = await server.api('GET', '/api/v1/devices', as);
    t.deepEqual(ids(devices.body), ['g1-a', 'g1-b']);
    t.is(devices.headers.get('x-total'), '2');
    // Paging counts only what the caller may see: the second page of one is g1-b, and no more.
    const second = await server.api('GET', '/api/v1/devices?per_page=1&page=2', as);
    t.deepEqual(ids(second.body), ['g1-b']);
    t.is(second.headers.get('x-total'), '2');
    t.is((await server.api('GET', '/api/v1/devices/g1-a', as)).status, 200);
    const missing = await server.api('GET', '/api/v1/devices/no-such-device', as);
    const hidden = await server.api('GET', '/api/v1/devices/g2-a', as);
    t.is(hidden.status, 404, "another group's device (its inventory and history) is not found");
    t.is(hidden.body.error.code, missing.body.error.code);
    // A filter over the fleet (the dynamic-group preview) names only visible devices too.
    const preview = await server.api('POST', '/api/v1/groups/preview', { ...as, json: { filter: 'id ~ "-a"' } });
    t.is(preview.status, 200);
    t.deepEqual(preview.body.devices, ['g1-a']);
    t.is(preview.body.total, 1);
  });
});

test('a reporter of a dynamic group sees the devices that match it now', async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.pickedReporter };
    t.deepEqual(ids((await server.api('GET', '/api/v1/devices', as)).body), ['g3-a']);
    t.is((await server.api('GET', '/api/v1/devices/g3-a', as)).status, 200);
    t.is((await server.api('GET', '/api/v1/devices/g1-a', as)).status, 404);
    t.deepEqual((await server.api('GET', '/api/v1/deployments', as)).body, [], 'no deployment went to "picked"');
  });
});

test("a maintainer of bundle alpha sees the devices alpha's deployment targets, not the rest of the fleet", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const as = { token: fx.tokens.alphaMaintainer };
    const devices = await server.api('GET', '/api/v1/devices', as);
    t.deepEqual(ids(devices.body), ['g1-a', 'g1-b']);
    t.is(devices.headers.get('x-total'), '2');
    t.is((await server.api('GET', '/api/v1/devices/g1-b', as)).status, 200);
    for (const id of ['g2-a', 'g3-a']) {
      t.is((await server.api('GET', `/api/v1/devices/${id}`, as)).status, 404, id);
      t.is((await server.api('GET', `/api/v1/devices/${id}/release`, as)).status, 404, `${id}'s notice`);
    }
    t.not((await server.api('GET', '/api/v1/devices/g1-a/release', as)).status, 404, "a targeted device's notice");
    // A reporter of alpha follows the deployment, but the fleet's inventory is for Maintainers.
    t.is((await server.api('GET', '/api/v1/devices', { token: fx.tokens.alphaReporter })).status, 403);
    // Aborted, the deployment no longer sends anything to g1: its devices leave alpha's view.
    await ok(server, 'POST', `/api/v1/deployments/${fx.deployments.alpha}/abort`);
    t.deepEqual((await server.api('GET', '/api/v1/devices', as)).body, []);
  });
});

/**
 * Acting on a row is reading it first: pause, resume, abort and retry on a deployment, move and
 * decommission on a device, answer a caller who may not see the row 404 with the same error as
 * for a row never made (so the answer does not reveal that it exists), and 403 only to a caller
 * who sees it but may not act on it.
 */
test('control routes answer 404 to a caller who may not see the deployment or device, 403 to one who sees it but may not act', async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const g1Maintainer = await user(server, 'g1-maintainer', { group: ['g1', 'maintainer'] });
    const outsider = await user(server, 'outsider', {});
    const control = async (token: string, id: number | string, verb: string) =>
      server.api('POST', `/api/v1/deployments/${id}/${verb}`, { token, ...(verb === 'retry' ? { json: {} } : {}) });

    for (const verb of ['pause', 'resume', 'abort', 'retry']) {
      for (const [who, token] of [['a reporter of bundle alpha', fx.tokens.alphaReporter], ['a user with no role', outsider]] as const) {
        const missing = await control(token, 999999, verb);
        t.is(missing.status, 404, `${verb} a missing deployment as ${who}`);
        const hidden = await control(token, fx.deployments.beta, verb);
        t.is(hidden.status, 404, `${verb} beta's deployment as ${who}, who may not see it`);
        t.deepEqual(hidden.body.error.code, missing.body.error.code, `${verb}: the same error as a deployment never made`);
        t.notRegex(hidden.raw.toString(), /g2|beta/, `${verb} leaks nothing of the deployment`);
      }
      // Alpha's reporter sees alpha's deployment: may not act on it, and is told so.
      const seen = await control(fx.tokens.alphaReporter, fx.deployments.alpha, verb);
      t.is(seen.status, 403, `${verb} a deployment the caller sees but may not control`);
      t.is(seen.body.error.code, 'forbidden');
    }
    // A device token never controls a deployment, whichever: refused before any lookup.
    const deviceToken = (await ok(server, 'POST', '/api/v1/devices', { id: 'g1-c', group: 'g1' })).token as string;
    t.is((await control(deviceToken, fx.deployments.alpha, 'pause')).status, 403);
    t.is((await control(deviceToken, 999999, 'pause')).status, 403, 'the same answer for a missing deployment');

    // Devices: g1's reporter sees g1-a (403: not a maintainer) but not g2-a (404, as a missing one).
    for (const [label, request] of [
      ['decommission', (id: string, token: string) => server.api('DELETE', `/api/v1/devices/${id}`, { token })],
      ['move', (id: string, token: string) => server.api('POST', `/api/v1/devices/${id}/move`, { token, json: { group: 'g3' } })],
    ] as const) {
      const missing = await request('no-such-device', fx.tokens.g1Reporter);
      t.is(missing.status, 404, `${label} a missing device`);
      const hidden = await request('g2-a', fx.tokens.g1Reporter);
      t.is(hidden.status, 404, `${label} a device of another group`);
      t.is(hidden.body.error.code, missing.body.error.code);
      t.notRegex(hidden.raw.toString(), /g2"|beta/, `${label} leaks nothing of the device`);
      t.is((await request('g1-a', fx.tokens.g1Reporter)).status, 403, `${label} a device the caller sees but may not change`);
    }
    // A maintainer of g1 moving another group's device into g1: that device is not theirs to see.
    const into = await server.api('POST', '/api/v1/devices/g2-a/move', { token: g1Maintainer, json: { group: 'g1' } });
    t.is(into.status, 404);
    t.is((await server.api('GET', '/api/v1/devices/g2-a')).body.group, 'g2', 'the device stayed where it was');
    // Nothing was done by any refused request: beta's deployment still runs, its devices are there.
    t.is((await server.api('GET', `/api/v1/deployments/${fx.deployments.beta}`)).body.state, 'running');
    t.is((await server.api('GET', '/api/v1/devices/g1-a')).body.decommissionedAt ?? null, null);
  });
});

test("a device's certificates are shown only to who may read the device: 404 for another group's, as for a missing one", async (t) => {
  await withServer(t, async (server) => {
    const fx = await setUp(server);
    const certificates = (id: string) => server.api('GET', `/api/v1/devices/${id}/certificates`, { token: fx.tokens.g1Reporter });
    const own = await certificates('g1-a');
    t.is(own.status, 200);
    t.is(own.body.device, 'g1-a');
    const missing = await certificates('no-such-device');
    t.is(missing.status, 404);
    const hidden = await certificates('g2-a');
    t.is(hidden.status, 404, 'a device of a group the caller does not read');
    t.is(hidden.body.error.code, missing.body.error.code, 'the same answer as a device never registered');
    t.is((await server.api('GET', '/api/v1/devices/g2-a/certificates')).status, 200, 'an admin sees any');
  });
});
