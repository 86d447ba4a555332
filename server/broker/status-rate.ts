import type { Logger } from '../../protocol/log.ts';

/**
 * Device status messages, per device, through a token bucket: `burst` at once, then `perSecond`.
 * Beyond that they are coalesced, not queued: the newest waits for the next slot and replaces any
 * that waited before it (those are dropped and counted), so a flood costs a bounded number of
 * database writes and the device's last word is still recorded. A flood is logged once when it
 * starts and once, with the count, at the first message after the device was quiet long enough to
 * earn its whole burst back.
 */
export interface StatusRateOptions {
  perSecond: number;
  burst: number;
  log: Logger;
  /** Milliseconds; injected so a test can drive the clock. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
  pending: (() => void) | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Messages replaced while waiting, in the current flood. */
  dropped: number;
  flooding: boolean;
}

export function createStatusRate(options: StatusRateOptions) {
  const now = options.now ?? Date.now;
  const buckets = new Map<string, Bucket>();

  const refill = (b: Bucket) => {
    const t = now();
    b.tokens = Math.min(options.burst, b.tokens + ((t - b.at) * options.perSecond) / 1000);
    b.at = t;
  };

  const fire = (key: string, b: Bucket) => {
    b.timer = undefined;
    refill(b);
    const deliver = b.pending;
    b.pending = undefined;
    b.tokens = Math.max(0, b.tokens - 1);
    deliver?.();
  };

  const schedule = (key: string, b: Bucket) => {
    const ms = Math.max(0, Math.ceil(((1 - b.tokens) * 1000) / options.perSecond));
    b.timer = setTimeout(() => fire(key, b), ms);
    b.timer.unref();
  };

  return {
    /** Runs `deliver` now, or later in place of whatever of this key waits, or never if replaced. */
    offer(key: string, deliver: () => void): 'now' | 'coalesced' {
      let b = buckets.get(key);
      if (!b) {
        b = { tokens: options.burst, at: now(), pending: undefined, timer: undefined, dropped: 0, flooding: false };
        buckets.set(key, b);
      }
      refill(b);
      if (!b.pending && b.tokens >= 1) {
        // The flood is over once the device was quiet long enough to earn its whole burst back.
        if (b.flooding && b.tokens >= options.burst) {
          options.log.info('device status flood over', { device: key, dropped: b.dropped });
          b.flooding = false;
          b.dropped = 0;
        }
        b.tokens -= 1;
        deliver();
        return 'now';
      }
      if (b.pending) b.dropped++;
      if (!b.flooding) {
        b.flooding = true;
        options.log.warn('device status messages over the rate; coalescing (the latest is kept)', { device: key, perSecond: options.perSecond, burst: options.burst });
      }
      b.pending = deliver;
      if (!b.timer) schedule(key, b);
      return 'coalesced';
    },
    /** Messages of `key` dropped in its current flood. */
    dropped: (key: string): number => buckets.get(key)?.dropped ?? 0,
    close() {
      for (const b of buckets.values()) clearTimeout(b.timer);
      buckets.clear();
    },
  };
}
