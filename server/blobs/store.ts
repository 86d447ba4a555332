import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestPattern, hexOf } from '../../protocol/names.ts';
import { ensurePrivateDir, syncDirectory } from '../../lib/files.ts';
import { ApiError } from '../http/errors.ts';

/**
 * The content-addressed blob store: `sha256:<hex>` → bytes, immutable once written.
 *
 * Layout: `<root>/sha256/<first two hex>/<hex>` for blobs, `<root>/uploads/` for bytes in flight.
 * A write streams into a temp file while hashing, is fsynced, checked against the expected digest
 * and only then renamed into place (and the directory fsynced), so a crash never leaves a
 * partial blob under a digest name.
 */
export class BlobStore {
  readonly #root: string;
  readonly #references = new ReferenceLock();

  private constructor(root: string) {
    this.#root = root;
  }

  /** Directories 0700 and files 0600 (tightened at open where an older version left them looser). */
  static async open(root: string): Promise<BlobStore> {
    for (const dir of [root, path.join(root, 'sha256'), path.join(root, 'uploads')]) await ensurePrivateDir(dir);
    for (const prefix of await fs.readdir(path.join(root, 'sha256'))) {
      if (/^[0-9a-f]{2}$/.test(prefix)) await ensurePrivateDir(path.join(root, 'sha256', prefix));
    }
    return new BlobStore(root);
  }

  /** The file holding a blob. The digest is validated first: it came from a request. */
  pathOf(digest: string): string {
    if (!digestPattern.test(digest)) throw new ApiError('invalid_digest', `invalid digest "${digest}"`);
    const hex = hexOf(digest);
    return path.join(this.#root, 'sha256', hex.slice(0, 2), hex);
  }

  async stat(digest: string): Promise<{ size: number } | undefined> {
    try {
      const stat = await fs.stat(this.pathOf(digest));
      return { size: stat.size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /**
   * Streams `source` into the store. With `expected` set the bytes must hash to it (else
   * `digest_mismatch`, nothing stored); `maxBytes` bounds the upload whatever the client claims.
   */
  async put(source: Readable, options: { expected?: string; maxBytes: number; expectedSize?: number }): Promise<{ digest: string; size: number }> {
    const tempPath = path.join(this.#root, 'uploads', `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > options.maxBytes) {
          callback(new ApiError('payload_too_large', `blob exceeds the limit of ${options.maxBytes} bytes`));
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    // The stream owns its file descriptor (autoClose), so a client that drops the connection
    // mid-upload cannot leave a descriptor or a pending write behind; fsync then goes through a
    // second descriptor (fsync flushes the file, whichever descriptor asks).
    const out = createWriteStream(tempPath, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(source, meter, out);
      const handle = await fs.open(tempPath, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      await fs.rm(tempPath, { force: true });
      throw error;
    }
    const digest = `sha256:${hash.digest('hex')}`;
    try {
      if (options.expectedSize !== undefined && options.expectedSize !== size) {
        throw new ApiError('size_mismatch', `received ${size} bytes, expected ${options.expectedSize}`);
      }
      if (options.expected !== undefined && options.expected !== digest) {
        throw new ApiError('digest_mismatch', `content hashes to ${digest}, not ${options.expected}`);
      }
      const finalPath = this.pathOf(digest);
      await fs.mkdir(path.dirname(finalPath), { recursive: true, mode: 0o700 });
      // Identical bytes may already be there (content addressing): the rename replaces a file
      // with the same content, which is harmless and keeps this path free of races.
      await fs.rename(tempPath, finalPath);
      await syncDirectory(path.dirname(finalPath));
    } finally {
      await fs.rm(tempPath, { force: true });
    }
    return { digest, size };
  }

  /** Stores bytes held in memory (manifests, small metadata). */
  async putBytes(bytes: Buffer): Promise<{ digest: string; size: number }> {
    return this.put(Readable.from([bytes]), { maxBytes: bytes.length });
  }

  /** Opens a blob for reading, optionally a byte range [start, end] inclusive. */
  openRead(digest: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathOf(digest), range);
  }

  async readBytes(digest: string): Promise<Buffer> {
    return fs.readFile(this.pathOf(digest));
  }

  /**
   * Runs `work` (which checks that blobs exist and then records references to them) while the
   * garbage collector cannot delete anything: a reference is never recorded to a blob that is
   * being collected. Many may run at once; the collector waits for them and they for it.
   */
  referencing<T>(work: () => Promise<T>): Promise<T> {
    return this.#references.shared(work);
  }

  /** Runs the collector's sweep alone: no `referencing` work runs meanwhile. */
  sweeping<T>(work: () => Promise<T>): Promise<T> {
    return this.#references.exclusive(work);
  }

  /** Every stored blob with its size and last write time. */
  async list(): Promise<{ digest: string; size: number; mtimeMs: number }[]> {
    const result: { digest: string; size: number; mtimeMs: number }[] = [];
    const base = path.join(this.#root, 'sha256');
    for (const prefix of await fs.readdir(base)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of await fs.readdir(path.join(base, prefix))) {
        const digest = `sha256:${name}`;
        if (!digestPattern.test(digest) || !name.startsWith(prefix)) continue;
        const stat = await fs.stat(path.join(base, prefix, name)).catch(() => undefined);
        if (stat?.isFile()) result.push({ digest, size: stat.size, mtimeMs: stat.mtimeMs });
      }
    }
    return result;
  }

  /** Temp files of uploads (in flight or abandoned by a crash) with their last write time. */
  async listUploads(): Promise<{ name: string; mtimeMs: number }[]> {
    const dir = path.join(this.#root, 'uploads');
    const result: { name: string; mtimeMs: number }[] = [];
    for (const name of await fs.readdir(dir)) {
      const stat = await fs.stat(path.join(dir, name)).catch(() => undefined);
      if (stat) result.push({ name, mtimeMs: stat.mtimeMs });
    }
    return result;
  }

  async removeUpload(name: string): Promise<void> {
    if (!/^[0-9]+-[0-9a-f]{16}$/.test(name)) return;
    await fs.rm(path.join(this.#root, 'uploads', name), { force: true });
  }

  /** Deletes a blob. Only the garbage collector calls this, inside `sweeping`. */
  async remove(digest: string): Promise<void> {
    const file = this.pathOf(digest);
    await fs.rm(file, { force: true });
    await syncDirectory(path.dirname(file));
  }

  /** Refreshes a blob's write time, so a collector sweep treats it as new (in its grace period). */
  async touch(digest: string): Promise<void> {
    const now = new Date();
    await fs.utimes(this.pathOf(digest), now, now).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}

/** A readers-writer lock: many `shared` holders, or one `exclusive` holder. */
class ReferenceLock {
  #readers = 0;
  #writer: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  async shared<T>(work: () => Promise<T>): Promise<T> {
    while (this.#writer) await this.#writer;
    this.#readers++;
    try {
      return await work();
    } finally {
      this.#readers--;
      if (this.#readers === 0) this.#drained?.();
    }
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.#writer) await this.#writer;
    let release!: () => void;
    this.#writer = new Promise((resolve) => (release = resolve));
    try {
      while (this.#readers > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
      return await work();
    } finally {
      this.#drained = undefined;
      this.#writer = undefined;
      release();
    }
  }
}
