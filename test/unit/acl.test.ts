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

test('the Mosquitto ACL says the same for any fleet: per-device patterns, no device or group named, the server reads and writes all', (t) => {
  const acl = mosquittoAcl({ serverUser: 'convoy-server' });
  t.true(acl.includes('pattern read convoy/v1/devices/%u/release\n'));
  t.true(acl.includes('pattern write convoy/v1/devices/%u/status\n'));
  t.true(acl.includes('pattern write convoy/v1/devices/%u/inventory\n'));
  t.true(acl.includes('user convoy-server\ntopic readwrite convoy/v1/#\ntopic readwrite $CONTROL/dynamic-security/#\n'));
  // Static: nothing goes stale when a device moves or a group is made (no per-device user blocks).
  const rules = acl.split('\n').filter((line) => line && !line.startsWith('#'));
  t.deepEqual(rules.filter((line) => line.startsWith('user ')), ['user convoy-server']);
  t.false(rules.some((line) => line.includes('/groups/') && !line.startsWith('topic readwrite convoy/v1/#')), 'no group line');
  t.false(rules.some((line) => /^pattern (write|readwrite) .*release/.test(line)), 'no device writes a notice');
});
