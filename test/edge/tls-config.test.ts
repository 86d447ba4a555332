import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { ConfigError } from '../../server/config.ts';
import { loadEdgeConfig, parseTlsNames } from '../../server/edge/config.ts';
import { needsCertificate } from '../../server/edge/tls.ts';
import { createRootCa, createServerCertificate } from '../../certs/pki.ts';
import { convoy } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/server.ts';

/* The edge's HTTPS settings (CONVOY_HTTPS_PORT, CONVOY_EDGE_TLS_NAMES) and when it asks for a certificate. */

test('CONVOY_EDGE_TLS_NAMES: dns: and ip: prefixes, bare names sorted by kind; a bad one is named', (t) => {
  t.deepEqual(parseTlsNames('dns:edge.shop.example,ip:10.0.0.5'), { dns: ['edge.shop.example'], ip: ['10.0.0.5'] });
  t.deepEqual(parseTlsNames(' localhost , 127.0.0.1, ::1 '), { dns: ['localhost'], ip: ['127.0.0.1', '::1'] });
  for (const bad of ['ip:edge.example', 'dns:bad name', '', ',']) t.throws(() => parseTlsNames(bad), { instanceOf: ConfigError, message: /CONVOY_EDGE_TLS_NAMES/ }, bad);
});

test('an edge with CONVOY_HTTPS_PORT needs CONVOY_EDGE_TLS_NAMES, and the names need the port', async (t) => {
  const dir = await makeTempDir('convoy-edge-config-');
  const root = path.join(dir, 'root.json');
  await fs.writeFile(root, JSON.stringify({ signed: { _type: 'root' } }));
  const base = { CONVOY_UPSTREAM_URL: 'https://origin.example', CONVOY_EDGE_TOKEN: 'cvye_x', CONVOY_UPSTREAM_ROOT: root };
  t.like(loadEdgeConfig(base, dir), { httpsPort: undefined, tlsNames: undefined });
  t.like(loadEdgeConfig({ ...base, CONVOY_HTTPS_PORT: '8443', CONVOY_EDGE_TLS_NAMES: 'dns:edge.shop.example' }, dir), { httpsPort: 8443, tlsNames: { dns: ['edge.shop.example'], ip: [] } });
  t.throws(() => loadEdgeConfig({ ...base, CONVOY_HTTPS_PORT: '8443' }, dir), { instanceOf: ConfigError, message: /CONVOY_EDGE_TLS_NAMES/ });
  t.throws(() => loadEdgeConfig({ ...base, CONVOY_EDGE_TLS_NAMES: 'localhost' }, dir), { instanceOf: ConfigError, message: /CONVOY_HTTPS_PORT/ });
  t.throws(() => loadEdgeConfig({ ...base, CONVOY_HTTPS_PORT: 'x', CONVOY_EDGE_TLS_NAMES: 'localhost' }, dir), { instanceOf: ConfigError, message: /CONVOY_HTTPS_PORT/ });
  // MQTT over TLS uses the same certificate, so the same names; alone or with HTTPS.
  t.like(loadEdgeConfig({ ...base, CONVOY_MQTTS_PORT: '8883', CONVOY_EDGE_TLS_NAMES: 'localhost' }, dir), { mqttsPort: 8883, httpsPort: undefined, tlsNames: { dns: ['localhost'], ip: [] } });
  t.like(loadEdgeConfig({ ...base, CONVOY_MQTTS_PORT: '8883', CONVOY_HTTPS_PORT: '8443', CONVOY_EDGE_TLS_NAMES: 'localhost' }, dir), { mqttsPort: 8883, httpsPort: 8443 });
  t.throws(() => loadEdgeConfig({ ...base, CONVOY_MQTTS_PORT: '8883' }, dir), { instanceOf: ConfigError, message: /CONVOY_MQTTS_PORT on an edge needs CONVOY_EDGE_TLS_NAMES/ });
  t.throws(() => loadEdgeConfig({ ...base, CONVOY_MQTTS_PORT: 'x', CONVOY_EDGE_TLS_NAMES: 'localhost' }, dir), { instanceOf: ConfigError, message: /CONVOY_MQTTS_PORT/ });
  t.like(loadEdgeConfig({ ...base, CONVOY_EDGE_SESSION_CHECK_MS: '250' }, dir), { sessionCheckMs: 250 });
  await fs.rm(dir, { recursive: true, force: true });
});

test('the edge asks for a certificate when it has none, when its names changed, and at two thirds of its life', (t) => {
  const now = new Date('2026-01-01T00:00:00Z');
  const ca = createRootCa({ name: 'Fleet', now });
  const names = { dns: ['edge.shop.example'], ip: [] };
  const { certPem } = createServerCertificate({ issuer: ca, dns: names.dns, ip: [], now, days: 30 });
  const at = (days: number) => new Date(now.getTime() + days * 86_400_000);
  t.true(needsCertificate({}, names, now));
  t.false(needsCertificate({ certPem, names: JSON.stringify(names) }, names, at(19)));
  t.true(needsCertificate({ certPem, names: JSON.stringify(names) }, names, at(21)), 'due at two thirds of 30 days');
  t.true(needsCertificate({ certPem, names: JSON.stringify(names) }, { dns: ['edge.shop.example'], ip: ['10.0.0.5'] }, at(1)), 'a new name asks again');
});

test('convoy serve --mode edge --https-port without --tls-names refuses to start, naming the variable; --tls-names is for edges', async (t) => {
  const dir = await makeTempDir('convoy-edge-config-');
  const root = path.join(dir, 'root.json');
  await fs.writeFile(root, JSON.stringify({ signed: { _type: 'root' } }));
  const noNames = await convoy('http://127.0.0.1:9', ['serve', '--mode', 'edge', '--upstream', 'http://127.0.0.1:9', '--https-port', '8443'], { env: { CONVOY_EDGE_TOKEN: 'cvye_x', CONVOY_UPSTREAM_ROOT: root } });
  t.is(noNames.code, 2);
  t.regex(noNames.stderr, /CONVOY_EDGE_TLS_NAMES/);
  const origin = await convoy('http://127.0.0.1:9', ['serve', '--tls-names', 'localhost']);
  t.not(origin.code, 0);
  t.regex(origin.stderr, /--tls-names is for --mode edge/);
  await fs.rm(dir, { recursive: true, force: true });
});
