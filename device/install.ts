import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../lib/files.ts';
import type { Logger } from '../protocol/log.ts';
import { UpdateError } from './errors.ts';
import type { ModuleTable } from './modules.ts';
import type { PlannedArtifact } from './state.ts';

/**
 * Slots: each release installs into a directory of its own under `slots/`; `current` is a
 * symlink switched with rename(2), which replaces it atomically (POSIX), so a reader sees the old
 * slot or the new one, never a mix. A slot is built in `slots/.stage-<slot>`, made durable, then
 * renamed to its name: a slot that exists under its name is complete.
 */
export function slotsDir(dataDir: string): string {
  return path.join(dataDir, 'slots');
}

export async function slotExists(dataDir: string, slot: string): Promise<boolean> {
  try {
    return (await fs.lstat(path.join(slotsDir(dataDir), slot))).isDirectory();
  } catch {
    return false;
  }
}

/** Stages `slot` from verified downloads through the update modules. Idempotent: starts over. */
export async function stageSlot(options: {
  dataDir: string;
  slot: string;
  release: { bundle: string; version: string };
  artifacts: readonly PlannedArtifact[];
  sourceOf: (artifact: { sha256: string }) => string;
  modules: ModuleTable;
  log: Logger;
}): Promise<void> {
  const { dataDir, slot } = options;
  if (await slotExists(dataDir, slot)) return;
  const stageDir = path.join(slotsDir(dataDir), `.stage-${slot}`);
  await fs.rm(stageDir, { recursive: true, force: true });
  await fs.mkdir(stageDir, { recursive: true });
  try {
    for (const artifact of options.artifacts) {
      await options.modules[artifact.type].stage({
        artifact,
        source: options.sourceOf(artifact),
        stageDir,
        slot,
        release: options.release,
        blobPath: (sha256) => options.sourceOf({ sha256 }),
        log: options.log,
      });
    }
    await syncTree(stageDir);
    await fs.rename(stageDir, path.join(slotsDir(dataDir), slot));
    await syncDirectory(slotsDir(dataDir));
  } catch (error) {
    await fs.rm(stageDir, { recursive: true, force: true });
    if (error instanceof UpdateError) throw error;
    const code = (error as NodeJS.ErrnoException).code === 'ENOSPC' ? 'insufficient_space' : 'install_failed';
    throw new UpdateError(code, `cannot stage ${slot}: ${(error as Error).message}`, code === 'insufficient_space', { cause: error });
  }
}

/** fsync every file and directory under `dir`, so the slot survives a power loss once renamed. */
async function syncTree(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(full);
    else if (entry.isFile()) {
      const handle = await fs.open(full, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  }
  await syncDirectory(dir);
}

/** Where `current` points now (the slot name), or null. */
export async function readCurrentSlot(dataDir: string): Promise<string | null> {
  try {
    return path.basename(await fs.readlink(path.join(dataDir, 'current')));
  } catch {
    return null;
  }
}

/**
 * Points `current` at `slot` atomically: a new symlink renamed over the old one, then fsync of
 * the directory. `null` removes `current` (a rollback of a first install: nothing ran before).
 * Idempotent, so a crash at any instant is repaired by doing it again.
 */
export async function switchCurrent(dataDir: string, slot: string | null): Promise<void> {
  const current = path.join(dataDir, 'current');
  if (slot === null) {
    await fs.rm(current, { force: true });
  } else {
    if (!(await slotExists(dataDir, slot))) throw new UpdateError('install_failed', `slot ${slot} is missing`, false);
    const temp = path.join(dataDir, `.current-${randomBytes(4).toString('hex')}`);
    await fs.symlink(path.join('slots', slot), temp);
    await fs.rename(temp, current);
  }
  await syncDirectory(dataDir);
}

/** Removes every slot (and leftover stage directory or temp link) except those named. */
export async function pruneSlots(dataDir: string, keep: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await fs.readdir(slotsDir(dataDir)).catch(() => [] as string[])) {
    if (keep.has(entry)) continue;
    await fs.rm(path.join(slotsDir(dataDir), entry), { recursive: true, force: true });
    removed.push(entry);
  }
  for (const entry of await fs.readdir(dataDir).catch(() => [] as string[])) {
    if (entry.startsWith('.current-')) await fs.rm(path.join(dataDir, entry), { force: true });
  }
  return removed;
}
