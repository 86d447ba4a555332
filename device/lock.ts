import fs from 'node:fs/promises';

/**
 * The update lock, for the POS application: while a sale is in progress it writes its process id
 * into the lock file (default `<dataDir>/update.lock`) and removes the file when the sale ends.
 * The daemon downloads and stages meanwhile, and switches only once the lock is free. A lock
 * whose process no longer exists is stale (the application crashed) and does not hold the update
 * back forever. See docs/device-install.md.
 */
export type LockState = { held: false } | { held: true; pid: number | null };

export async function readUpdateLock(file: string, isAlive: (pid: number) => boolean = processAlive): Promise<LockState> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { held: false };
    throw error;
  }
  const pid = Number(text.trim());
  // No pid (an empty file made by `touch`): held until the file goes away.
  if (!Number.isInteger(pid) || pid <= 0) return { held: true, pid: null };
  return isAlive(pid) ? { held: true, pid } : { held: false };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user; that still holds the lock.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
