import path from 'node:path';
import { parseLogLevel, type LogLevel } from '../protocol/log.ts';
import { defaultMqttLimits, type MqttLimits } from './broker/limits.ts';

/** Everything the origin server reads from its environment, validated once at start. */
export interface ServerConfig {
  /** Holds the SQLite file, the blob store, TUF keys and metadata. */
  dataDir: string;
  /** HTTP listen port; 0 picks a free one (tests). */
  httpPort: number;
  /** Embedded MQTT broker listen port; 0 picks a free one (tests). */
  mqttPort: number;
  /** Interface both listeners bind to. */
  host: string;
  /** Unset: SQLite in dataDir. `postgres://…`: PostgreSQL. */
  databaseUrl: string | undefined;
  /** Sets the first admin's token at first start; ignored once an admin exists. */
  adminToken: string | undefined;
  /** Largest blob accepted by one upload, in bytes. */
  maxBlobBytes: number;
  /** Largest JSON request body, in bytes. */
  maxJsonBytes: number;
  /** A request body with no new byte for this long has its connection closed (CONVOY_BODY_IDLE_TIMEOUT_MS), in milliseconds. */
  bodyIdleTimeoutMs: number;
  /**
   * Embedded MQTT broker bounds: bytes before sign-in (CONVOY_MQTT_PRE_AUTH_BYTES, 8 KiB), packet
   * size after (CONVOY_MQTT_MAX_PACKET_BYTES, 64 KiB), connections waiting to sign in
   * (CONVOY_MQTT_MAX_PENDING_CONNECTIONS, 256) and how long they may wait (CONVOY_MQTT_CONNECT_TIMEOUT_MS, 10 s);
   * status messages per device (CONVOY_MQTT_STATUS_PER_SECOND, 2, after a burst of CONVOY_MQTT_STATUS_BURST, 20).
   */
  mqttLimits: MqttLimits;
  /** Lets anyone read /tuf/ (metadata and targets) without a token, for stock TUF clients. */
  anonymousTufRead: boolean;
  logLevel: LogLevel;
  /** Lifetime of each TUF role's metadata, in seconds (tests shorten it; unset: 1 day timestamp, 30 days snapshot, 1 year targets and root). */
  tufExpiry?: { root: number; targets: number; snapshot: number; timestamp: number };
  /** How often the server checks whether metadata needs re-signing, in milliseconds (unset: 10 minutes). */
  tufResignCheckMs?: number;
  /** The `server/` folder of `convoy ca init` (CONVOY_PKI_DIR); unset: a fleet CA made in dataDir/pki at first enrollment. */
  pkiDir?: string;
  /** Mutual-TLS listeners for devices (certificates of the fleet CA); unset: not served. 0 picks a free port (tests). */
  mqttsPort?: number;
  httpsPort?: number;
  /** CONVOY_MQTT_URL: an external broker the server is a client of, instead of the embedded one (mqtts:// uses CONVOY_PKI_DIR's mqtt-client.pem). */
  mqttUrl?: string;
  /**
   * CONVOY_SECRET_KEY: 32 bytes (64 hex digits or base64) that encrypt registry endpoint
   * credentials at rest (AES-256-GCM). Unset: credentials are refused, never stored in clear.
   */
  secretKey?: Buffer;
  /** How often scheduled replication policies are checked, in milliseconds (unset: 20 seconds, so no cron minute is missed). */
  replicationTickMs?: number;
  /** Tries per replication task and the first backoff in milliseconds, doubled each try (unset: 4 tries from 500 ms). */
  replicationRetry?: { attempts: number; baseDelayMs: number };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const defaultServerConfig: Omit<ServerConfig, 'dataDir'> = {
  httpPort: 8080,
  mqttPort: 1883,
  host: '0.0.0.0',
  databaseUrl: undefined,
  adminToken: undefined,
  maxBlobBytes: 64 * 1024 ** 3, // 64 GiB: OS images are large; disk space is the real limit
  maxJsonBytes: 1024 * 1024, // 1 MiB
  mqttLimits: defaultMqttLimits,
  bodyIdleTimeoutMs: 30_000, // a healthy upload never pauses this long; a trickle is cut
  anonymousTufRead: false,
  logLevel: 'info',
};

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > 65535) throw new ConfigError(`${name} must be a port number from 0 to 65535, got "${raw}"`);
  return value;
}

function bool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value <= 0 || !Number.isSafeInteger(value)) throw new ConfigError(`${name} must be a positive whole number, got "${raw}"`);
  return value;
}

/** `CONVOY_TUF_EXPIRY=timestamp=86400,snapshot=2592000,targets=31536000`: seconds per online role. */
function tufExpiry(env: NodeJS.ProcessEnv): ServerConfig['tufExpiry'] {
  const raw = env.CONVOY_TUF_EXPIRY;
  if (raw === undefined || raw === '') return undefined;
  const expiry = { root: 365 * 24 * 3600, targets: 365 * 24 * 3600, snapshot: 30 * 24 * 3600, timestamp: 24 * 3600 };
  for (const part of raw.split(',')) {
    const match = /^(timestamp|snapshot|targets)=(\d+)$/.exec(part.trim());
    if (!match || Number(match[2]) < 60) throw new ConfigError(`CONVOY_TUF_EXPIRY must be role=seconds pairs (timestamp, snapshot, targets; at least 60), got "${raw}"`);
    expiry[match[1] as 'timestamp' | 'snapshot' | 'targets'] = Number(match[2]);
  }
  return expiry;
}

