import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ensurePrivateDir, syncDirectory } from '../../lib/files.ts';
import type { BlobStore } from '../blobs/store.ts';
import { OciError } from './errors.ts';

/**
 * Upload session files (distribution spec, "Pushing blobs"): the bytes of one session live in
 * `<dir>/<id>`, appended chunk by chunk straight from the request stream, never held in memory.
 *
 * The running SHA-256 of each session is kept in memory, so completing a multi-gigabyte upload
 * does not read it back; after a restart (or a failed chunk) the hash is rebuilt from the file.
 * Requests on one session are serialised: two PATCHes racing on the same offset would interleave.
 */
/** How many bytes an upload writes between early write-backs to disk. */
const writebackBytes = 32 * 1024 * 1024;

export class UploadFiles {
  readonly #dir: string;
  readonly #hashes = new Map<string, { hash: Hash; size: number }>();
  readonly #locks = new Map<string, Promise<unknown>>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open(dir: string): Promise<UploadFiles> {
    await ensurePrivateDir(dir);
    return new UploadFiles(dir);
  }

  /** Session ids are server-made UUIDs, checked again here because they come back in URLs. */
  #pathOf(id: string): string {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new OciError('BLOB_UPLOAD_UNKNOWN', 'unknown upload session');
    return path.join(this.#dir, id);
  }

  async create(id: string): Promise<void> {
    await (await fs.open(this.#pathOf(id), 'wx', 0o600)).close();
    this.#hashes.set(id, { hash: createHash('sha256'), size: 0 });
  }

  /** Bytes received so far; undefined when the session file is gone. */
  async size(id: string): Promise<number | undefined> {
    try {
      return (await fs.stat(this.#pathOf(id))).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Runs `work` with the session to itself. */
  async exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve();
    const run = previous.catch(() => {}).then(work);
    this.#locks.set(id, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(id) === run) this.#locks.delete(id);
    }
  }

  /**
   * Appends `source` at `offset` (the current size). `expectedLength` (from Content-Range or
   * Content-Length) must match what arrives; the session never grows past `maxBytes`. On any
   * failure the file is cut back to `offset`, so a retried chunk starts from a clean end.
   */
  async append(id: string, source: Readable, options: { offset: number; maxBytes: number; expectedLength?: number }): Promise<number> {
    const file = this.#pathOf(id);
    const cached = this.#hashes.get(id);
    const hash = cached && cached.size === options.offset ? cached.hash : undefined;
    this.#hashes.delete(id); // re-set only once the chunk is complete
    let received = 0;
    const handle = await fs.open(file, 'r+');
    // Start writing back to disk while bytes still arrive, so the fsync before the blob is
    // committed finds little left to do (the reference registry does not fsync at all).
    let flushedAt = 0;
    let flushing: Promise<void> | undefined;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (options.offset + received > options.maxBytes) {
          callback(new OciError('SIZE_INVALID', `the blob exceeds the limit of ${options.maxBytes} bytes`, {}, { status: 413 }));
          return;
        }
        hash?.update(chunk);
        if (received - flushedAt >= writebackBytes && !flushing) {
          flushedAt = received;
          flushing = handle.datasync().then(
            () => void (flushing = undefined),
            () => void (flushing = undefined),
          );
        }
        callback(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream('', { fd: handle.fd, autoClose: false, start: options.offset }));
      await flushing;
      if (options.expectedLength !== undefined && received !== options.expectedLength) {
        throw new OciError('BLOB_UPLOAD_INVALID', `the chunk carried ${received} bytes, but its headers announced ${options.expectedLength}`);
      }
    } catch (error) {
      await flushing;
      await handle.truncate(options.offset).catch(() => {});
      throw error;
    } finally {
      await handle.close();
    }
    if (hash) this.#hashes.set(id, { hash, size: options.offset + received });
    return options.offset + received;
  }

  /** The digest of everything received, from the running hash when it covers the whole file. */
  async digest(id: string, size: number): Promise<string> {
    const cached = this.#hashes.get(id);
    if (cached && cached.size === size) return `sha256:${cached.hash.copy().digest('hex')}`;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(this.#pathOf(id))) hash.update(chunk as Buffer);
    return `sha256:${hash.digest('hex')}`;
  }

  /**
   * Moves a verified session file into the content-addressed store under its digest: fsync, then
   * rename (same file system: the store and the sessions live under the data dir), then fsync
   * the directory. Renaming avoids copying gigabytes a second time.
   */
  async commit(id: string, digest: string, blobs: BlobStore): Promise<void> {
    const file = this.#pathOf(id);
    const handle = await fs.open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const target = blobs.pathOf(digest);
    await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await fs.rename(file, target);
    await syncDirectory(path.dirname(target));
    this.#hashes.delete(id);
  }

  async remove(id: string): Promise<void> {
    this.#hashes.delete(id);
    await fs.rm(this.#pathOf(id), { force: true });
  }
}
