/*
 * Fleet simulator: N devices in one process that speak Convoy's real protocol — registered over
 * HTTP, signed in to the broker with their own tokens, following their retained release notice
 * (MQTT QoS 1), reporting inventory and sequence-numbered status (QoS 1), asking the HTTP poll twin
 * when told to — but skipping the download and install. Devices can fail on purpose.
 *
 *   node --import tsx scripts/fleet-sim.ts --url http://127.0.0.1:8080 --token ADMIN --devices 100 \
 *        --group shop [--fail-rate 0.1] [--fail-while FILE] [--install-ms 500] [--attributes model=pos-x2,region=eu-west]
 *
 * `--fail-rate R` fails each attempt with probability R; `--fail-while FILE` fails every attempt
 * while FILE exists (a shop whose mirror serves corrupted files: `touch` it to break the mirror,
 * `rm` it to fix it, then `convoy deployment retry`).
 *
 * Tests and the fan-out benchmark use `startFleet` directly.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceClientId } from '../protocol/client-ids.ts';
import { deviceNotice, deviceReleaseTopic, deviceStatusTopic, type DeviceNotice, type DeviceStatus } from '../protocol/messages.ts';
import type { InventoryReport } from '../protocol/rollout.ts';

export interface SimDeviceSpec {
  id: string;
  group: string;
  attributes?: Record<string, string | number | boolean>;
}

export interface FleetOptions {
  /** Base URL of the server's HTTP API. */
  url: string;
  /** An admin token (registers the devices). */
  adminToken: string;
  /** mqtt://host:port of the broker the devices use (default: the server's, from registration). */
  mqttUrl?: string;
  devices: SimDeviceSpec[];
  /** Whether a device fails the release it is offered (decided at each attempt). */
  fails?: (deviceId: string, release: { bundle: string; version: string; deploymentId: number; attempt: number }) => boolean;
  /** Time a simulated install takes before the switch (abort before it stops the device). */
  installMs?: number;
  /** Connections opened at once (the broker and the host's sockets like batches). */
  batch?: number;
  /** Called with each notice a device receives, and when (for latency measurements). */
  onNotice?: (deviceId: string, notice: DeviceNotice, at: number) => void;
  /** Called when a device reports installed. */
  onInstalled?: (deviceId: string, release: { bundle: string; version: string }, at: number) => void;
}

export interface SimDevice {
  readonly id: string;
  readonly token: string;
  installed: { bundle: string; version: string } | null;
  /** Every state it reported, in order. */
  readonly reports: DeviceStatus[];
  readonly notices: DeviceNotice[];
  client: MqttClient | undefined;
  /** Publishes a new inventory (and remembers it for reconnects). */
  setAttributes(attributes: Record<string, string | number | boolean>): Promise<void>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

export interface Fleet {
  devices: SimDevice[];
  byId(id: string): SimDevice;
  /** Registers and connects more devices (devices joining later). */
  add(specs: SimDeviceSpec[]): Promise<SimDevice[]>;
  close(): Promise<void>;
}

export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const installMs = options.installMs ?? 0;
  const batch = options.batch ?? 100;
  const all: SimDevice[] = [];

