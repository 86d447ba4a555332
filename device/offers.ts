import type { IClientOptions, MqttClient } from 'mqtt';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import { deviceNotice, deviceReleaseTopic, deviceStatusTopic, maxMessageBytes, type DeviceNotice, type DeviceStatus } from '../protocol/messages.ts';
import type { InventoryReport } from '../protocol/rollout.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import type { IncomingMessage } from 'node:http';
import { readText, type GetOptions } from '../lib/http.ts';
import { isIP } from 'node:net';
import { backoffDelay } from './state.ts';

/*
 * Where offers come from: the retained notice on the device's own MQTT topic, and, while the
 * broker is unreachable, a poll of the server. MQTT is a hint, TUF is the truth: an offer only
 * names a release; the worker (daemon.ts) verifies everything before acting on it. The same MQTT
 * connection carries the device's status reports back.
 */

export interface OfferOptions {
  config: DeviceConfig;
  /** For brokers that are not mqtts:// with the device certificate; absent: an enrolled device on TLS only. */
  token: string | undefined;
  /** GET on the device API (the daemon's server pool, device/servers.ts), for the release poll. */
  get: (pathOrUrl: string, options: GetOptions) => Promise<IncomingMessage>;
  /** The device's certificate (with chain), key and the fleet root, for mqtts:// (device.json certFile, keyFile, caFile). */
  tls?: { cert: string; key: string; ca: string } | undefined;
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
  /** mqtt's connect(), passed in so the daemon loads mqtt only after READY=1 (daemon.ts). */
  connect: (url: string, options: IClientOptions) => MqttClient;
}

export interface Offers {
  /** Publishes a status or inventory report; dropped quietly while the broker is unreachable. */
  publishStatus(status: DeviceStatus | InventoryReport): void;
  /** Whether the broker connection is up now. */
  connected(): boolean;
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
  // Several brokers (device.json `servers`): the first that accepts; on loss (or a refused
  // connection), the next in the list, round and round; the backoff grows per full round.
  const brokers = config.servers.flatMap((s) => (s.mqttUrl ? [s.mqttUrl] : []));
  let broker = 0;
  let reconnects = 0;
  let disconnectedSince: number | undefined = Date.now();
  const credentialsOf = (url: string): Partial<IClientOptions> =>
    // Over mutual TLS the certificate is the credential: no token goes on the wire.
    options.tls && url.startsWith('mqtts:') ? { ...options.tls, rejectUnauthorized: true, password: undefined } : { password: token };
  /** Points the client at broker `index` for its next (re)connection. */
  const target = (index: number): Partial<IClientOptions> => {
    const url = new URL(brokers[index]!);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return { protocol: url.protocol.replace(/:$/, '') as IClientOptions['protocol'], host, hostname: host, port: Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883)), servername: isIP(host) ? undefined : host, ...credentialsOf(brokers[index]!) };
  };
  const client: MqttClient = options.connect(brokers[0]!, {
    clientId: `convoyd-${config.id}`,
    username: config.id,
    ...credentialsOf(brokers[0]!),
    clean: true,
    reconnectPeriod: Math.min(policy.retryBaseMs, 2_000),
    connectTimeout: 10_000,
    // mqtt-packet otherwise builds a cache of 65,536 two-byte Buffers (every packet id) at the
    // first write and keeps it: about 13 MiB of RSS for a client that sends a status now and then
    // (measured on the built bundle: 62.7 MiB with it, 49.2 MiB without).
    writeCache: false,
  });
  client.on('connect', () => {
    reconnects = 0;
    disconnectedSince = undefined;
    client.options.reconnectPeriod = Math.min(policy.retryBaseMs, 2_000);
    log.info('connected to the broker', { url: brokers[broker] });
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
    if (brokers.length > 1) {
      const from = brokers[broker];
      broker = (broker + 1) % brokers.length;
      Object.assign(client.options, target(broker));
      log.info('trying the next broker', { from, to: brokers[broker] });
    }
    // The delay grows once per full round over the brokers, not per broker tried.
    client.options.reconnectPeriod = backoffDelay(Math.ceil(reconnects / brokers.length), Math.min(policy.retryBaseMs, 2_000), 60_000, random());
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

  const poll = options.pollRelease ?? defaultPoll(options.get, config.id);
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
      if (!options.tls) return;
      options.tls = tls;
      if (brokers[broker]!.startsWith('mqtts:')) Object.assign(client.options, tls);
    },
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
function defaultPoll(get: OfferOptions['get'], id: string): () => Promise<DeviceNotice | null> {
  return async () => {
    // node:http, not fetch(): see lib/http.ts (undici would stay loaded, +13 MiB).
    const response = await get(`/api/v1/devices/${encodeURIComponent(id)}/release`, { timeoutMs: 30_000 });
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299 || status === 204) response.resume();
    if (status === 204 || status === 404) return null;
    if (status < 200 || status > 299) throw new Error(`the server answered ${status}`);
    const text = await readText(response, maxMessageBytes);
    return parseWith(deviceNotice, parseJson(text, 'release'), 'release');
  };
}
