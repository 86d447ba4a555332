import { ApiFailure, type Client } from './api.ts';
import { Sha256 } from './sha256.ts';

/**
 * Resumable upload of a large file through the registry's upload sessions (OCI distribution
 * spec, "pushing a blob in chunks": POST, PATCH with Content-Range, PUT ?digest=). A dropped
 * connection costs at most the chunk in flight: the upload asks the server how far it got and
 * continues from there, with a growing pause between attempts. The session's URL is kept in
 * sessionStorage, so dropping the same file again (even after a reload) resumes it.
 */

export interface ResumableConfig {
  /** Bytes per PATCH request: what a broken connection can cost at most. */
  chunkBytes: number;
  /** Pauses before successive retries of one chunk (ms); after the last, the upload fails. */
  retryDelaysMs: number[];
}

export const defaultResumable: ResumableConfig = {
  chunkBytes: 8 * 1024 * 1024,
  retryDelaysMs: [500, 1000, 2000, 4000, 8000, 15000],
};

/** Files from this size go through a resumable session; smaller ones in one request. */
export const resumableFromBytes = 16 * 1024 * 1024;

export interface UploadTask {
  done: Promise<{ digest: string; size: number }>;
  abort(): void;
}

class Aborted extends Error {}

function keyOf(bundle: string, file: File): string {
  return `convoy.upload:${bundle}:${file.name}:${file.size}:${file.lastModified}`;
}

/** One request through XMLHttpRequest (for upload progress); resolves with the status and headers. */
function send(
  client: Client,
  method: string,
  url: string,
  body: Blob | null,
  headers: Record<string, string>,
  onProgress: (sent: number) => void,
  register: (xhr: XMLHttpRequest) => void,
): Promise<{ status: number; header(name: string): string | null; text: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    register(xhr);
    xhr.open(method, url);
    xhr.setRequestHeader('authorization', `Bearer ${client.token}`);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => resolve({ status: xhr.status, header: (name) => xhr.getResponseHeader(name), text: xhr.responseText });
    xhr.onerror = () => reject(new ApiFailure(0, 'network', 'the connection to the server was lost'));
    xhr.onabort = () => reject(new Aborted('cancelled'));
    xhr.send(body);
  });
}

/** The registry's error shape (`{errors: [{code, message, detail}]}`) or ours. */
function failureOf(status: number, text: string): ApiFailure & { offset?: number } {
  let code = `http_${status}`;
  let message = `the server answered ${status}`;
  let offset: number | undefined;
  try {
    const body = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: { offset?: number } }[]; error?: { code?: string; message?: string } };
    const first = body.errors?.[0] ?? body.error;
    if (first?.code) code = first.code;
    if (first?.message) message = first.message;
    const detail = body.errors?.[0]?.detail?.offset;
    if (typeof detail === 'number') offset = detail;
  } catch {
    // Not JSON: the status says enough.
  }
  return Object.assign(new ApiFailure(status, code, message), { offset });
}

/** `Range: 0-<last byte>`: the bytes the session holds (`0-0` is what an empty session says). */
function heldOf(range: string | null): number | undefined {
  const match = /^0-(\d+)$/.exec(range ?? '');
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

const transient = (error: unknown) => error instanceof ApiFailure && (error.status === 0 || error.status >= 500 || error.status === 408 || error.status === 429);

export function uploadResumable(
  client: Client,
  bundle: string,
  file: File,
  onProgress: (sent: number, total: number) => void,
  config: ResumableConfig = defaultResumable,
): UploadTask {
  let current: XMLHttpRequest | undefined;
  let aborted = false;
  const register = (xhr: XMLHttpRequest) => (current = xhr);
  const storageKey = keyOf(bundle, file);
  const repository = `/v2/${bundle}/ui-uploads/blobs/uploads/`;

  const run = async (): Promise<{ digest: string; size: number }> => {
    let location = window.sessionStorage.getItem(storageKey);
    let offset = 0;
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    /** Asks the session how many bytes it holds (undefined: the session is gone). */
    const held = async (): Promise<number | undefined> => {
      if (!location) return undefined;
      const res = await send(client, 'GET', location, null, {}, () => undefined, register);
      if (res.status === 404) return undefined;
      if (res.status >= 300) throw failureOf(res.status, res.text);
      return heldOf(res.header('range')) ?? 0;
    };

    if (location) offset = (await held().catch(() => undefined)) ?? -1;
    if (!location || offset < 0) {
      const res = await send(client, 'POST', repository, null, {}, () => undefined, register);
      if (res.status !== 202) throw failureOf(res.status, res.text);
      location = res.header('location');
      if (!location) throw new ApiFailure(0, 'bad_answer', 'the server started an upload without saying where');
      window.sessionStorage.setItem(storageKey, location);
      offset = 0;
    }

    // The digest covers every byte in order: hash what the server already holds first.
    let hash = new Sha256();
    let hashed = 0;
    const hashTo = async (end: number) => {
      if (end < hashed) {
        hash = new Sha256();
        hashed = 0;
      }
      for (; hashed < end; ) {
        const stop = Math.min(end, hashed + config.chunkBytes);
        hash.update(new Uint8Array(await file.slice(hashed, stop).arrayBuffer()));
        hashed = stop;
      }
    };
    await hashTo(offset);
    onProgress(offset, file.size);

    let attempt = 0;
    while (offset < file.size) {
      if (aborted) throw new Aborted('cancelled');
      const end = Math.min(file.size, offset + config.chunkBytes);
      try {
        const res = await send(client, 'PATCH', location, file.slice(offset, end), { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}` }, (sent) => onProgress(offset + sent, file.size), register);
        if (res.status === 416) {
          // The session is elsewhere than we thought (a chunk that landed though its answer was lost).
          const failure = failureOf(res.status, res.text);
          if (failure.offset === undefined) throw failure;
          await hashTo(failure.offset);
          offset = failure.offset;
          continue;
        }
        if (res.status !== 202) throw failureOf(res.status, res.text);
        location = res.header('location') ?? location;
        await hashTo(end);
        offset = end;
        attempt = 0;
      } catch (error) {
        if (error instanceof Aborted || aborted) throw error;
        if (!transient(error) || attempt >= config.retryDelaysMs.length) throw error;
        await pause(config.retryDelaysMs[attempt++]!);
        // Resume where the server is, which may be past where the broken request started.
        const now = await held().catch(() => undefined);
        if (now === undefined) continue; // still unreachable: the next attempt asks again
        await hashTo(now);
        offset = now;
      }
    }
    const digest = `sha256:${hash.hex()}`;
    const finish = await send(client, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, null, {}, () => undefined, register);
    if (finish.status !== 201) throw failureOf(finish.status, finish.text);
    window.sessionStorage.removeItem(storageKey);
    onProgress(file.size, file.size);
    return { digest, size: file.size };
  };

  const done = run().catch((error: unknown) => {
    if (error instanceof Aborted) {
      const location = window.sessionStorage.getItem(storageKey);
      window.sessionStorage.removeItem(storageKey);
      // A cancelled upload frees its space on the server at once (best effort).
      if (location) void fetch(location, { method: 'DELETE', headers: { authorization: `Bearer ${client.token}` } }).catch(() => undefined);
      throw new ApiFailure(0, 'aborted', 'the upload was cancelled');
    }
    throw error;
  });
  return {
    done,
    abort() {
      aborted = true;
      current?.abort();
    },
  };
}
