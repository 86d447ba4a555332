import { Transform } from 'node:stream';

/*
 * Progress of a long transfer, for people at a terminal: bytes, rate, time left, redrawn on one
 * stderr line at most every `intervalMs`. Scripts (stderr not a TTY, or --json) see nothing.
 */

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** One progress line. Pure: `done` of `total` bytes after `elapsedMs`, `start` bytes already there before (a resume). */
export function describeProgress(p: { done: number; total: number; start: number; elapsedMs: number }): string {
  const moved = p.done - p.start;
  const rate = p.elapsedMs > 0 ? (moved * 1000) / p.elapsedMs : 0;
  const percent = p.total > 0 ? Math.floor((p.done * 100) / p.total) : 100;
  const left = rate > 0 ? (p.total - p.done) / rate : Number.POSITIVE_INFINITY;
  return `${formatBytes(p.done)} / ${formatBytes(p.total)} (${percent}%)  ${formatBytes(Math.round(rate))}/s  ${formatDuration(left)} left`;
}

export interface Progress {
  /** A pass-through stream that counts the bytes going by. */
  meter(): Transform;
  done(): void;
}

export function createProgress(options: { total: number; start?: number; enabled: boolean; write?: (text: string) => void; now?: () => number; intervalMs?: number }): Progress {
  const write = options.write ?? ((text: string) => process.stderr.write(text));
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? 250;
  const start = options.start ?? 0;
  const began = now();
  let done = start;
  let last = 0;
  let drawn = false;
  const draw = () => {
    write(`\r\x1b[K${describeProgress({ done, total: options.total, start, elapsedMs: now() - began })}`);
    drawn = true;
  };
  return {
    meter() {
      return new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          done += chunk.length;
          if (options.enabled && now() - last >= interval) {
            last = now();
            draw();
          }
          callback(null, chunk);
        },
      });
    },
    done() {
      if (!options.enabled) return;
      draw();
      if (drawn) write('\n');
    },
  };
}
