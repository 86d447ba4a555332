import { createRequire } from 'node:module';
import type { Logger } from '../protocol/log.ts';

/**
 * sd_notify(3) for a Type=notify unit: READY=1 once the daemon runs, STATUS= lines for
 * `systemctl status`, WATCHDOG=1 at half the interval systemd asks for (WATCHDOG_USEC), so a hung
 * event loop gets the daemon restarted. Datagrams go to the unix socket named in NOTIFY_SOCKET
 * (`@` = Linux abstract namespace). Node has no unix datagram sockets, so this uses the
 * `unix-dgram` addon; it is loaded only when NOTIFY_SOCKET is set, and without it (or without
 * systemd) every call is a no-op.
 */
export interface Notifier {
  ready(status: string): void;
  status(status: string): void;
  watchdog(): void;
  stopping(): void;
  /** Half of WATCHDOG_USEC in milliseconds, when systemd asked for pings (and meant us). */
  watchdogIntervalMs: number | undefined;
  close(): void;
}

interface DgramSocket {
  send(buffer: Buffer, offset: number, length: number, path: string, callback?: (error?: Error) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  close(): void;
}

export function createNotifier(env: NodeJS.ProcessEnv, log: Logger): Notifier {
  const socketPath = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  // WATCHDOG_PID, when set, names the process the pings must come from (sd_watchdog_enabled(3)).
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogIntervalMs = Number.isFinite(usec) && usec > 0 && forUs ? Math.max(1, Math.floor(usec / 2000)) : undefined;
  let socket: DgramSocket | undefined;
  if (socketPath) {
    try {
      const unix = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
      socket = unix.createSocket('unix_dgram');
      socket.on('error', (error) => log.debug('sd_notify failed', { error }));
    } catch (error) {
      log.warn('NOTIFY_SOCKET is set but unix datagrams are unavailable; no systemd notifications', { error });
    }
  }
  const target = socketPath?.startsWith('@') ? `\0${socketPath.slice(1)}` : socketPath;
  const send = (text: string) => {
    if (!socket || !target) return;
    const buffer = Buffer.from(text);
    try {
      socket.send(buffer, 0, buffer.length, target);
    } catch (error) {
      log.debug('sd_notify failed', { error });
    }
  };
  // Status lines are one line each, bounded; systemd shows them as they are.
  const clean = (status: string) => status.replace(/[\r\n]+/g, ' ').slice(0, 400);
  return {
    ready: (status) => send(`READY=1\nSTATUS=${clean(status)}\nMAINPID=${process.pid}`),
    status: (status) => send(`STATUS=${clean(status)}`),
    watchdog: () => send('WATCHDOG=1'),
    stopping: () => send('STOPPING=1'),
    watchdogIntervalMs,
    close: () => socket?.close(),
  };
}
