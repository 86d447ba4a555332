import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseLogLevel, type LogLevel } from '../../protocol/log.ts';
import { ConfigError } from '../config.ts';

/**
 * Everything an edge node (`convoy serve --mode edge`) reads from its environment, validated at
 * start; the message names the variable at fault. Times in milliseconds.
 */
export interface EdgeConfig {
  /** The origin's base URL (CONVOY_UPSTREAM_URL, or `--upstream`). */
  upstreamUrl: string;
  /** The token `convoy edge add NAME` printed on the origin (CONVOY_EDGE_TOKEN). */
  edgeToken: string;
  /**
   * The origin's TUF root (CONVOY_UPSTREAM_ROOT), copied by the operator: everything mirrored is
   * verified against it, never against what the link says (no trust on first use).
   */
  upstreamRootFile: string;
  /** The edge's own data dir (CONVOY_DATA_DIR): mirrored blobs, published metadata, its TUF state. */
  dataDir: string;
  httpPort: number;
  /** The edge's MQTT broker for its devices (CONVOY_MQTT_PORT, 1883; 0 picks a free one): their reports are stored and forwarded. */
  mqttPort: number;
  host: string;
  logLevel: LogLevel;
  /** How long an idle edge waits after a failed call to the origin before asking again (CONVOY_EDGE_POLL_MS, 5 s). */
  pollMs: number;
  /** An idle edge's request for tasks is held by the origin up to this long, answered at once when a run gives the edge tasks (CONVOY_EDGE_LONG_POLL_S, 20 s; 0: plain polling every CONVOY_EDGE_POLL_MS). */
  longPollSeconds: number;
  /** How long a device credential verdict is trusted without asking again (CONVOY_EDGE_AUTH_TTL_MS, 60 s). */
  authFreshMs: number;
  /** How long it still stands while the origin cannot be reached (CONVOY_EDGE_AUTH_STALE_MS, 24 h). */
  authStaleMs: number;
  /** How often the release of each device connected to the edge's broker is asked of the origin (CONVOY_EDGE_NOTICE_MS, 10 s). */
  noticeMs: number;
  /** How often stored device reports are offered to the origin again while it is unreachable (CONVOY_EDGE_REPORT_RETRY_MS, 5 s). */
  reportRetryMs: number;
  /** Blobs fetched side by side (CONVOY_EDGE_PARALLEL, 3). */
  parallel: number;
  /** A call to the origin (not a blob transfer) gives up after this long; a transfer with no byte for this long is retried. */
  timeoutMs: number;
  /**
   * HTTPS for enrolled devices (CONVOY_HTTPS_PORT, or `--https-port`; unset: none): they sign in
   * with their fleet certificate; the edge's own certificate is signed by the origin's fleet CA
   * for `tlsNames` (server/edge/tls.ts).
   */
  httpsPort?: number | undefined;
  /** What devices dial to reach this edge (CONVOY_EDGE_TLS_NAMES=dns:edge.shop.example,ip:10.0.0.5, or `--tls-names`); needed with httpsPort or mqttsPort. */
  tlsNames?: { dns: string[]; ip: string[] } | undefined;
  /**
   * MQTT over TLS for enrolled devices (CONVOY_MQTTS_PORT, as on the origin; 8883 by convention;
   * unset: none): a client certificate of the fleet CA is demanded, and the device it names is
   * checked with the origin as on the HTTPS listener. Served with the same edge certificate.
   */
  mqttsPort?: number | undefined;
  /**
   * How often the devices connected to the edge's broker have their credential checked again
   * (CONVOY_EDGE_SESSION_CHECK_MS, 5 s): a device revoked at the origin is disconnected within
   * this plus CONVOY_EDGE_AUTH_TTL_MS while the link is up (server/edge/sessions.ts).
   */
  sessionCheckMs: number;
}

/** `dns:edge.shop.example,ip:10.0.0.5` into names; a bare name is a DNS name, a bare address an IP. */
export function parseTlsNames(raw: string, variable = 'CONVOY_EDGE_TLS_NAMES'): { dns: string[]; ip: string[] } {
  const names = { dns: [] as string[], ip: [] as string[] };
  for (const item of raw.split(',').map((part) => part.trim()).filter(Boolean)) {
    const [, kind, value] = /^(?:(dns|ip):)?(.+)$/i.exec(item)!;
    const asIp = kind ? kind.toLowerCase() === 'ip' : isIP(value!) !== 0;
    if (asIp && isIP(value!) === 0) throw new ConfigError(`${variable}: "${value}" is not an IP address`);
    if (!asIp && !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(value!)) throw new ConfigError(`${variable}: "${value}" is not a DNS name`);
    (asIp ? names.ip : names.dns).push(value!);
  }
  if (names.dns.length + names.ip.length === 0) throw new ConfigError(`${variable} must name what devices dial, e.g. dns:edge.shop.example,ip:10.0.0.5`);
  return names;
}

export const defaultEdgeConfig = {
  httpPort: 8080,
  mqttPort: 1883,
  host: '0.0.0.0',
  noticeMs: 10_000,
  reportRetryMs: 5_000,
  pollMs: 5_000,
  longPollSeconds: 20,
  authFreshMs: 60_000,
  authStaleMs: 24 * 60 * 60_000,
  parallel: 3,
  timeoutMs: 30_000,
  sessionCheckMs: 5_000,
} as const;

function whole(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || !Number.isSafeInteger(value)) throw new ConfigError(`${name} must be a whole number of at least ${min}, got "${raw}"`);
  return value;
}

