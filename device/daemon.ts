import fs from 'node:fs/promises';
import path from 'node:path';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { ErrorBody } from '../protocol/errors.ts';
import type { Logger } from '../protocol/log.ts';
import type { DeviceNotice, DeviceStatus } from '../protocol/messages.ts';
import type { InventoryReport } from '../protocol/rollout.ts';
import { createHookRunner } from './hooks.ts';
import { collectInventory } from './inventory.ts';
import { readCurrentSlot, switchCurrent } from './install.ts';
import { readJournal } from './journal.ts';
import { watchInstalledRelease } from './revocation.ts';
import { defaultModules, type ModuleTable } from './modules.ts';
import { startOffers, type Offers } from './offers.ts';
import { reportedState, terminalStates, type Journal } from './state.ts';
import { createNotifier, type Notifier } from './systemd.ts';
import { AuthorizedFetcher, openTrustClient } from '../tuf/client.ts';
import { createServerPool } from './servers.ts';
import { needsToken, readIdentity, readToken } from './identity.ts';
import { createUpdater, sleep, type Offer, type StepInfo } from './updater.ts';

/** How often an enrolled device checks whether its certificate is due for renewal. */
const renewalCheckMs = 60 * 60 * 1000;

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
 * convoyd's shell and worker loop. MQTT is a hint, TUF is the truth: a release notice (or, while
 * the broker is unreachable, a poll of the server; both in offers.ts) offers a release; the
 * updater (state machine + journal) verifies and applies it; the daemon reports every state over
 * MQTT and to systemd.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const policy = config.update;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? Math.random;
  const notifier: Notifier = createNotifier(options.env ?? process.env, log.child('systemd'));
  const dataDir = path.resolve(options.configDir, config.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  // An enrolled device on HTTPS and MQTT over TLS is its certificate and needs no token file;
  // one registered with `convoy device add` (or talking to a plain-http server) needs it.
  const identity = await readIdentity(config, options.configDir);
  const token = await readToken(path.resolve(options.configDir, config.tokenFile), needsToken(config, identity !== undefined));
  const pool = createServerPool({ servers: config.servers, identity, token, failbackMs: config.failbackSeconds * 1000, log: log.child('servers') });
  const trust = await openTrustClient({
    metadataDir: path.join(dataDir, 'tuf'),
    goodDir: path.join(dataDir, 'tuf-good'),
    pinnedRootFile: path.resolve(options.configDir, config.rootFile),
    serverUrl: config.serverUrl,
    timeoutMs: config.timeoutSeconds * 1000,
    // Metadata through the pool: the server that answers, with the device's credentials.
    fetcher: new AuthorizedFetcher(undefined, config.timeoutSeconds * 1000, (url, get) => pool.get(url, get)),
    log: log.child('trust'),
  });
  const journalFile = path.join(dataDir, 'journal.json');
  const initial = await readJournal(journalFile);
  const stopController = new AbortController();

  let offers: Offers | undefined;
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
    offers?.publishStatus(status);
  };

  const hooksDir = policy.hooksDir ? path.resolve(options.configDir, policy.hooksDir) : null;
  const updater = createUpdater(
    {
      dataDir,
      journalFile,
      serverUrl: config.serverUrl,
      get: (url, headers, signal) => pool.request(url, { headers, answerTimeoutMs: config.timeoutSeconds * 1000, signal }).then((answer) => answer.response),
      servedBy: () => pool.current(),
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
        // Logged before it is reported: whoever sees the report can already read the reason.
        log.info('update waits', { reason: result.reason, ms: result.ms });
        report(updater.journal, { ...lastInfo, waiting: result.reason });
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

  // Inventory at start (each connection) and whenever it changes (checked on an interval).
  let lastInventory = '';
  const reportInventory = async (force: boolean) => {
    try {
      const attributes = await collectInventory({ config, dataDir, configDir: options.configDir, log: log.child('inventory') });
      const text = JSON.stringify(attributes);
      if ((!force && text === lastInventory) || !offers?.connected()) return;
      lastInventory = text;
      const message: InventoryReport = { type: 'inventory', deviceId: config.id, seq: nextSeq(), attributes, reportedAt: now().toISOString() };
      offers.publishStatus(message);
    } catch (error) {
      log.warn('collecting the inventory failed', { error: (error as Error).message });
    }
  };
  const inventoryTimer = setInterval(() => void reportInventory(false), config.inventory.intervalSeconds * 1000);
  inventoryTimer.unref();

  const watchdog = notifier.watchdogIntervalMs ? setInterval(() => notifier.watchdog(), notifier.watchdogIntervalMs) : undefined;
  notifier.ready(`${updater.journal.update?.state ?? 'idle'}; running ${updater.journal.installed ? `${updater.journal.installed.bundle}@${updater.journal.installed.version}` : 'nothing'}`);
  // READY=1 means the journal is recovered and the worker can run: sent before the broker is
  // dialled, since the network may take long or be down (offers then come from the poll), and
  // systemd must not hold the boot or kill the daemon for that (TimeoutStartSec).
  // Where offers come from (device/offers.ts): MQTT notices, and the poll while MQTT is down.
  // mqtt (its streams and packet codec: ~40 ms of CPU on a small device) is loaded only now.
  const { default: mqtt } = await import('mqtt');
  offers = startOffers({
    connect: (url, mqttOptions) => mqtt.connect(url, mqttOptions),
    config,
    token,
    tls: identity,
    get: (url, get) => pool.get(url, get),
    log,
    random,
    pollRelease: options.pollRelease,
    onOffer: offer,
    onPolled: kick,
    onConnect: () => {
      report(updater.journal, lastInfo);
      void reportInventory(true);
    },
  });
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

  // An enrolled device renews its certificate by itself (two thirds into its life), checked at
  // start and every hour; a failure is retried at the next check (a third of the life remains).
  const renewCheck = config.certFile ? startRenewal() : undefined;
  function startRenewal(): NodeJS.Timeout {
    const check = () =>
      import('./enroll.ts')
        .then(({ renewIfDue }) => renewIfDue({ config, configDir: options.configDir, now: now(), timeoutMs: config.timeoutSeconds * 1000, log: log.child('identity'), pool }))
        .then(async (renewed) => {
          const identity = renewed ? await readIdentity(config, options.configDir) : undefined;
          if (identity) {
            pool.setIdentity(identity);
            offers?.updateTls(identity);
          }
        })
        .catch((error: unknown) => log.warn('certificate renewal failed; retrying at the next check', { error }));
    void check();
    const timer = setInterval(() => void check(), renewalCheckMs);
    timer.unref();
    return timer;
  }

  return {
    async stop() {
      if (renewCheck) clearInterval(renewCheck);
      watch.stop();
      notifier.stopping();
      stopController.abort();
      offers!.stopPolling();
      clearInterval(inventoryTimer);
      if (watchdog) clearInterval(watchdog);
      // A step that cannot be interrupted (a hook, a health check) is not waited for long: the
      // journal already says how to go on after a restart.
      await Promise.race([running, sleep(5_000)]);
      await offers!.close();
      notifier.close();
    },
  };
}
