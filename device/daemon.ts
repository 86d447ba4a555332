import fs from 'node:fs/promises';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { ErrorBody } from '../protocol/errors.ts';
import type { Logger } from '../protocol/log.ts';
import { deviceNotice, deviceReleaseTopic, deviceStatusTopic, maxMessageBytes, type DeviceNotice, type DeviceStatus } from '../protocol/messages.ts';
import type { InventoryReport } from '../protocol/rollout.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { createHookRunner } from './hooks.ts';
import { collectInventory } from './inventory.ts';
import { readCurrentSlot, switchCurrent } from './install.ts';
import { readJournal } from './journal.ts';
import { watchInstalledRelease } from './revocation.ts';
import { defaultModules, type ModuleTable } from './modules.ts';
import { backoffDelay, reportedState, terminalStates, type Journal } from './state.ts';
import { createNotifier, type Notifier } from './systemd.ts';
import { openTrustClient } from './trust.ts';
import { createUpdater, sleep, type Offer, type StepInfo } from './updater.ts';

export interface DaemonOptions {
  config: DeviceConfig;
  /** Directory of device.json: relative paths in the config are resolved against it. */
  configDir: string;
  log: Logger;
  now?: () => Date;
  random?: () => number;
  env?: NodeJS.ProcessEnv;
  modules?: ModuleTable;
  /** Asks the server which release this device should run (used while MQTT is down). */
  pollRelease?: () => Promise<DeviceNotice | null>;
}

export interface Daemon {
  stop(): Promise<void>;
}

