import { z } from 'zod';
import { deviceId, groupName } from './names.ts';

/**
 * `device.json`, written by `convoy device add` and read by `convoyd`. The token lives in its own
 * file (mode 0600) beside it, so the config can be shown or shared without leaking a secret.
 */
export const deviceConfigSchemaId = 'convoy.device/v1';

const httpUrl = z.url({ protocol: /^https?$/ });
const mqttUrl = z.url({ protocol: /^mqtts?$/ });

export const deviceConfig = z.strictObject({
  schema: z.literal(deviceConfigSchemaId),
  id: deviceId,
  group: groupName,
  /** Base URL of the server the device trusts for metadata and blobs, e.g. http://10.0.0.5:8080 */
  serverUrl: httpUrl,
  mqttUrl,
  /** Paths are relative to the config file's directory. */
  tokenFile: z.string().min(1).default('device.token'),
  rootFile: z.string().min(1).default('root.json'),
  dataDir: z.string().min(1).default('.'),
  /** Abort a metadata request after this long, and a blob transfer when no byte arrives for this long, in seconds. */
  timeoutSeconds: z.number().positive().max(3600).default(30),
  /** How often the daemon re-checks signed metadata between updates (revocation, freeze), in seconds. */
  trustCheckSeconds: z.number().positive().max(86_400).default(600),
});
export type DeviceConfig = z.infer<typeof deviceConfig>;
export type DeviceConfigInput = z.input<typeof deviceConfig>;