function externalBrokerUrl(env: NodeJS.ProcessEnv): string {
  const raw = env.CONVOY_MQTT_URL!;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`CONVOY_MQTT_URL must be an mqtt:// or mqtts:// URL, got "${raw}"`);
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') throw new ConfigError(`CONVOY_MQTT_URL must be an mqtt:// or mqtts:// URL, got "${raw}"`);
  if (url.protocol === 'mqtts:' && !env.CONVOY_PKI_DIR) throw new ConfigError('CONVOY_MQTT_URL=mqtts://… needs CONVOY_PKI_DIR (the server signs in with its mqtt-client.pem)');
  if (url.protocol === 'mqtt:' && env.CONVOY_MQTTS_PORT) throw new ConfigError('CONVOY_MQTTS_PORT is for the embedded broker; with CONVOY_MQTT_URL the external broker serves devices');
  return raw;
}

export function loadServerConfig(env: NodeJS.ProcessEnv, cwd = process.cwd()): ServerConfig {
  const databaseUrl = env.CONVOY_DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('CONVOY_DATABASE_URL must be a postgres:// URL (leave it unset for SQLite in the data dir)');
  }
  const adminToken = env.CONVOY_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('CONVOY_ADMIN_TOKEN must be at least 16 characters');
  }
  const logLevelRaw = env.CONVOY_LOG_LEVEL || 'info';
  const logLevel = parseLogLevel(logLevelRaw);
  if (!logLevel) throw new ConfigError(`CONVOY_LOG_LEVEL must be debug, info, warn or error, got "${logLevelRaw}"`);
  return {
    dataDir: path.resolve(cwd, env.CONVOY_DATA_DIR || './data'),
    httpPort: port(env, 'CONVOY_HTTP_PORT', defaultServerConfig.httpPort),
    mqttPort: port(env, 'CONVOY_MQTT_PORT', defaultServerConfig.mqttPort),
    host: env.CONVOY_HOST || defaultServerConfig.host,
    databaseUrl,
    adminToken,
    maxBlobBytes: positive(env, 'CONVOY_MAX_BLOB_BYTES', defaultServerConfig.maxBlobBytes),
    maxJsonBytes: defaultServerConfig.maxJsonBytes,
    bodyIdleTimeoutMs: positive(env, 'CONVOY_BODY_IDLE_TIMEOUT_MS', defaultServerConfig.bodyIdleTimeoutMs),
    mqttLimits: {
      preAuthBytes: positive(env, 'CONVOY_MQTT_PRE_AUTH_BYTES', defaultMqttLimits.preAuthBytes),
      maxPacketBytes: positive(env, 'CONVOY_MQTT_MAX_PACKET_BYTES', defaultMqttLimits.maxPacketBytes),
      maxPendingConnections: positive(env, 'CONVOY_MQTT_MAX_PENDING_CONNECTIONS', defaultMqttLimits.maxPendingConnections),
      connectTimeoutMs: positive(env, 'CONVOY_MQTT_CONNECT_TIMEOUT_MS', defaultMqttLimits.connectTimeoutMs),
      statusPerSecond: positive(env, 'CONVOY_MQTT_STATUS_PER_SECOND', defaultMqttLimits.statusPerSecond),
      statusBurst: positive(env, 'CONVOY_MQTT_STATUS_BURST', defaultMqttLimits.statusBurst),
      deliveryConcurrency: positive(env, 'CONVOY_MQTT_DELIVERY_CONCURRENCY', defaultMqttLimits.deliveryConcurrency),
    },
    anonymousTufRead: bool(env, 'CONVOY_ANONYMOUS_TUF_READ', defaultServerConfig.anonymousTufRead),
    logLevel,
    ...(tufExpiry(env) ? { tufExpiry: tufExpiry(env)! } : {}),
    ...(env.CONVOY_PKI_DIR ? { pkiDir: path.resolve(cwd, env.CONVOY_PKI_DIR) } : {}),
    ...(env.CONVOY_MQTTS_PORT ? { mqttsPort: port(env, 'CONVOY_MQTTS_PORT', 8883) } : {}),
    ...(env.CONVOY_HTTPS_PORT ? { httpsPort: port(env, 'CONVOY_HTTPS_PORT', 8443) } : {}),
    ...(env.CONVOY_MQTT_URL ? { mqttUrl: externalBrokerUrl(env) } : {}),
    ...(secretKey(env) ? { secretKey: secretKey(env)! } : {}),
  };
}

/** CONVOY_SECRET_KEY: exactly 32 bytes, as 64 hex digits or base64 (`openssl rand -hex 32`). */
export function secretKey(env: NodeJS.ProcessEnv): Buffer | undefined {
  const raw = env.CONVOY_SECRET_KEY;
  if (raw === undefined || raw === '') return undefined;
  const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : /^[A-Za-z0-9+/]{43}=?$/.test(raw) ? Buffer.from(raw, 'base64') : undefined;
  if (key?.length !== 32) throw new ConfigError('CONVOY_SECRET_KEY must be 32 bytes as 64 hex digits or base64 (make one with: openssl rand -hex 32)');
  return key;
}
