import fs from 'node:fs/promises';
import path from 'node:path';
import type { DeviceConfig } from '../protocol/device-config.ts';

/** An enrolled device's certificate (with its chain), private key and the fleet root, as PEM. */
export interface DeviceIdentity {
  cert: string;
  key: string;
  ca: string;
}

/** The enrolled device's certificate, key and fleet root, when device.json names them. */
export async function readIdentity(config: DeviceConfig, configDir: string): Promise<DeviceIdentity | undefined> {
  if (!config.certFile || !config.keyFile || !config.caFile) return undefined;
  const read = (file: string) => fs.readFile(path.resolve(configDir, file), 'utf8');
  return { cert: await read(config.certFile), key: await read(config.keyFile), ca: await read(config.caFile) };
}

/**
 * Whether some server or broker of this config is reached with the device token rather than the
 * certificate: every one when the device was not enrolled, else the plain http:// and mqtt:// ones.
 */
export function needsToken(config: DeviceConfig, enrolled: boolean): boolean {
  if (!enrolled) return true;
  return config.servers.some((s) => !s.url.startsWith('https:') || (s.mqttUrl !== undefined && !s.mqttUrl.startsWith('mqtts:')));
}

/** The token file's content; undefined when it is absent and not `required`. */
export async function readToken(file: string, required: boolean): Promise<string | undefined> {
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
