import type { Logger } from '../../protocol/log.ts';
import { deviceReleaseTopic } from '../../protocol/messages.ts';
import { UpstreamUnavailable, type Upstream } from './upstream.ts';

/*
 * Release notices for devices connected to the edge's broker. The origin publishes a device's
 * notice on its own broker; a device signed in at the edge asks the edge's broker instead, so the
 * edge asks the origin for each connected device's release (`GET /api/v1/devices/ID/release`,
 * with the device's own token, so the origin's rules apply) every `intervalMs`, and publishes the
 * answer retained on the device's topic when it changed. While the origin cannot be reached the
 * last notice stays retained. A device signed in by certificate (the mqtts listener) has no token
 * to forward: the edge asks by id with its own token (`GET /api/v1/edge/devices/ID/release`), as
 * for the HTTPS release poll.
 */

export interface NoticeRelay {
  /** A device signed in with this token (kept in memory only, to ask on its behalf); undefined: by certificate. */
  signedIn(deviceId: string, token: string | undefined): void;
  presence(deviceId: string, online: boolean): void;
  /** Asks the origin for every connected device now (tests, and each interval). */
  refresh(): Promise<void>;
  stop(): void;
}

export function createNoticeRelay(deps: { upstream: Pick<Upstream, 'forward' | 'deviceRelease'>; publish(topic: string, payload: string, retain: boolean): Promise<void>; intervalMs: number; log: Logger }): NoticeRelay {
  const tokens = new Map<string, string | undefined>();
  const online = new Set<string>();
  const last = new Map<string, string>();
  let running: Promise<void> | undefined;

  async function refreshOne(id: string): Promise<void> {
    if (!tokens.has(id)) return;
    const token = tokens.get(id);
    try {
      const answer = token === undefined ? await deps.upstream.deviceRelease(id) : await deps.upstream.forward(`/api/v1/devices/${encodeURIComponent(id)}/release`, `Bearer ${token}`);
      // 204: nothing to run (or the notice was withdrawn); an empty retained message clears it (MQTT 3.1.1 §3.3.1.3).
      const payload = answer.status === 200 ? answer.body.toString('utf8') : answer.status === 204 ? '' : undefined;
      if (payload === undefined || last.get(id) === payload) return;
      if (payload === '' && !last.has(id)) return;
      await deps.publish(deviceReleaseTopic(id), payload, true);
      last.set(id, payload);
    } catch (error) {
      if (!(error instanceof UpstreamUnavailable)) deps.log.warn('release notice not relayed', { device: id, error: (error as Error).message });
    }
  }

  const refresh = (): Promise<void> => {
    running ??= Promise.all([...online].map(refreshOne))
      .then(() => undefined)
      .finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void refresh(), deps.intervalMs);
  timer.unref();

  return {
    signedIn(deviceId, token) {
      tokens.set(deviceId, token);
    },
    presence(deviceId, isOnline) {
      if (isOnline) {
        online.add(deviceId);
        void refreshOne(deviceId);
      } else online.delete(deviceId);
    },
    refresh,
    stop: () => clearInterval(timer),
  };
}
