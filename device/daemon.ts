import fs from 'node:fs/promises';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { ErrorBody } from '../protocol/errors.ts';
import type { Logger } from '../protocol/log.ts';
import { deviceStatusTopic, groupReleaseTopic, maxMessageBytes, releaseNotice, type DeviceState, type DeviceStatus, type ReleaseNotice } from '../protocol/messages.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { UpdateError } from './errors.ts';
import { readJournal, type SlotRecord } from './journal.ts';
import { watchInstalledRelease } from './revocation.ts';
import { openTrustClient } from './trust.ts';
import { applyRelease, type Release } from './updater.ts';

export interface DaemonOptions {
  config: DeviceConfig;
  /** Directory of device.json: relative paths in the config are resolved against it. */
  configDir: string;
  log: Logger;
  now?: () => Date;
  /** Abort a transfer when no byte arrives for this long, in milliseconds. */
  stallTimeoutMs?: number;
  /** First retry delay after a transient failure, in milliseconds; doubles up to 5 minutes. */
  retryBaseMs?: number;
}

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * convoyd's shell: listens for the group's release notice over MQTT, applies the release, and
 * reports what it runs. Notices are hints; what gets installed is decided by signed metadata.
 * Updates run one at a time; a notice that arrives meanwhile is kept and handled next.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const now = options.now ?? (() => new Date());
  const dataDir = path.resolve(options.configDir, config.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  const token = (await fs.readFile(path.resolve(options.configDir, config.tokenFile), 'utf8')).trim();
  const trust = await openTrustClient({
    metadataDir: path.join(dataDir, 'tuf'),
    pinnedRootFile: path.resolve(options.configDir, config.rootFile),
    serverUrl: config.serverUrl,
    token,
    timeoutMs: config.timeoutSeconds * 1000,
  });
  const journalFile = path.join(dataDir, 'journal.json');
  let installed: SlotRecord | null = (await readJournal(journalFile)).installed;
  let state: DeviceState = installed ? 'installed' : 'idle';
  let target: Release | null = null;
  let lastError: ErrorBody | null = null;

  const client: MqttClient = mqtt.connect(config.mqttUrl, {
    clientId: `convoyd-${config.id}`,
    username: config.id,
    password: token,
    clean: true,
    reconnectPeriod: 2_000,
    connectTimeout: 10_000,
  });

  const report = () => {
    const status: DeviceStatus = {
      type: 'status',
      deviceId: config.id,
      state,
      installed: installed ? { bundle: installed.bundle, version: installed.version } : null,
      target,
      error: lastError,
      reportedAt: now().toISOString(),
    };
    client.publish(deviceStatusTopic(config.id), JSON.stringify(status), { qos: 1 }, (error) => {
      if (error) log.warn('status report not sent', { error });
    });
  };

  let wanted: ReleaseNotice | undefined;
  let running = false;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = options.retryBaseMs ?? 5_000;

  const work = async () => {
    if (running || stopped || !wanted) return;
    running = true;
    const notice = wanted;
    wanted = undefined;
    const release = { bundle: notice.bundle, version: notice.version };
    try {
      if (installed?.bundle === release.bundle && installed.version === release.version) {
        state = 'installed';
        lastError = null;
        target = null;
        report();
        return;
      }
      state = 'updating';
      target = release;
      lastError = null;
      report();
      log.info('updating', { bundle: release.bundle, version: release.version, deployment: notice.deploymentId });
      installed = await applyRelease({ dataDir, serverUrl: config.serverUrl, token, trust, stallTimeoutMs: options.stallTimeoutMs ?? config.timeoutSeconds * 1000, log }, release);
      state = 'installed';
      target = null;
      retryDelay = options.retryBaseMs ?? 5_000;
      report();
    } catch (error) {
      const failure = error instanceof UpdateError ? error : new UpdateError('install_failed', (error as Error).message, false, { cause: error });
      state = 'failed';
      lastError = { code: failure.code, message: failure.message };
      log.warn('update failed', { bundle: release.bundle, version: release.version, code: failure.code, reason: failure.message, transient: failure.transient });
      report();
      if (failure.transient && !stopped) {
        // Never give up silently on a network fault: retry with backoff and jitter, unless a
        // newer notice arrived meanwhile (it replaces this one).
        const delay = retryDelay * (0.5 + Math.random());
        retryDelay = Math.min(retryDelay * 2, 5 * 60_000);
        retryTimer = setTimeout(() => {
          wanted ??= notice;
          void work();
        }, delay);
      }
    } finally {
      running = false;
      if (wanted) void work();
    }
  };

  client.on('connect', () => {
    log.info('connected to the broker', { url: config.mqttUrl });
    client.subscribe(groupReleaseTopic(config.group), { qos: 1 }, (error, granted) => {
      if (error || granted?.some((g) => g.qos === 128)) log.error('subscription refused', { topic: groupReleaseTopic(config.group) });
      else log.info('subscribed to release notices', { topic: groupReleaseTopic(config.group) });
    });
    report();
  });
  client.on('error', (error) => log.warn('MQTT error', { error }));
  client.on('message', (topic, payload) => {
    if (topic !== groupReleaseTopic(config.group)) return;
    if (payload.length === 0) return; // a cleared retained notice
    try {
      if (payload.length > maxMessageBytes) throw new Error(`notice of ${payload.length} bytes is over the limit`);
      const notice = parseWith(releaseNotice, parseJson(payload.toString('utf8'), 'release notice'), 'release notice');
      if (notice.group !== config.group) throw new Error(`notice is for group "${notice.group}"`);
      clearTimeout(retryTimer);
      wanted = notice;
      void work();
    } catch (error) {
      log.warn('dropped an invalid release notice', { topic, error });
    }
  });

  const watch = watchInstalledRelease({
    trust,
    intervalMs: config.trustCheckSeconds * 1000,
    installed: () => installed,
    busy: () => running,
    log,
    onChange: (error) => {
      lastError = error ?? (lastError?.code === 'version_revoked' ? null : lastError);
      report();
    },
  });

  return {
    async stop() {
      watch.stop();
      stopped = true;
      clearTimeout(retryTimer);
      await client.endAsync();
    },
  };
}
