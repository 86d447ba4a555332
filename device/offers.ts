import mqtt, { type MqttClient } from 'mqtt';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import { deviceStatusTopic, groupReleaseTopic, maxMessageBytes, releaseNotice, type DeviceStatus, type ReleaseNotice } from '../protocol/messages.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { backoffDelay } from './state.ts';

/*
 * Where offers come from: the retained release notice on the group's MQTT topic, and, while the
 * broker is unreachable, a poll of the server. MQTT is a hint, TUF is the truth: an offer only
 * names a release; the worker (daemon.ts) verifies everything before acting on it. The same MQTT
 * connection carries the device's status reports back.
 */

export interface OfferOptions {
  config: DeviceConfig;
  token: string;
  /** The device's certificate (with chain), key and the fleet root, for mqtts:// (device.json certFile, keyFile, caFile). */
  tls?: { cert: string; key: string; ca: string } | undefined;
  log: Logger;
  random: () => number;
  /** Asks the server which release the device's group should run (default: GET .../release). */
  pollRelease?: (() => Promise<ReleaseNotice | null>) | undefined;
  /** A notice or a poll answer. Throws when the offer is not for this device (it is dropped). */
  onOffer: (notice: ReleaseNotice) => void;
  /** After each poll: a waiting update (a retry backoff) is worth trying again now. */
  onPolled: () => void;
  /** Connected (again) to the broker: a good time to report the current status. */
  onConnect: () => void;
}

export interface Offers {
  /** Publishes a status report; dropped quietly while the broker is unreachable. */
  publishStatus(status: DeviceStatus): void;
  /** Stops polling (first, so no offer arrives while the worker winds down). */
  stopPolling(): void;
  /** A renewed certificate: used from the next (re)connection on. */
  updateTls(tls: { cert: string; key: string; ca: string }): void;
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
    // Over mutual TLS the certificate is the credential: no token goes on the wire.
    ...(options.tls && config.mqttUrl.startsWith('mqtts:') ? { ...options.tls, rejectUnauthorized: true } : { password: token }),
    clean: true,
    reconnectPeriod: Math.min(policy.retryBaseMs, 2_000),
    connectTimeout: 10_000,
  });
  client.on('connect', () => {
    reconnects = 0;
    disconnectedSince = undefined;
    client.options.reconnectPeriod = Math.min(policy.retryBaseMs, 2_000);
    log.info('connected to the broker', { url: config.mqttUrl });
    client.subscribe(groupReleaseTopic(config.group), { qos: 1 }, (error, granted) => {
      if (error || granted?.some((g) => g.qos === 128)) log.error('subscription refused', { topic: groupReleaseTopic(config.group) });
      else log.info('subscribed to release notices', { topic: groupReleaseTopic(config.group) });
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
    if (topic !== groupReleaseTopic(config.group)) return;
    if (payload.length === 0) return; // a cleared retained notice
    try {
      if (payload.length > maxMessageBytes) throw new Error(`notice of ${payload.length} bytes is over the limit`);
      options.onOffer(parseWith(releaseNotice, parseJson(payload.toString('utf8'), 'release notice'), 'release notice'));
    } catch (error) {
      log.warn('dropped an invalid release notice', { topic, error });
    }
  });

  const poll = options.pollRelease ?? defaultPoll(config.serverUrl, token, config.group);
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
    updateTls(tls) {
      if (options.tls && config.mqttUrl.startsWith('mqtts:')) Object.assign(client.options, tls);
    },
    publishStatus(status) {
      if (!client.connected) return;
      client.publish(deviceStatusTopic(config.id), JSON.stringify(status), { qos: 1 }, (error) => {
        if (error) log.debug('status report not sent', { error });
      });
    },
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
 * Asks the server for the group's current release. The route is the device's pull-side twin of
 * the retained MQTT notice; a server without it (404) is simply not polled successfully.
 */
function defaultPoll(serverUrl: string, token: string, group: string): () => Promise<ReleaseNotice | null> {
  return async () => {
    const response = await fetch(`${serverUrl}/api/v1/groups/${encodeURIComponent(group)}/release`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status === 204 || response.status === 404) return null;
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const text = await response.text();
    if (text.length > maxMessageBytes) throw new Error('the release answer is over the size limit');
    return parseWith(releaseNotice, parseJson(text, 'release'), 'release');
  };
}
