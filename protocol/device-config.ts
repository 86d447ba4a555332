import * as z from 'zod';
import { deviceId, groupName } from './names.ts';

/**
 * `device.json`, written by `convoy device add` and read by `convoyd`. The token lives in its own
 * file (mode 0600) beside it, so the config can be shown or shared without leaking a secret.
 */
export const deviceConfigSchemaId = 'convoy.device/v1';

const command = z.array(z.string().min(1).max(4096)).min(1).max(64);
const clock = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, 'must be HH:MM, 24-hour local time');

/**
 * The update behaviour of `convoyd`. Every field has a default, so a device.json written by the
 * skeleton stays valid. Times are in milliseconds, sizes in bytes, unless named otherwise.
 */
export const updatePolicy = z.strictObject({
  /** A transfer with no byte for this long is treated as a half-open connection: reconnect, resume. */
  stallTimeoutMs: z.number().int().min(100).default(30_000),
  /** First retry delay after a transient failure; doubles (with jitter) up to retryMaxMs. */
  retryBaseMs: z.number().int().min(10).default(5_000),
  retryMaxMs: z.number().int().min(10).default(5 * 60_000),
  /** While the broker is unreachable, ask the server for the group's release this often (jittered). */
  pollIntervalMs: z.number().int().min(100).default(15 * 60_000),
  /** Download speed cap in bytes per second; 0 means no cap. */
  bandwidthLimit: z.number().int().nonnegative().default(0),
  /**
   * A download's `.part` file is fsynced after this many new bytes, or after downloadSyncMs with
   * unsynced bytes, whichever comes first: a power cut loses at most that much of the transfer.
   */
  downloadSyncBytes: z.number().int().min(1024 * 1024).default(64 * 1024 * 1024),
  downloadSyncMs: z.number().int().min(100).default(10_000),
  /** Stage and switch only inside this local-time window (downloads run any time); null: any time. */
  installWindow: z.strictObject({ start: clock, end: clock }).nullable().default(null),
  /** The update lock (docs/device-install.md): while it is held, the switch waits. Relative to dataDir. */
  lockFile: z.string().min(1).default('update.lock'),
  /** Previous releases kept on disk after a commit, for rollback and quick downgrade. */
  keepSlots: z.number().int().min(0).max(10).default(1),
  /** Free bytes that must remain on the data file system after download and staging. */
  reserveBytes: z.number().int().nonnegative().default(16 * 1024 * 1024),
  /** Run after the switch; exit 0 means healthy. Runs in dataDir with CONVOY_* variables set. */
  healthCheck: z
    .strictObject({
      command,
      timeoutMs: z.number().int().min(10).default(60_000),
      /** Extra attempts after a failed one, `intervalMs` apart. */
      retries: z.number().int().min(0).max(100).default(2),
      intervalMs: z.number().int().min(0).default(5_000),
    })
    .nullable()
    .default(null),
  /** Directory of state hooks (`Download_Enter`, `Install_Leave`, …); relative to the config file. */
  hooksDir: z.string().min(1).nullable().default(null),
  hookTimeoutMs: z.number().int().min(10).default(60_000),
  /** Command templates of the command-driven update modules; `{file}`, `{slot}`, `{name}` are substituted. */
  modules: z
    .strictObject({ image: command.optional(), package: command.optional() })
    .default({}),
});
export type UpdatePolicy = z.infer<typeof updatePolicy>;

const httpUrl = z.url({ protocol: /^https?$/ });
const mqttUrl = z.url({ protocol: /^mqtts?$/ });

/**
 * One server a device may talk to: its device API (metadata, blobs, the release poll) and,
 * optionally, its MQTT broker. An edge and the origin speak the same device API.
 */
export const deviceServer = z.strictObject({
  /** Base URL of the device API, e.g. https://edge-berlin.example.com:8443 */
  url: httpUrl,
  /** Its broker, e.g. mqtts://edge-berlin.example.com:8883; absent: this server is used for HTTP only. */
  mqttUrl: mqttUrl.optional(),
});
export type DeviceServer = z.infer<typeof deviceServer>;

