import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/*
 * Durable file primitives shared by the server and the daemon. lib/ holds I/O helpers that both
 * sides need and that protocol/ (pure by rule) cannot host.
 */

/** fsync a directory, so a rename or a new entry in it survives a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `bytes` so that after a crash at any instant the file holds either the old
 * or the new content, never a mix: write a temp file beside it, fsync, rename, fsync the directory.
 */
export async function writeFileAtomic(file: string, bytes: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  } finally {
    await handle.close().catch(() => {});
  }
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

export async function readFileIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Creates `dir` (and missing parents) readable by its owner only, and tightens it to 0700 if it
 * exists with looser bits (made by an older version, or by hand under a loose umask). Server data
 * (database, blobs, uploads) is nobody else's business on a shared machine.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await fs.stat(dir);
  if ((stat.mode & 0o777) !== 0o700) await fs.chmod(dir, 0o700);
}
