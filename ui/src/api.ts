import type { z } from 'zod';

/**
 * The REST API as the UI uses it. Every answer is parsed with the schema the server declares for
 * it (protocol/), so a change on one side shows as a clear error, not as a blank screen.
 */

/** A refused or failed request, with the server's stable error code when it gave one. */
export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  pages: number;
}

export interface Client {
  token: string;
  /** Called when the server says the token is no longer good (expired, revoked). */
  onUnauthenticated?: () => void;
}

type Query = Record<string, string | number | undefined>;

function urlOf(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined && value !== '') params.set(key, String(value));
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

async function failureOf(response: Response): Promise<ApiFailure> {
  let code = 'http_' + response.status;
  let message = `the server answered ${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not our JSON error shape (a proxy's page, say): the status line says enough.
  }
  return new ApiFailure(response.status, code, message);
}

async function send(client: Client, method: string, path: string, options: { json?: unknown; query?: Query } = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${client.token}`, accept: 'application/json' };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(urlOf(path, options.query), { method, headers, body: options.json === undefined ? null : JSON.stringify(options.json) });
  } catch (error) {
    throw new ApiFailure(0, 'network', `the server could not be reached (${(error as Error).message})`);
  }
  if (!response.ok) {
    const failure = await failureOf(response);
    if (failure.status === 401) client.onUnauthenticated?.();
    throw failure;
  }
  return response;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ApiFailure(0, 'bad_answer', `the server's answer to ${what} is not what this UI expects: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

export async function getJson<S extends z.ZodType>(client: Client, path: string, schema: S, query?: Query): Promise<z.output<S>> {
  const response = await send(client, 'GET', path, { query });
  return parse(schema, await response.json(), `GET ${path}`);
}

/** A paginated listing (GitLab's headers: X-Total, X-Total-Pages, X-Page). */
export async function getPage<S extends z.ZodType>(client: Client, path: string, item: S, query?: Query): Promise<Page<z.output<S>>> {
  const response = await send(client, 'GET', path, { query });
  const items = (await response.json()) as unknown;
  if (!Array.isArray(items)) throw new ApiFailure(0, 'bad_answer', `GET ${path} did not answer a list`);
  const parsed = items.map((entry) => parse(item, entry, `GET ${path}`));
  const total = Number(response.headers.get('x-total') ?? parsed.length);
  return {
    items: parsed,
    total,
    page: Number(response.headers.get('x-page') ?? 1),
    pages: Number(response.headers.get('x-total-pages') ?? 1),
  };
}

/** Every page of a listing (for small ones, such as a version's artifacts for a diff). */
export async function getAll<S extends z.ZodType>(client: Client, path: string, item: S, query?: Query): Promise<z.output<S>[]> {
  const all: z.output<S>[] = [];
  for (let page = 1; ; page++) {
    const result = await getPage(client, path, item, { ...query, page, per_page: 100 });
    all.push(...result.items);
    if (page >= result.pages || result.items.length === 0) return all;
  }
}

export async function call<S extends z.ZodType>(client: Client, method: string, path: string, schema: S | undefined, json?: unknown): Promise<z.output<S> | undefined> {
  const response = await send(client, method, path, { json });
  if (!schema || response.status === 204) return undefined;
  return parse(schema, await response.json(), `${method} ${path}`);
}

export interface UploadHandle {
  done: Promise<unknown>;
  abort(): void;
}

/**
 * Streams a file to the server with upload progress (XMLHttpRequest reports it; fetch does not
 * for request bodies in every browser).
 */
export function uploadFile(client: Client, url: string, file: Blob, onProgress: (sent: number, total: number) => void): UploadHandle {
  const xhr = new XMLHttpRequest();
  const done = new Promise<unknown>((resolve, reject) => {
    xhr.open('PUT', url);
    xhr.setRequestHeader('authorization', `Bearer ${client.token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      let body: unknown;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
      if (xhr.status === 401) client.onUnauthenticated?.();
      reject(new ApiFailure(xhr.status, error?.code ?? `http_${xhr.status}`, error?.message ?? `the upload was refused (${xhr.status})`));
    };
    xhr.onerror = () => reject(new ApiFailure(0, 'network', 'the upload was interrupted: the connection to the server was lost'));
    xhr.onabort = () => reject(new ApiFailure(0, 'aborted', 'the upload was cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** A message a person can act on, for any error the UI meets. */
export function describeError(error: unknown): string {
  if (error instanceof ApiFailure) {
    if (error.status === 403) return `You do not have permission to do this (the server says: ${error.message}).`;
    if (error.status === 404) return `Not found (the server says: ${error.message}).`;
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
