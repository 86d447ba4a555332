import fs from 'node:fs/promises';
import path from 'node:path';
import { deviceRegistration } from '../../protocol/api.ts';
import { deviceConfigSchemaId, type DeviceConfigInput } from '../../protocol/device-config.ts';
import { deviceId, groupName } from '../../protocol/names.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import { command, json, need, needText, type Command } from '../command.ts';
import { printJsonOr } from '../output.ts';
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
  // device list | show | move | decommission
  ...rolloutCommandsOf('device'),
};
