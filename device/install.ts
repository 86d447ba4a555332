import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../lib/files.ts';
import { UpdateError } from './errors.ts';

/**
 * Slots: each release installs into a fresh directory under `slots/`; `current` is a symlink that
 * is switched with rename(2), which replaces it atomically (POSIX), so a reader sees the old slot
 * or the new one, never a mix.
 */
export interface SlotFile {
  /** File name inside the slot (a validated artifact name). */
  name: string;
  /** Verified bytes to place there. */
  source: string;
}

export async function createSlot(dataDir: string, release: { bundle: string; version: string }, files: readonly SlotFile[]): Promise<string> {
  const slot = `${release.bundle}@${release.version}-${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const slotDir = path.join(dataDir, 'slots', slot);
  await fs.mkdir(slotDir, { recursive: true });
  try {
    for (const file of files) {
      const target = path.join(slotDir, file.name);
      // Reflink where the file system can (instant, no extra space); a plain copy elsewhere.
      await fs.copyFile(file.source, target, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
      const handle = await fs.open(target, 'r');
      await handle.sync();
      await handle.close();
    }
    await syncDirectory(slotDir);
    await syncDirectory(path.dirname(slotDir));
  } catch (error) {
    await fs.rm(slotDir, { recursive: true, force: true });
    throw new UpdateError('install_failed', `cannot stage ${release.bundle}@${release.version}: ${(error as Error).message}`, false, { cause: error });
  }
  return slot;
}

/** Points `current` at `slot` atomically: a new symlink renamed over the old one, then fsync. */
export async function switchCurrent(dataDir: string, slot: string): Promise<void> {
  const temp = path.join(dataDir, `.current-${randomBytes(4).toString('hex')}`);
  await fs.symlink(path.join('slots', slot), temp);
  await fs.rename(temp, path.join(dataDir, 'current'));
  await syncDirectory(dataDir);
}

/** Removes every slot except those named: old releases must not fill the disk. */
export async function pruneSlots(dataDir: string, keep: readonly string[]): Promise<void> {
  const slotsDir = path.join(dataDir, 'slots');
  for (const entry of await fs.readdir(slotsDir).catch(() => [] as string[])) {
    if (!keep.includes(entry)) await fs.rm(path.join(slotsDir, entry), { recursive: true, force: true });
  }
}
