import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../../protocol/log.ts';
import { deviceClientId } from '../../protocol/client-ids.ts';
import { deviceStatusWildcard, maxMessageBytes, topicPrefix } from '../../protocol/messages.ts';
import type { Broker } from './broker.ts';

/**
 * The server as a client of an external broker (CONVOY_MQTT_URL=mqtts://…: Mosquitto, EMQX…),
 * instead of embedding aedes. The broker enforces the device rules (`convoy broker config
 * mosquitto` writes them from protocol/acl.ts); the server publishes notices (retained, QoS 1)
 * and reads every device's status and inventory. A message on `devices/<id>/status` is from <id>:
 * the broker's ACL lets only that device write there.
 *
 * A revoked device on an external broker: the server writes the CA's revocation list (crl.ts),
 * which Mosquitto checks at each TLS handshake once it has reread the file (SIGHUP), and ends the
 * live sessions two ways:
 * - it takes the device's client id over (MQTT 3.1.1 §3.1.4-2: the broker closes the older
 *   connection of an id that connects again): any broker, but only the id convoyd uses,
 *   `convoyd-<id>` (protocol/client-ids.ts);
 * - it asks Mosquitto's dynamic-security plugin to disable the user name (the certificate CN),
 *   which closes every session of that user whatever its client id ("disconnected by
 *   administrative action"); without the plugin the message lands on a topic nobody reads.
 * Neither stops a reconnection before the broker has reread the CRL (docs/device-install.md).
 */
/** Mosquitto 2's dynamic-security control topic (its plugin's documentation, "Control topic"). */
export const dynamicSecurityTopic = '$CONTROL/dynamic-security/v1';

export async function connectExternalBroker(options: {
  url: string;
  tls?: { cert: string; key: string; ca: string } | undefined;
  clientId: string;
  onMessage: (topic: string, payload: Buffer) => void;
  log: Logger;
}): Promise<Broker> {
  const tls = options.tls ? { ...options.tls, rejectUnauthorized: true } : {};
  /**
   * Connects once as the device's own client id, which makes the broker close the device's
   * session, and leaves at once; clean, so the device's stored subscriptions go too.
   */
  function takeOver(deviceId: string): void {
    const kicker = mqtt.connect(options.url, { clientId: deviceClientId(deviceId), clean: true, reconnectPeriod: 0, connectTimeout: 10_000, ...tls });
    kicker.once('connect', () => {
      options.log.info('closed the device’s session on the external broker', { device: deviceId });
      kicker.end();
    });
    kicker.once('error', (error) => {
      options.log.warn('could not close the device’s session on the external broker', { device: deviceId, error });
      kicker.end(true);
    });
  }
  const client: MqttClient = await mqtt.connectAsync(options.url, {
    clientId: options.clientId,
    // A persistent session: status reports sent while the server restarts wait for it (QoS 1).
    clean: false,
    reconnectPeriod: 2_000,
    connectTimeout: 10_000,
    ...tls,
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
      takeOver(deviceId);
      // The plugin knows only the users it was told of: made first (an error if it exists, which
      // is fine), then disabled. The password is never used: certificate sign-ins skip it.
      const commands = [
        { command: 'createClient', username: deviceId, password: randomBytes(24).toString('base64url') },
        { command: 'disableClient', username: deviceId },
      ];
      client.publish(dynamicSecurityTopic, JSON.stringify({ commands }), { qos: 1 }, (error) => {
        if (error) options.log.warn('could not ask the broker’s dynamic-security plugin to disable the device', { device: deviceId, error });
      });
    },
    async close() {
      await client.endAsync();
    },
  };
}
