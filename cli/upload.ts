import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { writeFileAtomic } from '../lib/files.ts';
import { CliError, type ApiClient, type RequestBody } from './client.ts';
import type { Progress } from './progress.ts';

/*
 * A push that survives a cut connection. Big files go through an upload session (the server's
 * /v2 blob upload sessions, distribution spec "Pushing a blob in chunks"): chunk by chunk, each
 * chunk stored before the next is sent. The session's URL is kept in a small state file named by
 * the file's digest, so the next `convoy artifact push` of the same bytes asks the server how far
 * it got (GET on the session: `Range: 0-<last byte>`) and continues from there. A chunk cut
 * mid-way is dropped by the server whole, so the offset it reports is always a clean boundary.
 */

export const defaultChunkBytes = 64 * 1024 * 1024;

/** Where sessions are remembered: $XDG_STATE_HOME/convoy/uploads (default ~/.local/state). */
export function uploadStateDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'convoy', 'uploads');
}

interface SessionState {
  server: string;
  location: string;
  size: number;
}

/** The offset a session has reached, from its `Range: 0-N` header (N the last byte held). */
export function offsetOf(range: string | null): number {
  const match = /^0-(\d+)$/.exec(range ?? '');
  // "0-0" is what an empty session answers: chunks are never a single byte, so it means 0.
  return match && match[1] !== '0' ? Number(match[1]) + 1 : 0;
}

/**
 * Puts the file's bytes in the server's blob store; answers how many bytes were already there.
 * `startProgress(start)` shows progress, told where this run starts (bytes already on the server).
 */
export async function uploadBlob(options: {
  client: ApiClient;
  bundle: string;
  file: string;
  digest: string;
  size: number;
  chunkBytes: number;
  stateDir: string;
  startProgress: (start: number) => Progress;
  note: (text: string) => void;
}): Promise<{ resumedAt: number }> {
  const { client, file, digest, size } = options;
  // The server may hold the bytes already (a push that stored the blob, then failed after).
  const head = await client.raw('HEAD', `/api/v1/blobs/${digest}`).catch(() => undefined);
  if (head) return { resumedAt: size };

  const stateFile = path.join(options.stateDir, `${digest.slice('sha256:'.length)}.json`);
  let state: SessionState | undefined;
  try {
    state = JSON.parse(await fs.readFile(stateFile, 'utf8')) as SessionState;
    if (state.server !== client.baseUrl || state.size !== size || !/^\/v2\/[^?#]+\/blobs\/uploads\/[0-9a-f-]{36}$/.test(state.location)) state = undefined;
  } catch {
    state = undefined;
  }
  let offset = 0;
  if (state) {
    try {
      offset = offsetOf((await client.raw('GET', state.location)).headers.get('range'));
    } catch {
      state = undefined; // expired or removed on the server: start again
    }
  }
  if (!state) {
    const started = await client.raw('POST', `/v2/${options.bundle}/convoy-upload/blobs/uploads/`);
    const location = started.headers.get('location');
    if (!location) throw new CliError('the server started an upload session without a Location', 'upload_failed');
    state = { server: client.baseUrl, location: new URL(location, client.baseUrl).pathname, size };
    await fs.mkdir(options.stateDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(stateFile, JSON.stringify(state) + '\n', 0o600);
  } else if (offset > 0) {
    options.note(`resuming at byte ${offset} of ${size}: the server holds the rest of an earlier push`);
  }
  const resumedAt = offset;
  const progress = options.startProgress(offset);
  while (offset < size) {
    const end = Math.min(offset + options.chunkBytes, size) - 1;
    const stream = createReadStream(file, { start: offset, end, highWaterMark: 1 << 20 }).pipe(progress.meter());
    const answer = await client.raw('PATCH', state.location, {
      body: Readable.toWeb(stream as unknown as Readable) as unknown as RequestBody,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(end - offset + 1) },
    });
    offset = offsetOf(answer.headers.get('range'));
    if (offset !== end + 1) throw new CliError(`the server holds ${offset} bytes after a chunk ending at ${end + 1}`, 'upload_failed');
  }
  progress.done();
  await client.raw('PUT', `${state.location}?digest=${encodeURIComponent(digest)}`, { body: '', headers: { 'content-length': '0' } });
  await fs.rm(stateFile, { force: true });
  return { resumedAt };
}
