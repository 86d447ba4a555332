import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../protocol/log.ts';
import { hexOf } from '../../protocol/names.ts';
import type { BlobStore } from '../blobs/store.ts';

/*
 * The edge's serve-time check: a blob is served only while its file is the one the edge verified
 * (same size, modification time to the second and inode as when its sha256 was last checked). A file changed on
 * disk since (a bad sector, a careless hand, an intruder) is hashed again before it is served; one
 * that no longer matches its digest is moved aside to `quarantine/` and fetched again from the
 * origin, verified as any mirrored blob. Devices verify every artifact themselves as well: this
 * keeps a damaged edge from sending them bytes they would refuse.
 */

export interface IntegrityCheck {
  /** Records a blob the mirror just verified. */
  trust(digest: string): Promise<void>;
  /** Whether the blob may be served now (after repairing it if it can); false: it is not there. */
  ensure(digest: string): Promise<boolean>;
}

export function createIntegrityCheck(deps: { blobs: BlobStore; quarantineDir: string; refetch(digest: string): Promise<boolean>; log: Logger }): IntegrityCheck {
  const verified = new Map<string, string>();
  const inFlight = new Map<string, Promise<boolean>>();
  const signature = async (digest: string): Promise<string | undefined> => {
    const stat = await fs.stat(deps.blobs.pathOf(digest)).catch(() => undefined);
    // Whole seconds: what every file system, utimes(2) and copies keep alike.
    return stat ? `${stat.size}:${Math.floor(stat.mtimeMs / 1000)}:${stat.ino}` : undefined;
  };
  async function hashOf(file: string): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    return `sha256:${hash.digest('hex')}`;
  }
  async function check(digest: string): Promise<boolean> {
    const file = deps.blobs.pathOf(digest);
    const before = await signature(digest);
    if (!before) return false;
    if ((await hashOf(file)) === digest) {
      verified.set(digest, before);
      return true;
    }
    await fs.mkdir(deps.quarantineDir, { recursive: true });
    await fs.rename(file, path.join(deps.quarantineDir, `${hexOf(digest)}-${Date.now()}`)).catch(() => fs.rm(file, { force: true }));
    verified.delete(digest);
    deps.log.error('a mirrored blob no longer matches its digest: quarantined, fetching it again', { digest });
    if (!(await deps.refetch(digest))) return false;
    return check(digest);
  }
  return {
    async trust(digest) {
      const current = await signature(digest);
      if (current) verified.set(digest, current);
    },
    async ensure(digest) {
      const current = await signature(digest);
      if (!current) return false;
      if (verified.get(digest) === current) return true;
      let running = inFlight.get(digest);
      if (!running) {
        running = check(digest).finally(() => inFlight.delete(digest));
        inFlight.set(digest, running);
      }
      return running;
    },
  };
}
