import test from 'ava';
import { ConfigError, loadServerConfig } from '../../server/config.ts';

/* The device-identity variables, validated at start with the variable named. */

test('CONVOY_PKI_DIR, CONVOY_MQTTS_PORT, CONVOY_HTTPS_PORT and CONVOY_MQTT_URL are read and checked', (t) => {
  const config = loadServerConfig({ CONVOY_PKI_DIR: 'pki', CONVOY_MQTTS_PORT: '8883', CONVOY_HTTPS_PORT: '8443' }, '/srv');
  t.like(config, { pkiDir: '/srv/pki', mqttsPort: 8883, httpsPort: 8443 });
  t.is(loadServerConfig({ CONVOY_PKI_DIR: '/p', CONVOY_MQTT_URL: 'mqtts://broker:8883' }).mqttUrl, 'mqtts://broker:8883');
  t.regex(t.throws(() => loadServerConfig({ CONVOY_MQTTS_PORT: 'x' }), { instanceOf: ConfigError })!.message, /CONVOY_MQTTS_PORT/);
  t.regex(t.throws(() => loadServerConfig({ CONVOY_MQTT_URL: 'http://broker' }), { instanceOf: ConfigError })!.message, /CONVOY_MQTT_URL must be an mqtt/);
  t.regex(t.throws(() => loadServerConfig({ CONVOY_MQTT_URL: 'mqtts://broker' }), { instanceOf: ConfigError })!.message, /needs CONVOY_PKI_DIR/);
});
