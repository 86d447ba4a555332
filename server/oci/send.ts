import fs from 'node:fs/promises';
import type Koa from 'koa';

/**
 * Sends bytes [start, end] of a file with two reused buffers instead of a ReadStream. A
 * ReadStream allocates a fresh buffer per read; at a gigabyte per pull those are tens of
 * megabytes of garbage waiting for V8's next collection, which is what dominated the server's
 * peak RSS in scripts/bench/oci. Here a buffer is read into only after the socket reported the
 * write that used it as done, so memory stays flat whatever the size, and reads overlap writes.
 * The caller has set status and headers; this takes over the response (`respond = false`).
 */
const bufferBytes = 1024 * 1024;

export async function sendFileRange(koa: Koa.Context, file: string, start: number, end: number): Promise<void> {
  const handle = await fs.open(file, 'r');
  koa.respond = false;
  const res = koa.res;
  res.statusCode = koa.status;
  let failed = false;
  // A client that goes away may leave a write callback uncalled: 'close' ends the wait too.
  let onClose = () => {};
  const closed = new Promise<void>((resolve) => {
    onClose = () => {
      failed = true;
      resolve();
    };
  });
  res.once('close', onClose);
  const buffers = [Buffer.allocUnsafeSlow(Math.min(bufferBytes, end - start + 1)), Buffer.allocUnsafeSlow(Math.min(bufferBytes, end - start + 1))];
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve) => {
      res.write(chunk, (error) => {
        if (error) failed = true;
        resolve();
      });
    });
  try {
    let position = start;
    let pending: Promise<void> | undefined;
    for (let turn = 0; position <= end && !failed; turn++) {
      const buffer = buffers[turn % 2]!;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position + 1), position);
      if (bytesRead === 0) break; // the file is shorter than its size said: end the response short
      await Promise.race([pending, closed]);
      if (failed) break;
      pending = write(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    await Promise.race([pending, closed]);
    if (failed || position <= end) res.destroy();
    else res.end();
  } catch (error) {
    res.destroy(error as Error);
  } finally {
    res.off('close', onClose);
    await handle.close();
  }
}
