import fs from 'node:fs/promises';
import path from 'node:path';
import { deviceRegistration } from '../../protocol/api.ts';
import { deviceConfigSchemaId, type DeviceConfigInput } from '../../protocol/device-config.ts';
import { deviceId, groupName } from '../../protocol/names.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import { command, enc, json, need, needText, type Command } from '../command.ts';
import { deviceRevocation, enrollmentToken, enrollmentTokenList, enrollmentTokenRevocation, maxEnrollmentTtlSeconds, parseDuration } from '../../protocol/enrollment.ts';
import { CliError, UsageError } from '../client.ts';
import { printJsonOr, printList } from '../output.ts';
import { rolloutCommandsOf } from './rollouts.ts';

/* `convoy device …`: registering devices (their configuration written for convoyd) and the fleet's state. */

export const commands: Record<string, Command> = {
  'device add': command({
    usage: 'convoy device add --id ID --group GROUP --out DIR [--mqtt-url mqtt://HOST:PORT] [--json]',
    options: { id: { type: 'string' }, group: { type: 'string' }, out: { type: 'string' }, 'mqtt-url': { type: 'string' }, ...json },
    async run({ flags, api }) {
      const id = need(deviceId, flags.id, '--id');
      const group = need(groupName, flags.group, '--group');
      const out = path.resolve(needText(flags.out, '--out DIR', 'where to write the device configuration'));
      const client = api();
      const registration = await client.request('POST', '/api/v1/devices', { json: { id, group }, schema: deviceRegistration });
      const mqttUrl = typeof flags['mqtt-url'] === 'string' ? flags['mqtt-url'] : `mqtt://${new URL(client.baseUrl).hostname}:${registration.mqtt.port}`;
      const config: DeviceConfigInput = { schema: deviceConfigSchemaId, id, group, serverUrl: client.baseUrl, mqttUrl, tokenFile: 'device.token', rootFile: 'root.json', dataDir: '.' };
      await fs.mkdir(out, { recursive: true });
      await writeFileAtomic(path.join(out, 'device.token'), registration.token + '\n', 0o600);
      await writeFileAtomic(path.join(out, 'root.json'), JSON.stringify(registration.root, null, 2) + '\n');
      await writeFileAtomic(path.join(out, 'device.json'), JSON.stringify(config, null, 2) + '\n');
      printJsonOr(registration.device, flags.json === true, `registered device ${id} in group ${group}; start it with: convoyd --config ${path.join(out, 'device.json')}`);
    },
  }),
  'device token': command({
    usage: 'convoy device token (--group GROUP | --device ID) --ttl 1h [--uses N] [--json]',
    options: { group: { type: 'string' }, device: { type: 'string' }, ttl: { type: 'string' }, uses: { type: 'string' }, ...json },
    async run({ flags, api }) {
      if ((flags.group === undefined) === (flags.device === undefined)) throw new UsageError('give --group GROUP (devices joining it) or --device ID (one device enrolling again)');
      const target = flags.group !== undefined ? { group: need(groupName, flags.group, '--group') } : { device: need(deviceId, flags.device, '--device') };
      const ttlSeconds = parseDuration(needText(flags.ttl, '--ttl', 'how long the token may be used, e.g. 1h'));
      if (ttlSeconds === undefined || ttlSeconds < 60 || ttlSeconds > maxEnrollmentTtlSeconds) throw new CliError(`--ttl must be a duration from 1m to 7d such as 30m, 1h or 2d, got "${flags.ttl}"`);
      const uses = flags.uses === undefined ? 1 : /^[1-9][0-9]{0,4}$/.test(flags.uses) ? Number(flags.uses) : NaN;
      if (!Number.isInteger(uses) || uses > 10_000) throw new CliError(`--uses must be a whole number from 1 to 10000, got "${flags.uses}"`);
      const created = await api().request('POST', '/api/v1/enrollment-tokens', { json: { ...target, ttlSeconds, uses }, schema: enrollmentToken });
      const what = created.group ? `${uses} device${uses > 1 ? 's' : ''} to join group ${created.group}` : `device ${created.device} to enroll again`;
      printJsonOr(created, flags.json === true, `${created.token}\n\nlets ${what} until ${created.expiresAt} (shown once; on each device: convoyd enroll --server URL --token TOKEN --dir DIR)`);
    },
  }),
  'device token list': command({
    usage: 'convoy device token list [--group GROUP] [--json]   (live tokens: uses left, expiry, who made it; never the secret)',
    options: { group: { type: 'string' }, ...json },
    async run({ flags, api }) {
      const group = flags.group === undefined ? undefined : need(groupName, flags.group, '--group');
      const path = group === undefined ? '/api/v1/enrollment-tokens' : `/api/v1/enrollment-tokens?group=${enc(group)}`;
      const { tokens } = await api().request('GET', path, { schema: enrollmentTokenList });
      printList(
        tokens,
        [
          { header: 'ID', value: (t) => String(t.id) },
          { header: 'FOR', value: (t) => (t.group !== null ? `group ${t.group}` : `device ${t.device}`) },
          { header: 'USES LEFT', value: (t) => `${t.usesLeft}/${t.uses}` },
          { header: 'EXPIRES', value: (t) => t.expiresAt },
          { header: 'MADE BY', value: (t) => `${t.createdBy} at ${t.createdAt}` },
        ],
        flags.json === true,
      );
    },
  }),
  'device token revoke': command({
    usage: 'convoy device token revoke ID [--json]   (nobody enrolls with it from now on)',
    options: { ...json },
    async run({ positionals, flags, api }) {
      const id = positionals[0];
      if (id === undefined || !/^[1-9][0-9]{0,14}$/.test(id)) throw new UsageError('give the token ID (convoy device token list shows it)');
      const revoked = await api().request('DELETE', `/api/v1/enrollment-tokens/${id}`, { schema: enrollmentTokenRevocation });
      printJsonOr(revoked, flags.json === true, `revoked enrollment token ${revoked.id} (at ${revoked.revokedAt}): nobody enrolls with it from now on`);
    },
  }),
  'device revoke': command({
    usage: 'convoy device revoke ID [--json]',
    options: { ...json },
    async run({ positionals, flags, api }) {
      const id = need(deviceId, positionals[0], 'ID');
      const revoked = await api().request('POST', `/api/v1/devices/${enc(id)}/revoke`, { schema: deviceRevocation });
      printJsonOr(revoked, flags.json === true, `revoked device ${id}: ${revoked.certificates} certificate(s) and ${revoked.tokens} token(s) stop working now; its MQTT sessions were closed`);
    },
  }),
  // device list | show | move | decommission
  ...rolloutCommandsOf('device'),
};
