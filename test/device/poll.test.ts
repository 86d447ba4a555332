import { randomBytes } from 'node:crypto';
import test from 'ava';
import { releaseNotice } from '../../protocol/messages.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { withServer } from '../helpers/server.ts';

test("GET /api/v1/groups/:group/release answers a group's release, the poll twin of the MQTT notice", async (t) => {
  await withServer(t, async (server) => {
    const registered = await server.api('POST', '/api/v1/devices', { json: { id: 'till-1', group: 'shop' } });
    const token = registered.body.token as string;
    t.is((await server.api('GET', '/api/v1/groups/shop/release', { token })).status, 204, 'nothing deployed yet');
    await publishRelease(server, 'pos-app', '1.0.0', [{ name: 'a.bin', type: 'file', bytes: randomBytes(100) }]);
    await publishRelease(server, 'pos-app', '1.1.0', [{ name: 'a.bin', type: 'file', bytes: randomBytes(100) }]);
    await deploy(server, 'pos-app', '1.0.0', 'shop');
    const latest = await deploy(server, 'pos-app', '1.1.0', 'shop');
    await deploy(server, 'pos-app', '1.0.0', 'other-shop');
    const answer = await server.api('GET', '/api/v1/groups/shop/release', { token });
    t.is(answer.status, 200);
    const notice = releaseNotice.parse(answer.body);
    t.like(notice, { type: 'release', deploymentId: latest, group: 'shop', bundle: 'pos-app', version: '1.1.0' });
    t.is((await server.api('GET', '/api/v1/groups/shop/release')).status, 200, 'an admin may read any group');
    t.is((await server.api('GET', '/api/v1/groups/other-shop/release', { token })).status, 403, 'a device only its own group');
    t.is((await server.api('GET', '/api/v1/groups/shop/release', { token: null })).status, 401);
  });
});