/**
 * convoyd's shell. MQTT is a hint, TUF is the truth: a release notice (or, while the broker is
 * unreachable, a poll of the server) offers a release; the updater (state machine + journal)
 * verifies and applies it; the daemon reports every state over MQTT and to systemd.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const policy = config.update;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? Math.random;
  const notifier: Notifier = createNotifier(options.env ?? process.env, log.child('systemd'));
  const dataDir = path.resolve(options.configDir, config.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  const token = (await fs.readFile(path.resolve(options.configDir, config.tokenFile), 'utf8')).trim();
  const trust = await openTrustClient({
    metadataDir: path.join(dataDir, 'tuf'),
    goodDir: path.join(dataDir, 'tuf-good'),
    pinnedRootFile: path.resolve(options.configDir, config.rootFile),
    serverUrl: config.serverUrl,
    token,
    timeoutMs: config.timeoutSeconds * 1000,
    log: log.child('trust'),
  });
  const journalFile = path.join(dataDir, 'journal.json');
  const initial = await readJournal(journalFile);
  const stopController = new AbortController();

  let client: MqttClient | undefined;
  let lastInfo: StepInfo = {};
  // Reports carry an increasing sequence number, also across restarts (the clock seeds it), so
  // the server stores each once and never an older one over a newer (QoS 1 may deliver twice).
  let seq = Date.now();
  const nextSeq = () => (seq = Math.max(seq + 1, Date.now()));
  /** What the periodic signed-metadata check found about the running release (revoked, frozen). */
  let trustError: ErrorBody | null = null;
  const report = (journal: Journal, info: StepInfo = {}) => {
    lastInfo = info;
    const update = journal.update;
    const state = reportedState(journal, Boolean(info.waiting) && !update?.error);
    const status: DeviceStatus = {
      type: 'status',
      deviceId: config.id,
      state,
      installed: journal.installed ? { bundle: journal.installed.bundle, version: journal.installed.version } : null,
      // An aborted update moves the device nowhere: it reports no target.
      target: update && update.state !== 'committed' && update.state !== 'aborted' ? update.release : null,
      error: update?.error ?? trustError,
      reportedAt: now().toISOString(),
      phase: update?.state ?? 'idle',
      ...(info.waiting ? { detail: info.waiting.slice(0, 1000) } : {}),
      ...(info.progress ? { progress: info.progress } : {}),
      seq: nextSeq(),
      ...(update?.deploymentId ? { deploymentId: update.deploymentId } : {}),
    };
    notifier.status(`${status.phase}${status.target ? ` ${status.target.bundle}@${status.target.version}` : ''}${info.waiting ? `: ${info.waiting}` : ''}`.slice(0, 400));
    if (!client?.connected) return;
    client.publish(deviceStatusTopic(config.id), JSON.stringify(status), { qos: 1 }, (error) => {
      if (error) log.debug('status report not sent', { error });
    });
  };

  const hooksDir = policy.hooksDir ? path.resolve(options.configDir, policy.hooksDir) : null;
  const updater = createUpdater(
    {
      dataDir,
      journalFile,
      serverUrl: config.serverUrl,
      token,
      trust,
      policy,
      modules: options.modules ?? defaultModules(policy),
      hooks: createHookRunner({ dir: hooksDir, timeoutMs: policy.hookTimeoutMs, dataDir, log: log.child('hooks') }),
      log,
      now,
      random,
      signal: stopController.signal,
      onChange: report,
    },
    initial,
  );

  // `current` must agree with the journal when no update is running (the journal is the truth).
  if (!initial.update || terminalStates.has(initial.update.state)) {
    const current = await readCurrentSlot(dataDir);
    const wanted = initial.installed?.slot ?? null;
    if (current !== wanted && (wanted === null || (await fs.stat(path.join(dataDir, 'slots', wanted)).catch(() => null)))) {
      log.warn('current did not match the journal; repaired', { current, journal: wanted });
      await switchCurrent(dataDir, wanted);
    }
  }
  await updater.recover();

  // The worker: one update at a time; sleeps are cut short by a new offer or by stop().
  let pending: Offer | undefined;
  let wake: AbortController = new AbortController();
  let running: Promise<void> | undefined;
  const kick = () => {
    wake.abort();
    if (!running) running = work().finally(() => (running = undefined));
  };
  const work = async () => {
    while (!stopController.signal.aborted) {
      for (const id of aborts) {
        if (await updater.abort(id).catch((error) => (log.error('cannot abort the update', { error }), false))) report(updater.journal);
      }
      if (pending) {
        const offer = pending;
        const outcome = await updater.offer(offer).catch((error) => {
          log.error('cannot start the update', { error });
          return 'busy' as const;
        });
        // A newer offer may have arrived while this one was handled: keep it for the next turn.
        if (outcome !== 'busy' && pending === offer) pending = undefined;
        if (outcome === 'current' || outcome === 'refused-before') report(updater.journal);
        log.debug('release offered', { version: offer.version, deployment: offer.deploymentId, outcome });
      }
      wake = new AbortController();
      const result = await updater.step();
      if (result.type === 'idle') {
        if (pending && updater.journal.update && terminalStates.has(updater.journal.update.state)) continue;
        return;
      }
      if (result.type === 'wait') {
        report(updater.journal, { ...lastInfo, waiting: result.reason });
        log.info('update waits', { reason: result.reason, ms: result.ms });
        await sleep(result.ms, AbortSignal.any([wake.signal, stopController.signal]));
      }
    }
  };
  /**
   * A notice on the device's own topic (or its poll twin): a release to move to, or the abort of
   * a deployment. An abort stops an update that has not switched, also one waiting on its lock or
   * install window; a device never retries what the operator aborted.
   */
  const offer = (notice: DeviceNotice) => {
    if (notice.type === 'abort') {
      if (pending?.deploymentId === notice.deploymentId) pending = undefined;
      aborts.add(notice.deploymentId);
      kick();
      return;
    }
    if (aborts.has(notice.deploymentId) && (notice.attempt ?? 0) === 0) return;
    pending = {
      bundle: notice.bundle,
      version: notice.version,
      deploymentId: notice.deploymentId,
      ...(notice.attempt !== undefined ? { attempt: notice.attempt } : {}),
      ...(notice.retry ? { maxAttempts: notice.retry.attempts } : {}),
    };
    kick();
  };
  const aborts = new Set<number>();

  // MQTT, with reconnects backing off (and jittered) so a fleet does not hammer a broker that
  // just came back. While it is down, the server is polled: no release is missed.
  let reconnects = 0;
  let disconnectedSince: number | undefined = Date.now();
  client = mqtt.connect(config.mqttUrl, {
    clientId: `convoyd-${config.id}`,
    username: config.id,
    password: token,
    clean: true,
    reconnectPeriod: Math.min(policy.retryBaseMs, 2_000),
    connectTimeout: 10_000,
  });
  client.on('connect', () => {
    reconnects = 0;
    disconnectedSince = undefined;
    client!.options.reconnectPeriod = Math.min(policy.retryBaseMs, 2_000);
    log.info('connected to the broker', { url: config.mqttUrl });
    // The device's own topic: phases, several groups and aborts make "what should I run" per device.
    client!.subscribe(deviceReleaseTopic(config.id), { qos: 1 }, (error, granted) => {
      if (error || granted?.some((g) => g.qos === 128)) log.error('subscription refused', { topic: deviceReleaseTopic(config.id) });
      else log.info('subscribed to release notices', { topic: deviceReleaseTopic(config.id) });
    });
    report(updater.journal, lastInfo);
    void reportInventory(true);
  });
  client.on('close', () => {
    disconnectedSince ??= Date.now();
    reconnects++;
    client!.options.reconnectPeriod = backoffDelay(reconnects, Math.min(policy.retryBaseMs, 2_000), 60_000, random());
  });
  client.on('error', (error) => log.warn('MQTT error', { error: error.message }));
  client.on('message', (topic, payload) => {
    if (topic !== deviceReleaseTopic(config.id)) return;
    if (payload.length === 0) return; // a cleared retained notice
    try {
      if (payload.length > maxMessageBytes) throw new Error(`notice of ${payload.length} bytes is over the limit`);
      offer(parseWith(deviceNotice, parseJson(payload.toString('utf8'), 'release notice'), 'release notice'));
    } catch (error) {
      log.warn('dropped an invalid release notice', { topic, error });
    }
  });

  // Inventory at start (each connection) and whenever it changes (checked on an interval).
  let lastInventory = '';
  const reportInventory = async (force: boolean) => {
    try {
      const attributes = await collectInventory({ config, dataDir, configDir: options.configDir, log: log.child('inventory') });
      const text = JSON.stringify(attributes);
      if ((!force && text === lastInventory) || !client?.connected) return;
      lastInventory = text;
      const message: InventoryReport = { type: 'inventory', deviceId: config.id, seq: nextSeq(), attributes, reportedAt: now().toISOString() };
      client.publish(deviceStatusTopic(config.id), JSON.stringify(message), { qos: 1 }, (error) => {
        if (error) log.debug('inventory report not sent', { error });
      });
    } catch (error) {
      log.warn('collecting the inventory failed', { error: (error as Error).message });
    }
  };
  const inventoryTimer = setInterval(() => void reportInventory(false), config.inventory.intervalSeconds * 1000);
  inventoryTimer.unref();

  const poll = options.pollRelease ?? defaultPoll(config.serverUrl, token, config.id);
  let pollTimer: NodeJS.Timeout | undefined;
  const schedulePoll = () => {
    pollTimer = setTimeout(async () => {
      if (disconnectedSince !== undefined && Date.now() - disconnectedSince >= policy.pollIntervalMs / 2) {
        try {
          const notice = await poll();
          if (notice) offer(notice);
        } catch (error) {
          log.warn('polling the server failed', { error: (error as Error).message });
        }
        // A waiting update (a retry backoff) is tried again now as well.
        kick();
      }
      if (!stopController.signal.aborted) schedulePoll();
    }, backoffDelay(0, policy.pollIntervalMs, policy.pollIntervalMs, random()));
  };
  schedulePoll();

  const watchdog = notifier.watchdogIntervalMs ? setInterval(() => notifier.watchdog(), notifier.watchdogIntervalMs) : undefined;
  notifier.ready(`${updater.journal.update?.state ?? 'idle'}; running ${updater.journal.installed ? `${updater.journal.installed.bundle}@${updater.journal.installed.version}` : 'nothing'}`);
  kick();

  const watch = watchInstalledRelease({
    trust,
    intervalMs: config.trustCheckSeconds * 1000,
    installed: () => updater.journal.installed,
    busy: () => running !== undefined,
    log,
    onChange: (error) => {
      trustError = error;
      report(updater.journal, lastInfo);
    },
  });

  return {
    async stop() {
      watch.stop();
      notifier.stopping();
      stopController.abort();
      clearTimeout(pollTimer);
      clearInterval(inventoryTimer);
      if (watchdog) clearInterval(watchdog);
      // A step that cannot be interrupted (a hook, a health check) is not waited for long: the
      // journal already says how to go on after a restart.
      await Promise.race([running, sleep(5_000)]);
      await client!.endAsync(true);
      notifier.close();
    },
  };
}

/**
 * Asks the server what this device should run. The route is the device's pull-side twin of its
 * retained MQTT notice; a server without it (404) is simply not polled successfully.
 */
function defaultPoll(serverUrl: string, token: string, id: string): () => Promise<DeviceNotice | null> {
  return async () => {
    const response = await fetch(`${serverUrl}/api/v1/devices/${encodeURIComponent(id)}/release`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
    if (response.status === 204 || response.status === 404) return null;
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const text = await response.text();
    if (text.length > maxMessageBytes) throw new Error('the release answer is over the size limit');
    return parseWith(deviceNotice, parseJson(text, 'release'), 'release');
  };
}
