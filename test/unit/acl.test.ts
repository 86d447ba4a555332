import test from 'ava';
import { decideDeviceTopic, mosquittoAcl, type MqttAction } from '../../protocol/acl.ts';

/* The device ACL as a table: (device, action, topic) → allowed or not, with the reason given. */

const device = { deviceId: 'pump-1', groups: ['north', 'pilot'] };
const cases: [MqttAction, string, boolean][] = [
  ['subscribe', 'convoy/v1/groups/north/release', true],
  ['subscribe', 'convoy/v1/groups/pilot/release', true],
  ['subscribe', 'convoy/v1/devices/pump-1/release', true],
  ['subscribe', 'convoy/v1/groups/south/release', false],
  ['subscribe', 'convoy/v1/devices/pump-2/release', false],
  ['subscribe', 'convoy/v1/devices/pump-2/status', false],
  ['subscribe', 'convoy/v1/devices/pump-1/status', false],
  ['subscribe', 'convoy/v1/groups/+/release', false],
  ['subscribe', 'convoy/v1/#', false],
  ['subscribe', '#', false],
  ['subscribe', 'convoy/v1/bundles/app/releases', false],
  ['publish', 'convoy/v1/devices/pump-1/status', true],
  ['publish', 'convoy/v1/devices/pump-1/inventory', true],
  ['publish', 'convoy/v1/devices/pump-2/status', false],
  ['publish', 'convoy/v1/groups/north/release', false],
  ['publish', 'convoy/v1/devices/pump-1/release', false],
  ['publish', 'convoy/v1/bundles/app/releases', false],
  ['publish', 'convoy/v1/devices/+/status', false],
];
for (const [action, topic, allowed] of cases) {
  test(`${action} ${topic}: ${allowed ? 'allowed' : 'refused'}`, (t) => {
    const decision = decideDeviceTopic(device, action, topic);
    t.is(decision.allow, allowed);
    if (!decision.allow) t.true(decision.reason.length > 0);
  });
}

test('the Mosquitto ACL says the same: per-device patterns, group notices per device, the server reads and writes all', (t) => {
  const acl = mosquittoAcl({ serverUser: 'convoy-server', devices: [device, { deviceId: 'loner', groups: [] }] });
  t.true(acl.includes('pattern read convoy/v1/devices/%u/release\n'));
  t.true(acl.includes('pattern write convoy/v1/devices/%u/status\n'));
  t.true(acl.includes('pattern write convoy/v1/devices/%u/inventory\n'));
  t.true(acl.includes('user pump-1\ntopic read convoy/v1/groups/north/release\ntopic read convoy/v1/groups/pilot/release\n'));
  t.true(acl.includes('user convoy-server\ntopic readwrite convoy/v1/#\n'));
  t.false(acl.includes('user loner'));
  t.false(/^topic (write|readwrite) convoy\/v1\/groups/m.test(acl.split('user pump-1')[1]!), 'no device writes a notice');
});
