import type { IncomingMessage } from 'node:http';
import * as z from 'zod';
import { httpRequest, readText } from '../lib/http.ts';
import { errorResponse } from '../protocol/api.ts';
import { parseWith } from '../protocol/parse.ts';

/** A failure to show the user as one line; `code` is the server's error code when there is one. */
export type RequestBody = NonNullable<RequestInit['body']>;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly code?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * A mistake in how the command was called (a required flag or argument missing): exit 2 and the
 * usage line, as the POSIX utility conventions have it, apart from failures of the work (exit 1).
 */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 'usage');
  }
}

export interface ApiClient {
  readonly baseUrl: string;
  request<S extends z.ZodType>(method: string, path: string, options: { json?: unknown; body?: RequestBody; headers?: Record<string, string>; schema: S }): Promise<z.output<S>>;
  /** As `request`, with the status: 201 and 200 tell "created" from "replaced". */
  exchange<S extends z.ZodType>(method: string, path: string, options: { json?: unknown; body?: RequestBody; headers?: Record<string, string>; schema: S }): Promise<{ status: number; data: z.output<S> }>;
  /** A GET whose answer is bytes (a blob): the response, its body not yet read. */
  download(path: string): Promise<Response>;
  /** Any call, answered with the raw response (headers matter: upload sessions); errors as CliError. */
  raw(method: string, path: string, options?: { body?: RequestBody; headers?: Record<string, string> }): Promise<Response>;
  /** For calls whose answer has no body (204). */
  send(method: string, path: string): Promise<void>;
  /** Every item of a paginated listing, following X-Next-Page (100 per request). */
  requestAll<S extends z.ZodType>(path: string, item: S): Promise<z.output<S>[]>;
}

export function createApiClient(env: NodeJS.ProcessEnv): ApiClient {
  const baseUrl = (env.CONVOY_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const token = env.CONVOY_TOKEN;
  if (!/^https?:\/\//.test(baseUrl)) throw new CliError(`CONVOY_URL must be an http:// or https:// URL, got "${baseUrl}"`);

  /**
   * One call. A JSON call (no body, or one in full) whose answer is read whole goes over
   * node:http (lib/http.ts: fetch() would cost every command ~130 ms of CPU loading undici);
   * streamed bodies and answers handed out as a Response (uploads, blob downloads) use fetch.
   */
  async function call(method: string, path: string, options: { json?: unknown; body?: RequestBody; headers?: Record<string, string> }, want: 'answer'): Promise<Answer>;
  async function call(method: string, path: string, options: { json?: unknown; body?: RequestBody; headers?: Record<string, string> }, want: 'response'): Promise<Response>;
  async function call(method: string, path: string, options: { json?: unknown; body?: RequestBody; headers?: Record<string, string> }, want: 'answer' | 'response'): Promise<Answer | Response> {
    if (!token) throw new CliError('CONVOY_TOKEN is not set: export the access token the server printed at first start');
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...options.headers };
    let body = options.body;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    let response: Answer | Response;
    try {
      response =
        want === 'answer' && (body === undefined || typeof body === 'string')
          ? answerOf(await httpRequest(`${baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) }))
          : await fetch(`${baseUrl}${path}`, { method, headers, body: body ?? null, ...(body && typeof body !== 'string' ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (error) {
      throw new CliError(`cannot reach ${baseUrl}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`);
    }
    if (!response.ok) {
      const text = await response.text();
      let parsed: { error: { code: string; message: string } } | undefined;
      try {
        parsed = parseWith(errorResponse, JSON.parse(text), 'error');
      } catch {
        // The /v2 routes answer in the distribution spec's shape: {"errors":[{"code","message"}]}.
        const oci = (() => {
          try {
            return (JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] }).errors?.[0];
          } catch {
            return undefined;
          }
        })();
        parsed = typeof oci?.code === 'string' && typeof oci.message === 'string' ? { error: { code: oci.code, message: oci.message } } : undefined;
      }
      throw parsed
        ? new CliError(parsed.error.message, parsed.error.code, response.status)
        : new CliError(`${method} ${path} answered ${response.status}`, undefined, response.status);
    }
    return response;
  }

  return {
    baseUrl,
    async request(method, path, options) {
      return (await this.exchange(method, path, options)).data;
    },
    async exchange(method, path, options) {
      const response = await call(method, path, options, 'answer');
      try {
        return { status: response.status, data: parseWith(options.schema, await response.json(), `answer from ${method} ${path}`) };
      } catch (error) {
        throw new CliError(`the server's answer was not understood: ${(error as Error).message}`);
      }
    },
    async download(path) {
      return call('GET', path, {}, 'response');
    },
    async raw(method, path, options = {}) {
      return call(method, path, options, 'response');
    },
    async send(method, path) {
      await (await call(method, path, {}, 'answer')).text();
    },
    async requestAll(path, item) {
      const items: z.output<typeof item>[] = [];
      const list = z.array(item);
      for (let page = 1; ; ) {
        const url = `${path}${path.includes('?') ? '&' : '?'}page=${page}&per_page=100`;
        const response = await call('GET', url, {}, 'answer');
        let parsed: z.output<typeof list>;
        try {
          parsed = parseWith(list, await response.json(), `answer from GET ${path}`);
        } catch (error) {
          throw new CliError(`the server's answer was not understood: ${(error as Error).message}`);
        }
        items.push(...parsed);
        const next = Number(response.headers.get('x-next-page') || 0);
        // A next page must move forward: a server answering otherwise would loop us forever.
        if (!next || next <= page) return items;
        page = next;
      }
    },
  };
}

/** What a JSON call's caller reads of an answer: the part of a fetch Response it uses. */
interface Answer {
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  json(): Promise<unknown>;
}

/** An answer over node:http, read whole (a JSON answer is small; 64 MiB is far beyond any). */
function answerOf(message: IncomingMessage): Answer {
  const status = message.statusCode ?? 0;
  let text: Promise<string> | undefined;
  const read = () => (text ??= readText(message, 64 * 1024 * 1024));
  return {
    status,
    ok: status >= 200 && status <= 299,
    headers: {
      get(name) {
        const value = message.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : String(value);
      },
    },
    text: read,
    json: async () => JSON.parse(await read()),
  };
}
