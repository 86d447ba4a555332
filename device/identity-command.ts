import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { deviceConfig } from '../protocol/device-config.ts';
import { createLogger, parseLogLevel } from '../protocol/log.ts';
import { deviceId } from '../protocol/names.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { EnrollError, enrollDevice, renewIfDue, transportNotice } from './enroll.ts';

/**
 * `convoyd enroll` and `convoyd renew`: exit 0 done, 1 refused or failed (the message says why),
 * 2 a usage mistake. The enrollment token may come from CONVOY_ENROLLMENT_TOKEN instead of
 * --token, so it need not appear in the process list.
 */
export async function runIdentityCommand(verb: 'enroll' | 'renew', argv: string[], usage: string): Promise<number> {
  const log = createLogger({ namespace: 'device', level: parseLogLevel(process.env.CONVOY_LOG_LEVEL) ?? 'warn', write: (line) => process.stderr.write(line) });
  const fail = (message: string, code: number) => {
    process.stderr.write(`convoyd ${verb}: ${message}\n${code === 2 ? `${usage}\n` : ''}`);
    return code;
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { server: { type: 'string' }, token: { type: 'string' }, dir: { type: 'string' }, id: { type: 'string' }, 'mqtt-url': { type: 'string' }, ca: { type: 'string' }, 'ca-fingerprint': { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    return fail((error as Error).message, 2);
  }
  try {
    if (verb === 'enroll') {
      const token = values.token ?? process.env.CONVOY_ENROLLMENT_TOKEN;
      if (!values.server) return fail('--server URL is required', 2);
      if (!token) return fail('--token TOKEN (or CONVOY_ENROLLMENT_TOKEN) is required', 2);
      if (!values.dir) return fail('--dir DIR is required', 2);
      const id = values.id ?? os.hostname();
      const parsed = deviceId.safeParse(id);
      if (!parsed.success) return fail(`${values.id ? '--id' : `the host name "${id}" as device id`}: ${parsed.error.issues[0]?.message}; give --id`, 1);
      if (values.ca && values['ca-fingerprint']) return fail('give --ca FILE or --ca-fingerprint SHA256, not both', 2);
      const fingerprint = values['ca-fingerprint'];
      if (fingerprint !== undefined && !/^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/.test(fingerprint)) return fail('--ca-fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons allowed', 2);
      if ((values.ca || fingerprint) && !values.server.startsWith('https:')) return fail(`--ca and --ca-fingerprint pin a TLS certificate: --server must be an https:// URL`, 2);
      const ca = values.ca ? await fs.readFile(values.ca, 'utf8').catch((error: Error) => { throw new EnrollError(`cannot read --ca ${values.ca}: ${error.message}`); }) : undefined;
      if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) return fail(`--ca ${values.ca} holds no PEM certificate`, 1);
      const notice = transportNotice(values.server, { ca, caFingerprint: fingerprint });
      if (notice) process.stderr.write(`convoyd enroll: ${notice}\n`);
      const result = await enrollDevice({ serverUrl: values.server, token, dir: values.dir, deviceId: parsed.data, ...(values['mqtt-url'] ? { mqttUrl: values['mqtt-url'] } : {}), ca, caFingerprint: fingerprint, log });
      const config = path.join(path.resolve(values.dir), 'device.json');
      process.stdout.write(`enrolled device ${result.device.id} in group ${result.device.group}; start it with: convoyd --config ${config}\n`);
      return 0;
    }
    if (!values.config) return fail('--config <dir>/device.json is required', 2);
    const configPath = path.resolve(values.config);
    const config = parseWith(deviceConfig, parseJson(await fs.readFile(configPath, 'utf8'), 'device config'), 'device config');
    if (!config.certFile) return fail(`${configPath} names no certificate (certFile): this device was not enrolled`, 1);
    const renewed = await renewIfDue({ config, configDir: path.dirname(configPath), now: new Date(), log, force: values.force === true });
    process.stdout.write(renewed ? `renewed: the certificate is valid until ${renewed.toISOString()}\n` : 'not due: the certificate is renewed after two thirds of its lifetime (--force renews now)\n');
    return 0;
  } catch (error) {
    if (error instanceof EnrollError) return fail(error.message, 1);
    return fail((error as Error).message, 1);
  }
}
