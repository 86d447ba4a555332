import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../../protocol/log.ts';
import { deviceStatusWildcard, maxMessageBytes, topicPrefix } from '../../protocol/messages.ts';
import type { Broker } from './broker.ts';

/**
 * The server as a client of an external broker (CONVOY_MQTT_URL=mqtts://…: Mosquitto, EMQX…),
 * instead of embedding aedes. The broker enforces the device rules (`convoy broker config
 * mosquitto` writes them from protocol/acl.ts); the server publishes notices (retained, QoS 1)
 * and reads every device's status and inventory. A message on `devices/<id>/status` is from <id>:
 * the broker's ACL lets only that device write there.
 *
 * What an external broker cannot do for us: close a revoked device's live session. Mosquitto
 * refuses the revoked certificate at its next connection when its `crlfile` lists it; until then
 * the session lasts (docs/device-install.md says so).
 */
export async function connectExternalBroker(options: {
  url: string;
  tls?: { cert: string; key: string; ca: string } | undefined;
  clientId: string;
  onMessage: (topic: string, payload: Buffer) => void;
  log: Logger;
}): Promise<Broker> {
  const client: MqttClient = await mqtt.connectAsync(options.url, {
    clientId: options.clientId,
    // A persistent session: status reports sent while the server restarts wait for it (QoS 1).
    clean: false,
    reconnectPeriod: 2_000,
    connectTimeout: 10_000,
    ...(options.tls ? { ...options.tls, rejectUnauthorized: true } : {}),
  });
  client.on('message', (topic, payload) => {
    if (payload.length > maxMessageBytes) return options.log.warn('dropped an oversized MQTT message', { topic, bytes: payload.length });
    options.onMessage(topic, payload);
  });
  client.on('error', (error) => options.log.warn('external MQTT broker error', { error }));
  client.on('reconnect', () => options.log.info('reconnecting to the external MQTT broker', { url: options.url }));
  await client.subscribeAsync([deviceStatusWildcard, `${topicPrefix}/devices/+/inventory`], { qos: 1 });
  options.log.info('connected to the external MQTT broker', { url: options.url });
  return {
    port: Number(new URL(options.url).port || (options.url.startsWith('mqtts:') ? 8883 : 1883)),
    mqttsPort: undefined,
    async publish(topic, payload, retain) {
      await client.publishAsync(topic, payload, { qos: 1, retain });
    },
    disconnectToken() {},
    disconnectDevice(deviceId) {
      options.log.warn('the external broker keeps a revoked device’s live session until it reconnects (list its certificate in the broker’s crlfile)', { device: deviceId });
    },
    async close() {
      await client.endAsync();
    },
  };
}