  async function register(spec: SimDeviceSpec): Promise<{ token: string; mqttPort: number }> {
    const response = await fetch(`${options.url}/api/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: spec.id, group: spec.group }),
    });
    if (response.status !== 201) throw new Error(`registering ${spec.id} answered ${response.status}: ${await response.text()}`);
    const body = (await response.json()) as { token: string; mqtt: { port: number } };
    return { token: body.token, mqttPort: body.mqtt.port };
  }

  function makeDevice(spec: SimDeviceSpec, token: string, mqttUrl: string): SimDevice {
    let seq = 0;
    let attributes = { model: 'sim', os: 'simos-1', arch: 'x64', daemon_version: 'fleet-sim', ...spec.attributes };
    /** The release being "installed" and whether it was aborted before the switch. */
    let working: { deploymentId: number; bundle: string; version: string; attempt: number; timer?: NodeJS.Timeout } | undefined;
    const failedAttempts = new Map<number, number>();

    const device: SimDevice = {
      id: spec.id,
      token,
      installed: null,
      reports: [],
      notices: [],
      client: undefined,
      async setAttributes(next) {
        attributes = { ...attributes, ...next };
        await publishInventory();
      },
      connect,
      async disconnect() {
        clearTimeout(working?.timer);
        await device.client?.endAsync(true);
        device.client = undefined;
      },
    };

    function publish(topic: string, message: unknown): Promise<void> {
      const client = device.client;
      if (!client) return Promise.resolve();
      return client.publishAsync(topic, JSON.stringify(message), { qos: 1 }).then(() => undefined, () => undefined);
    }
    function report(state: DeviceStatus['state'], extra: Partial<DeviceStatus> = {}): Promise<void> {
      const status: DeviceStatus = {
        type: 'status',
        deviceId: spec.id,
        state,
        installed: device.installed,
        target: null,
        error: null,
        reportedAt: new Date().toISOString(),
        seq: ++seq,
        ...extra,
      };
      device.reports.push(status);
      return publish(deviceStatusTopic(spec.id), status);
    }
    function publishInventory(): Promise<void> {
      const inventory: InventoryReport = { type: 'inventory', deviceId: spec.id, seq: ++seq, attributes: { ...attributes, ...(device.installed ? { installed: `${device.installed.bundle}@${device.installed.version}` } : {}) }, reportedAt: new Date().toISOString() };
      return publish(deviceStatusTopic(spec.id), inventory);
    }

    function onNotice(notice: DeviceNotice): void {
      device.notices.push(notice);
      options.onNotice?.(spec.id, notice, Date.now());
      if (notice.type === 'abort') {
        // Not switched yet: stop and stay where it is.
        if (working && working.deploymentId === notice.deploymentId) {
          clearTimeout(working.timer);
          working = undefined;
          void report('idle', { detail: `deployment ${notice.deploymentId} aborted before the switch` });
        }
        return;
      }
      const release = { bundle: notice.bundle, version: notice.version };
      const attempt = notice.attempt ?? 0;
      if (device.installed?.bundle === release.bundle && device.installed.version === release.version) {
        void report('installed', { deploymentId: notice.deploymentId });
        return;
      }
      // A deployment it gave up on is tried again only when the operator raises the attempt.
      if ((failedAttempts.get(notice.deploymentId) ?? -1) >= attempt) return;
      if (working?.deploymentId === notice.deploymentId && working.attempt === attempt) return;
      clearTimeout(working?.timer);
      const current = { deploymentId: notice.deploymentId, ...release, attempt } as NonNullable<typeof working>;
      working = current;
      void report('downloading', { target: release, deploymentId: notice.deploymentId });
      current.timer = setTimeout(() => {
        if (working !== current) return;
        working = undefined;
        if (options.fails?.(spec.id, { ...release, deploymentId: notice.deploymentId, attempt })) {
          failedAttempts.set(notice.deploymentId, attempt);
          void report('failed', { target: release, deploymentId: notice.deploymentId, error: { code: 'untrusted_metadata', message: 'simulated failure: the mirror served a corrupted manifest' } });
          return;
        }
        device.installed = release;
        void report('installed', { deploymentId: notice.deploymentId }).then(() => publishInventory());
        options.onInstalled?.(spec.id, release, Date.now());
      }, installMs);
    }

    async function connect(): Promise<void> {
      const client = mqtt.connect(mqttUrl, { clientId: deviceClientId(spec.id), username: spec.id, password: token, clean: true, reconnectPeriod: 1000, connectTimeout: 20_000 });
      device.client = client;
      client.on('message', (topic, payload) => {
        if (topic !== deviceReleaseTopic(spec.id) || payload.length === 0) return;
        try {
          onNotice(deviceNotice.parse(JSON.parse(payload.toString('utf8'))));
        } catch {
          /* an invalid notice is dropped, as convoyd does */
        }
      });
      client.on('connect', () => {
        void client.subscribeAsync(deviceReleaseTopic(spec.id), { qos: 1 }).catch(() => undefined);
        void publishInventory().then(() => report(device.installed ? 'installed' : 'idle'));
      });
      client.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
    }
    return device;
  }

  async function add(specs: SimDeviceSpec[]): Promise<SimDevice[]> {
    const created: SimDevice[] = [];
    for (let i = 0; i < specs.length; i += batch) {
      const slice = specs.slice(i, i + batch);
      const registered = await Promise.all(slice.map(async (spec) => ({ spec, ...(await register(spec)) })));
      const devices = registered.map(({ spec, token, mqttPort }) => makeDevice(spec, token, options.mqttUrl ?? `mqtt://${new URL(options.url).hostname}:${mqttPort}`));
      await Promise.all(devices.map((d) => d.connect()));
      created.push(...devices);
    }
    all.push(...created);
    return created;
  }

  await add(options.devices);
  return {
    devices: all,
    byId(id) {
      const found = all.find((d) => d.id === id);
      if (!found) throw new Error(`no simulated device ${id}`);
      return found;
    },
    add,
    async close() {
      await Promise.all(all.map((d) => d.disconnect()));
    },
  };
}

/** `model=pos-x2,region=eu-west` → attributes (numbers and booleans as such). */
function parseAttributes(text: string | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const pair of (text ?? '').split(',').filter(Boolean)) {
    const [key, value = ''] = pair.split('=');
    out[key!] = value === 'true' ? true : value === 'false' ? false : /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.CONVOY_URL ?? 'http://127.0.0.1:8080' },
      token: { type: 'string', default: process.env.CONVOY_TOKEN },
      devices: { type: 'string', default: '10' },
      group: { type: 'string', default: 'sim' },
      prefix: { type: 'string', default: 'sim' },
      'fail-rate': { type: 'string', default: '0' },
      'fail-while': { type: 'string' },
      'install-ms': { type: 'string', default: '500' },
      attributes: { type: 'string' },
      'mqtt-url': { type: 'string' },
    },
  });
  if (!values.token) throw new Error('--token (or CONVOY_TOKEN): an admin token to register the devices');
  const failRate = Number(values['fail-rate']);
  if (!(failRate >= 0 && failRate <= 1)) throw new Error(`--fail-rate: "${values['fail-rate']}" is not a probability between 0 and 1`);
  const failWhile = values['fail-while'];
  const fleet = await startFleet({
    url: values.url!,
    adminToken: values.token,
    ...(values['mqtt-url'] ? { mqttUrl: values['mqtt-url'] } : {}),
    devices: Array.from({ length: Number(values.devices) }, (_, i) => ({ id: `${values.prefix}-${String(i + 1).padStart(5, '0')}`, group: values.group!, attributes: parseAttributes(values.attributes) })),
    installMs: Number(values['install-ms']),
    fails: () => (failWhile !== undefined && existsSync(failWhile)) || Math.random() < failRate,
    onInstalled: (id, r) => process.stdout.write(`${id} installed ${r.bundle}@${r.version}\n`),
    onNotice: (id, n) => process.stdout.write(`${id} notice ${n.type} ${n.bundle}@${n.version} (deployment ${n.deploymentId})\n`),
  });
  process.stdout.write(`${fleet.devices.length} simulated devices connected; Ctrl-C to stop\n`);
  process.on('SIGINT', () => void fleet.close().then(() => process.exit(0)));
}
