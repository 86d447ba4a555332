import type { CredentialVerdict, DeviceCredential } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import { UpstreamUnavailable } from './upstream.ts';

/*
 * Live MQTT sessions at the edge (issue 12). A credential is checked with the origin when a
 * device signs in; the edge holds no device table and the origin does not call edges (an edge
 * may sit behind NAT), so a device revoked at the origin would keep a session already open here
 * until it reconnected. So the edge asks again, for every device connected to its broker, every
 * `intervalMs`, through the same cache as sign-ins (credentials.ts: the origin is asked once the
 * cached verdict is `CONVOY_EDGE_AUTH_TTL_MS` old). A device the origin no longer knows (revoked,
 * decommissioned), or now names another device or group, is disconnected; its reconnect meets
 * the cached refusal. Bound, while the link is up: the cache's fresh time plus `intervalMs`.
 * While the origin is out of reach the cached verdict stands (up to the stale time), as for
 * sign-ins, and the session is left alone: a link drop must not cut the shop's devices off.
 */

export interface SessionWatch {
  /** A device signed in with this credential (its latest one replaces an earlier). */
  signedIn(deviceId: string, group: string, credential: DeviceCredential): void;
  /** The device's last session ended. */
  signedOut(deviceId: string): void;
  /** Checks every connected device now; resolves with the ids disconnected. */
  sweep(): Promise<string[]>;
  stop(): void;
}

/** Whether a fresh verdict still stands for a session opened as `deviceId` in `group` (pure). */
export function sessionHolds(verdict: CredentialVerdict, deviceId: string, group: string): boolean {
  return verdict.device !== null && verdict.device.id === deviceId && verdict.device.group === group;
}

export function createSessionWatch(deps: {
  check(credential: DeviceCredential): Promise<CredentialVerdict>;
  disconnect(deviceId: string): void;
  intervalMs: number;
  log: Logger;
}): SessionWatch {
  const sessions = new Map<string, { group: string; credential: DeviceCredential }>();
  let running: Promise<string[]> | undefined;

  async function sweepOnce(): Promise<string[]> {
    const dropped: string[] = [];
    for (const [deviceId, session] of [...sessions]) {
      let verdict: CredentialVerdict;
      try {
        verdict = await deps.check(session.credential);
      } catch (error) {
        // No answer and nothing usable cached: the origin said nothing new; the session stays.
        if (!(error instanceof UpstreamUnavailable)) deps.log.warn('session check failed', { device: deviceId, error: (error as Error).message });
        continue;
      }
      // Signed in again with another credential while this one was asked about: that one counts.
      if (sessions.get(deviceId) !== session || sessionHolds(verdict, deviceId, session.group)) continue;
      sessions.delete(deviceId);
      deps.log.info('device no longer holds at the origin; its MQTT session is closed', { device: deviceId });
      deps.disconnect(deviceId);
      dropped.push(deviceId);
    }
    return dropped;
  }

  const sweep = (): Promise<string[]> => {
    running ??= sweepOnce().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void sweep().catch((error: unknown) => deps.log.error('session sweep failed', { error })), deps.intervalMs);
  timer.unref();

  return {
    signedIn(deviceId, group, credential) {
      sessions.set(deviceId, { group, credential });
    },
    signedOut(deviceId) {
      sessions.delete(deviceId);
    },
    sweep,
    stop: () => clearInterval(timer),
  };
}