/** Servers a device.json may list (an edge or two and the origin is the usual case). */
export const maxDeviceServers = 8;

const deviceConfigObject = z.strictObject({
  schema: z.literal(deviceConfigSchemaId),
  id: deviceId,
  group: groupName,
  /**
   * The one-server form: base URL of the server the device trusts for metadata and blobs (e.g.
   * http://10.0.0.5:8080) and its broker. Give these, or `servers`, not both.
   */
  serverUrl: httpUrl.optional(),
  mqttUrl: mqttUrl.optional(),
  /**
   * The several-servers form, in order of preference (docs/device-install.md, "Several servers"):
   * each request goes to the server that last answered, the next one in the list when it fails
   * (connection refused, timeout, 5xx); the first one is tried again after `failbackSeconds`.
   * The broker is the first that accepts; on loss, the next.
   */
  servers: z.array(deviceServer).min(1).max(maxDeviceServers).optional(),
  /** After moving off the first (preferred) server, try it again after this long, in seconds. */
  failbackSeconds: z.number().positive().max(86_400).default(300),
  /** Paths are relative to the config file's directory. */
  tokenFile: z.string().min(1).default('device.token'),
  rootFile: z.string().min(1).default('root.json'),
  /**
   * The device's identity from `convoyd enroll` (docs/device-install.md): its certificate (with
   * the CA chain after it), its private key (0600, made on the device) and the fleet's root
   * certificate. Absent for devices registered with `convoy device add`.
   */
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  caFile: z.string().min(1).optional(),
  dataDir: z.string().min(1).default('.'),
  /** Abort a metadata request after this long, and a blob transfer when no byte arrives for this long, in seconds. */
  timeoutSeconds: z.number().positive().max(3600).default(30),
  /** How often the daemon re-checks signed metadata between updates (revocation, freeze), in seconds. */
  trustCheckSeconds: z.number().positive().max(86_400).default(600),
  update: updatePolicy.default(() => updatePolicy.parse({})),
  /**
   * Inventory the device reports (issue #10 item 4): `attributes` are fixed values (region, shop),
   * `command` prints `key=value` lines (custom facts); both merge over what convoyd detects.
   */
  inventory: z
    .strictObject({
      attributes: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/), z.union([z.string().max(256), z.number(), z.boolean()])).default({}),
      command: command.optional(),
      /** How often the inventory is collected again (a change is reported), in seconds. */
      intervalSeconds: z.number().positive().max(86_400).default(3600),
    })
    .default(() => ({ attributes: {}, intervalSeconds: 3600 })),
});

/**
 * device.json, with both forms read into one: `servers` always holds the list (the one-server
 * form makes a list of one), `serverUrl` and `mqttUrl` name the preferred server and broker.
 */
export const deviceConfig = deviceConfigObject
  .superRefine((config, ctx) => {
    if (config.servers) {
      if (config.serverUrl !== undefined || config.mqttUrl !== undefined) ctx.addIssue({ code: 'custom', path: ['servers'], message: 'give either serverUrl and mqttUrl, or servers, not both' });
      else if (!config.servers.some((s) => s.mqttUrl)) ctx.addIssue({ code: 'custom', path: ['servers'], message: 'at least one server needs an mqttUrl' });
      return;
    }
    if (config.serverUrl === undefined) ctx.addIssue({ code: 'custom', path: ['serverUrl'], message: 'required (or list servers)' });
    if (config.mqttUrl === undefined) ctx.addIssue({ code: 'custom', path: ['mqttUrl'], message: 'required (or list servers)' });
  })
  .transform((config) => {
    // Base URLs without a trailing slash: paths are appended to them.
    const servers: DeviceServer[] = (config.servers ?? [{ url: config.serverUrl!, mqttUrl: config.mqttUrl! }]).map((s) => ({ ...s, url: s.url.replace(/\/+$/, '') }));
    return { ...config, servers, serverUrl: servers[0]!.url, mqttUrl: servers.find((s) => s.mqttUrl)!.mqttUrl! };
  });
export type DeviceConfig = z.output<typeof deviceConfig>;
export type DeviceConfigInput = z.input<typeof deviceConfig>;
