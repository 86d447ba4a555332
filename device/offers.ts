import mqtt, { type MqttClient } from 'mqtt';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import { deviceNotice, deviceReleaseTopic, deviceStatusTopic, maxMessageBytes, type DeviceNotice, type DeviceStatus } from '../protocol/messages.ts';
import type { InventoryReport } from '../protocol/rollout.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { backoffDelay } from './state.ts';

/*
 * Where offers come from: the retained notice on the device's own MQTT topic, and, while the
 * broker is unreachable, a poll of the server. MQTT is a hint, TUF is the truth: an offer only
 * names a release; the worker (daemon.ts) verifies everything before acting on it. The same MQTT
 * connection carries the device's status reports back.
 */

export interface OfferOptions {
  config: DeviceConfig;
  token: string;
  log: Logger;
  random: () => number;
  /** Asks the server which release this device should run (default: GET /api/v1/devices/:id/release). */
  pollRelease?: (() => Promise<DeviceNotice | null>) | undefined;
  /** A notice or a poll answer. Throws when the offer is not for this device (it is dropped). */
  onOffer: (notice: DeviceNotice) => void;
  /** After each poll: a waiting update (a retry backoff) is worth trying again now. */
  onPolled: () => void;
  /** Connected (again) to the broker: a good time to report the current status. */
  onConnect: () => void;
}

export interface Offers {
  /** Publishes a status or inventory report; dropped quietly while the broker is unreachable. */
  publishStatus(status: DeviceStatus | InventoryReport): void;
  /** Whether the broker connection is up now. */
  connected(): boolean;
  /** Stops polling (first, so no offer arrives while the worker winds down). */
  stopPolling(): void;
  /** Closes the MQTT connection. */
  close(): Promise<void>;
}

export function startOffers(options: OfferOptions): Offers {
  const { config, token, log, random } = options;
  const policy = config.update;

  // MQTT, with reconnects backing off (and jittered) so a fleet does not hammer a broker that
  // just came back. While it is down, the server is polled: no release is missed.
  let reconnects = 0;
  let disconnectedSince: number | undefined = Date.now();
  const client: MqttClient = mqtt.connect(config.mqttUrl, {
    clientId: `convoyd-${config.id}`,
    username: config.id,
    password: token,
    clean: true,
    reconnectPeriod: Math.min(policy.retryBaseMs, 2_000),
    connectTimeout: 10_000,
  });
  client.on('connect', () => {
    reconnects = 0;
    disconnectedSince = undefined;
    client.options.reconnectPeriod = Math.min(policy.retryBaseMs, 2_000);
    log.info('connected to the broker', { url: config.mqttUrl });
    // The device's own topic: phases, several groups and aborts make "what should I run" per device.
    client.subscribe(deviceReleaseTopic(config.id), { qos: 1 }, (error, granted) => {
      if (error || granted?.some((g) => g.qos === 128)) log.error('subscription refused', { topic: deviceReleaseTopic(config.id) });
      else log.info('subscribed to release notices', { topic: deviceReleaseTopic(config.id) });
    });
    options.onConnect();
  });
  client.on('close', () => {
    disconnectedSince ??= Date.now();
    reconnects++;
    client.options.reconnectPeriod = backoffDelay(reconnects, Math.min(policy.retryBaseMs, 2_000), 60_000, random());
  });
  client.on('error', (error) => log.warn('MQTT error', { error: error.message }));
  client.on('message', (topic, payload) => {
    if (topic !== deviceReleaseTopic(config.id)) return;
    if (payload.length === 0) return; // a cleared retained notice
    try {
      if (payload.length > maxMessageBytes) throw new Error(`notice of ${payload.length} bytes is over the limit`);
      options.onOffer(parseWith(deviceNotice, parseJson(payload.toString('utf8'), 'release notice'), 'release notice'));
    } catch (error) {
      log.warn('dropped an invalid release notice', { topic, error });
    }
  });

  const poll = options.pollRelease ?? defaultPoll(config.serverUrl, token, config.id);
  let polling = true;
  let pollTimer: NodeJS.Timeout | undefined;
  const schedulePoll = () => {
    pollTimer = setTimeout(async () => {
      if (disconnectedSince !== undefined && Date.now() - disconnectedSince >= policy.pollIntervalMs / 2) {
        try {
          const notice = await poll();
          if (notice) options.onOffer(notice);
        } catch (error) {
          log.warn('polling the server failed', { error: (error as Error).message });
        }
        options.onPolled();
      }
      if (polling) schedulePoll();
    }, backoffDelay(0, policy.pollIntervalMs, policy.pollIntervalMs, random()));
  };
  schedulePoll();

  return {
    publishStatus(status) {
      if (!client.connected) return;
      client.publish(deviceStatusTopic(config.id), JSON.stringify(status), { qos: 1 }, (error) => {
        if (error) log.debug('status report not sent', { error });
      });
    },
    connected: () => client.connected,
    stopPolling() {
      polling = false;
      clearTimeout(pollTimer);
    },
    async close() {
      await client.endAsync(true);
    },
  };
}

/**
 * Asks the server what this device should run. The route is the device's pull-side twin of its
 * retained MQTT notice; a server without it (404) is simply not polled successfully.
 */
function defaultPoll(serverUrl: string, token: string, id: string): () => Promise<DeviceNotice | null> {
  return async () => {
    const response = await fetch(`${serverUrl}/api/v1/devices/${encodeURIComponent(id)}/release`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status === 204 || response.status === 404) return null;
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const text = await response.text();
    if (text.length > maxMessageBytes) throw new Error('the release answer is over the size limit');
    return parseWith(deviceNotice, parseJson(text, 'release'), 'release');
  };
}
