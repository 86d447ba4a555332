/**
 * Child process of scripts/bench/download: one convoyd download (lib/download.ts) in its own
 * process, as on a device, so it does not share an event loop with the server it reads from.
 * Prints {"seconds","received","resumedFrom"} as JSON; with --abort-at-half, stops at 50 %.
 */
import { downloadVerified } from '../../lib/download.ts';

const [url, token, destination, length, sha256, mode] = process.argv.slice(2);
const size = Number(length);
const cut = new AbortController();
const start = performance.now();
try {
  const result = await downloadVerified({
    url: url!, token: token!, destination: destination!, length: size, sha256: sha256!, stallTimeoutMs: 30_000,
    signal: cut.signal,
    onProgress: mode === '--abort-at-half' ? (bytes) => bytes >= size / 2 && cut.abort() : undefined,
  });
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - start) / 1000, ...result }) + '\n');
} catch (error) {
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - start) / 1000, error: (error as Error).message }) + '\n');
}