export function loadEdgeConfig(env: NodeJS.ProcessEnv, cwd = process.cwd()): EdgeConfig {
  const upstream = env.CONVOY_UPSTREAM_URL;
  if (!upstream) throw new ConfigError('edge mode needs the origin: CONVOY_UPSTREAM_URL (or convoy serve --mode edge --upstream URL)');
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    throw new ConfigError(`CONVOY_UPSTREAM_URL must be an http(s) URL, got "${upstream}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`CONVOY_UPSTREAM_URL must be an http(s) URL, got "${upstream}"`);
  const edgeToken = env.CONVOY_EDGE_TOKEN;
  if (!edgeToken || !edgeToken.startsWith('cvye_')) throw new ConfigError('CONVOY_EDGE_TOKEN must be the token `convoy edge add NAME` printed on the origin (it starts with cvye_)');
  const rootRaw = env.CONVOY_UPSTREAM_ROOT;
  if (!rootRaw) throw new ConfigError(`CONVOY_UPSTREAM_ROOT must name the origin's TUF root file, copied from the origin (curl -H "Authorization: Bearer $CONVOY_TOKEN" "$CONVOY_URL/tuf/root.json" -o root.json; see docs/replication.md): an edge never trusts the first root it is sent`);
  const upstreamRootFile = path.resolve(cwd, rootRaw);
  let root: unknown;
  try {
    root = JSON.parse(fs.readFileSync(upstreamRootFile, 'utf8'));
  } catch (error) {
    throw new ConfigError(`CONVOY_UPSTREAM_ROOT: cannot read TUF root metadata from ${upstreamRootFile}: ${(error as Error).message}`);
  }
  if ((root as { signed?: { _type?: unknown } } | null)?.signed?._type !== 'root') throw new ConfigError(`CONVOY_UPSTREAM_ROOT: ${upstreamRootFile} is not TUF root metadata`);
  const logLevel = parseLogLevel(env.CONVOY_LOG_LEVEL || 'info');
  if (!logLevel) throw new ConfigError(`CONVOY_LOG_LEVEL must be debug, info, warn or error, got "${env.CONVOY_LOG_LEVEL}"`);
  return {
    upstreamUrl: url.toString().replace(/\/+$/, ''),
    edgeToken,
    upstreamRootFile,
    dataDir: path.resolve(cwd, env.CONVOY_DATA_DIR || './data'),
    httpPort: whole(env, 'CONVOY_HTTP_PORT', defaultEdgeConfig.httpPort, 0),
    mqttPort: whole(env, 'CONVOY_MQTT_PORT', defaultEdgeConfig.mqttPort, 0),
    host: env.CONVOY_HOST || defaultEdgeConfig.host,
    noticeMs: whole(env, 'CONVOY_EDGE_NOTICE_MS', defaultEdgeConfig.noticeMs, 10),
    reportRetryMs: whole(env, 'CONVOY_EDGE_REPORT_RETRY_MS', defaultEdgeConfig.reportRetryMs, 10),
    logLevel,
    pollMs: whole(env, 'CONVOY_EDGE_POLL_MS', defaultEdgeConfig.pollMs, 10),
    longPollSeconds: Math.min(30, whole(env, 'CONVOY_EDGE_LONG_POLL_S', defaultEdgeConfig.longPollSeconds, 0)),
    authFreshMs: whole(env, 'CONVOY_EDGE_AUTH_TTL_MS', defaultEdgeConfig.authFreshMs, 0),
    authStaleMs: whole(env, 'CONVOY_EDGE_AUTH_STALE_MS', defaultEdgeConfig.authStaleMs, 0),
    parallel: whole(env, 'CONVOY_EDGE_PARALLEL', defaultEdgeConfig.parallel),
    timeoutMs: defaultEdgeConfig.timeoutMs,
    sessionCheckMs: whole(env, 'CONVOY_EDGE_SESSION_CHECK_MS', defaultEdgeConfig.sessionCheckMs, 10),
    ...edgeTls(env),
  };
}

function edgeTls(env: NodeJS.ProcessEnv): Pick<EdgeConfig, 'httpsPort' | 'tlsNames' | 'mqttsPort'> {
  const set = (name: string) => env[name] !== undefined && env[name] !== '';
  if (!set('CONVOY_HTTPS_PORT') && !set('CONVOY_MQTTS_PORT')) {
    if (env.CONVOY_EDGE_TLS_NAMES) throw new ConfigError('CONVOY_EDGE_TLS_NAMES is set but neither CONVOY_HTTPS_PORT nor CONVOY_MQTTS_PORT is: the names are for the TLS listeners');
    return {};
  }
  const which = set('CONVOY_HTTPS_PORT') ? 'CONVOY_HTTPS_PORT' : 'CONVOY_MQTTS_PORT';
  if (!env.CONVOY_EDGE_TLS_NAMES) throw new ConfigError(`${which} on an edge needs CONVOY_EDGE_TLS_NAMES (what devices dial, e.g. dns:edge.shop.example,ip:10.0.0.5): the origin signs the edge certificate for those names`);
  return {
    ...(set('CONVOY_HTTPS_PORT') ? { httpsPort: whole(env, 'CONVOY_HTTPS_PORT', 0, 0) } : {}),
    ...(set('CONVOY_MQTTS_PORT') ? { mqttsPort: whole(env, 'CONVOY_MQTTS_PORT', 8883, 0) } : {}),
    tlsNames: parseTlsNames(env.CONVOY_EDGE_TLS_NAMES),
  };
}
