import { credentialVerdict, edgeCertificate, edgeTaskList, type CredentialVerdict, type DeviceCredential, type EdgeCertificate, type EdgeTaskList, type EdgeTaskReport } from '../../protocol/edge.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';

/*
 * The edge's client of its origin (protocol/edge.ts): every call carries the edge token; every
 * answer is parsed before use. An unreachable origin is an `UpstreamUnavailable` (the edge keeps
 * serving what it has); an answer the origin gave is an `UpstreamRefused` with its status.
 */

export class UpstreamUnavailable extends Error {
  override readonly name = 'UpstreamUnavailable';
}

export class UpstreamRefused extends Error {
  override readonly name = 'UpstreamRefused';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Upstream {
  readonly url: string;
  readonly token: string;
  /** `waitSeconds`: a long poll, answered as soon as the origin has tasks for this edge. */
  tasks(waitSeconds?: number, signal?: AbortSignal): Promise<EdgeTaskList>;
  report(task: number, report: EdgeTaskReport): Promise<void>;
  checkCredential(credential: DeviceCredential, digest?: string, bundle?: string): Promise<CredentialVerdict>;
  /** Has the fleet CA sign the edge's HTTPS certificate (server/edge/tls.ts). */
  signCertificate(request: { csr: string; dns: string[]; ip: string[] }): Promise<EdgeCertificate>;
  /** Forwards a device's self-authenticating POST (certificate renewal: the body is the proof) as it came, without the edge token. */
  forwardPost(path: string, json: unknown): Promise<{ status: number; contentType: string | null; body: Buffer }>;
  /** The release of a device signed in by certificate (it has no token to forward): 200 with the notice, or 204. */
  deviceRelease(device: string): Promise<{ status: number; contentType: string | null; body: Buffer }>;
  /** A TUF metadata file by name; undefined when the origin has none of that name (404). */
  metadata(name: string): Promise<Buffer | undefined>;
  /** Where a blob is read (Range supported): the origin's own blob route. */
  blobUrl(digest: string): string;
  /** Forwards a device report the edge's broker stored (UpstreamRefused: the origin will never take it). */
  forwardReport(device: string, payload: string): Promise<void>;
  /** Forwards a device's GET with the device's own Authorization header, as it came. */
  forward(path: string, authorization: string): Promise<{ status: number; contentType: string | null; body: Buffer }>;
}

export function createUpstream(options: { url: string; token: string; timeoutMs: number }): Upstream {
  const base = options.url.replace(/\/+$/, '');
  async function call(method: string, path: string, init: { json?: unknown; authorization?: string; extraMs?: number; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: init.authorization ?? `Bearer ${options.token}` };
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(options.timeoutMs + (init.extraMs ?? 0));
    try {
      return await fetch(`${base}${path}`, { method, headers, body: init.json === undefined ? null : JSON.stringify(init.json), signal: init.signal ? AbortSignal.any([timeout, init.signal]) : timeout });
    } catch (error) {
      throw new UpstreamUnavailable(`${method} ${base}${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  async function refused(response: Response, what: string): Promise<never> {
    const text = await response.text().catch(() => '');
    // 5xx and 429: the origin is there but not answering properly; the edge treats it as an outage.
    if (response.status >= 500 || response.status === 429) throw new UpstreamUnavailable(`${what}: the origin answered ${response.status} ${text.slice(0, 200)}`);
    throw new UpstreamRefused(response.status, `${what}: the origin answered ${response.status} ${text.slice(0, 300)}`);
  }
  async function json<T>(response: Response, what: string, schema: Parameters<typeof parseWith>[0]): Promise<T> {
    if (!response.ok) return refused(response, what);
    return parseWith(schema, parseJson(await response.text(), what), what) as T;
  }
  return {
    url: base,
    token: options.token,
    tasks: async (waitSeconds, signal) =>
      json<EdgeTaskList>(await call('GET', waitSeconds ? `/api/v1/edge/tasks?wait=${waitSeconds}` : '/api/v1/edge/tasks', { extraMs: (waitSeconds ?? 0) * 1000, ...(signal ? { signal } : {}) }), 'edge tasks', edgeTaskList),
    async report(task, report) {
      const response = await call('POST', `/api/v1/edge/tasks/${task}`, { json: report });
      if (!response.ok) await refused(response, `report of task ${task}`);
    },
    checkCredential: async (credential, digest, bundle) => json<CredentialVerdict>(await call('POST', '/api/v1/edge/credentials', { json: { ...credential, ...(digest ? { digest } : {}), ...(bundle ? { bundle } : {}) } }), 'credential check', credentialVerdict),
    signCertificate: async (request) => json<EdgeCertificate>(await call('POST', '/api/v1/edge/certificate', { json: request }), 'edge certificate', edgeCertificate),
    async forwardPost(path, body) {
      // Sent anonymously: the origin must judge the device's proof, never the edge's standing.
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      try {
        response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: timeout });
      } catch (error) {
        throw new UpstreamUnavailable(`POST ${base}${path}: ${(error as Error).message}`, { cause: error });
      }
      if (response.status >= 500) await refused(response, `POST ${path}`);
      return { status: response.status, contentType: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
    },
    async deviceRelease(device) {
      const response = await call('GET', `/api/v1/edge/devices/${encodeURIComponent(device)}/release`);
      if (response.status >= 500) await refused(response, `release of ${device}`);
      return { status: response.status, contentType: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
    },
    async metadata(name) {
      const response = await call('GET', `/tuf/${encodeURIComponent(name)}`);
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      if (!response.ok) return refused(response, `metadata ${name}`);
      return Buffer.from(await response.arrayBuffer());
    },
    async forwardReport(device, payload) {
      const response = await call('POST', '/api/v1/edge/reports', { json: { device, payload } });
      if (!response.ok) await refused(response, `report of ${device}`);
    },
    blobUrl: (digest) => `${base}/api/v1/blobs/${digest}`,
    async forward(path, authorization) {
      const response = await call('GET', path, { authorization });
      if (response.status >= 500) await refused(response, `GET ${path}`);
      return { status: response.status, contentType: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
    },
  };
}
