import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestPattern, hexOf } from '../../protocol/names.ts';
import { syncDirectory } from '../../lib/files.ts';
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

  private constructor(root: string) {
    this.#root = root;
  }

  static async open(root: string): Promise<BlobStore> {
    await fs.mkdir(path.join(root, 'sha256'), { recursive: true });
    await fs.mkdir(path.join(root, 'uploads'), { recursive: true });
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
    const handle = await fs.open(tempPath, 'wx', 0o644);
    try {
      await pipeline(source, meter, createWriteStream('', { fd: handle.fd, autoClose: false }));
      await handle.sync();
    } catch (error) {
      await handle.close();
      await fs.rm(tempPath, { force: true });
      throw error;
    }
    await handle.close();
    const digest = `sha256:${hash.digest('hex')}`;
    try {
      if (options.expectedSize !== undefined && options.expectedSize !== size) {
        throw new ApiError('size_mismatch', `received ${size} bytes, expected ${options.expectedSize}`);
      }
      if (options.expected !== undefined && options.expected !== digest) {
        throw new ApiError('digest_mismatch', `content hashes to ${digest}, not ${options.expected}`);
      }
      const finalPath = this.pathOf(digest);
      await fs.mkdir(path.dirname(finalPath), { recursive: true });
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
}
