import test from 'ava';
import { ConfigError, loadServerConfig } from '../../server/config.ts';

test('defaults give a working embedded setup', (t) => {
  const config = loadServerConfig({}, '/srv');
  t.like(config, { dataDir: '/srv/data', httpPort: 8080, mqttPort: 1883, databaseUrl: undefined, adminToken: undefined, anonymousTufRead: false });
});

const bad: [string, Record<string, string>, RegExp][] = [
  ['port out of range', { CONVOY_HTTP_PORT: '70000' }, /^CONVOY_HTTP_PORT must be a port number/],
  ['port not a number', { CONVOY_MQTT_PORT: 'abc' }, /^CONVOY_MQTT_PORT must be a port number/],
  ['database not postgres', { CONVOY_DATABASE_URL: 'mysql://x' }, /^CONVOY_DATABASE_URL must be a postgres:\/\/ URL/],
  ['short admin token', { CONVOY_ADMIN_TOKEN: 'short' }, /^CONVOY_ADMIN_TOKEN must be at least 16 characters/],
  ['bad boolean', { CONVOY_ANONYMOUS_TUF_READ: 'yes' }, /^CONVOY_ANONYMOUS_TUF_READ must be true or false/],
  ['bad log level', { CONVOY_LOG_LEVEL: 'loud' }, /^CONVOY_LOG_LEVEL must be/],
  ['bad blob limit', { CONVOY_MAX_BLOB_BYTES: '-1' }, /^CONVOY_MAX_BLOB_BYTES must be a positive whole number/],
];

for (const [title, env, message] of bad) {
  test(`a bad setting names its variable: ${title}`, (t) => {
    const error = t.throws(() => loadServerConfig(env), { instanceOf: ConfigError });
    t.regex(error!.message, message);
  });
}
