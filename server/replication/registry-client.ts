import { Readable, Transform } from 'node:stream';

/*
 * A small client of the OCI distribution API (spec v1.1) for pushing: HEAD a blob first (never
 * send what is there), upload in one POST + PUT (`?digest=`, end-4a/end-6), then manifests by
 * digest and by tag (end-7). Authentication as registries ask for it: HTTP Basic, or a Bearer
 * token from the realm of a `WWW-Authenticate: Bearer` challenge (Docker token auth, used by
 * Harbor and GitLab). Credentials go only to the registry's own origin and its token realm.
 */

export interface RegistryTarget {
  /** `https://registry.example.com:5000` (no path). */
  url: string;
  credentials?: { username: string; password: string } | undefined;
  /** Bytes per second for blob uploads (null or undefined: unlimited). */
  bandwidth?: number | null | undefined;
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    message: string,
    /** Worth retrying (a 5xx, a reset connection), as opposed to a refusal. */
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RegistryClient {
  hasBlob(repository: string, digest: string): Promise<boolean>;
  /** Sends a blob unless the registry has it; returns the bytes sent (0 when it was there). */
  pushBlob(repository: string, digest: string, size: number, open: () => Readable): Promise<number>;
  putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string | undefined>;
  /**
   * Removes a tag (spec v1.1 end-9). Registries that delete only by digest (CNCF distribution)
   * answer 400/405/UNSUPPORTED; then the manifest is deleted by digest unless `digestInUse`.
   */
  deleteTag(repository: string, tag: string, digest: string, digestInUse: boolean): Promise<'deleted' | 'absent'>;
}

/** Slows a stream to `bytesPerSecond` on average (enough for a link budget; no bursts above a chunk). */
export function throttle(bytesPerSecond: number, clock: () => number = () => Date.now()): Transform {
  const started = clock();
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sent += chunk.length;
      const due = started + (sent / bytesPerSecond) * 1000;
      const wait = due - clock();
      if (wait > 0) setTimeout(() => callback(null, chunk), wait);
      else callback(null, chunk);
    },
  });
}

export function createRegistryClient(target: RegistryTarget, fetchImpl: typeof fetch = fetch): RegistryClient {
  const base = target.url.replace(/\/+$/, '');
  const origin = new URL(base).origin;
  const basic = target.credentials ? `Basic ${Buffer.from(`${target.credentials.username}:${target.credentials.password}`).toString('base64')}` : undefined;
  /** Bearer tokens by repository (their scope names it). */
  const tokens = new Map<string, string>();
  let scheme: 'basic' | 'bearer' | undefined;

  function authorization(repository: string): string | undefined {
    if (scheme === 'bearer') return tokens.has(repository) ? `Bearer ${tokens.get(repository)}` : undefined;
    return basic;
  }

  /** Answers a challenge; true when the request is worth sending again. */
  async function answerChallenge(response: Response, repository: string): Promise<boolean> {
    const challenge = response.headers.get('www-authenticate') ?? '';
    if (/^basic/i.test(challenge)) {
      if (scheme === 'basic' || !basic) return false;
      scheme = 'basic';
      return true;
    }
    if (!/^bearer/i.test(challenge) || tokens.has(repository)) return false;
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) return false;
    const realm = new URL(params.realm);
    if (realm.protocol !== 'https:' && realm.origin !== origin) throw new RegistryError(`the registry's token realm ${realm.origin} is neither HTTPS nor the registry itself; credentials are not sent there`, false);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', `repository:${repository}:pull,push`);
    const answer = await fetchImpl(realm, { headers: basic ? { authorization: basic } : {} });
    if (!answer.ok) throw new RegistryError(`the registry's token service answered ${answer.status}`, answer.status >= 500);
    const body = (await answer.json()) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new RegistryError('the registry\'s token service gave no token', false);
    scheme = 'bearer';
    tokens.set(repository, token);
    return true;
  }

  /** A request with a replayable body (none or bytes); authenticates on the first 401. */
  async function send(repository: string, url: string, init: { method: string; headers?: Record<string, string>; body?: Buffer }): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const auth = authorization(repository);
      let response: Response;
      try {
        response = await fetchImpl(url, { method: init.method, headers: { ...init.headers, ...(auth ? { authorization: auth } : {}) }, ...(init.body ? { body: init.body } : {}), redirect: 'manual' });
      } catch (error) {
        throw new RegistryError(`${init.method} ${new URL(url).pathname} failed: ${(error as Error).message}`, true, { cause: error });
      }
      if (response.status === 401 && attempt === 0) {
        await response.arrayBuffer().catch(() => undefined);
        if (await answerChallenge(response, repository)) continue;
      }
      return response;
    }
  }

  async function fail(response: Response, what: string): Promise<never> {
    const text = (await response.text().catch(() => '')).slice(0, 300);
    let detail = text;
    try {
      const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      if (parsed.errors?.[0]) detail = `${parsed.errors[0].code ?? ''}: ${parsed.errors[0].message ?? ''}`;
    } catch {
      // not JSON: keep the text
    }
    throw new RegistryError(`${what}: the registry answered ${response.status}${detail ? ` (${detail})` : ''}`, response.status >= 500 || response.status === 429);
  }

  const client: RegistryClient = {
    async hasBlob(repository, digest) {
      const response = await send(repository, `${base}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
      if (response.status === 200) return true;
      if (response.status === 404) return false;
      return fail(response, `HEAD ${repository}@${digest}`);
    },
    async pushBlob(repository, digest, size, open) {
      if (await client.hasBlob(repository, digest)) return 0;
      const started = await send(repository, `${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
      if (started.status !== 202) return fail(started, `starting an upload to ${repository}`);
      const location = started.headers.get('location');
      if (!location) throw new RegistryError('the registry started an upload without a Location', false);
      const uploadUrl = new URL(location, `${base}/`);
      if (uploadUrl.origin !== origin) throw new RegistryError(`the upload location ${uploadUrl.origin} is not the registry's origin; not following it`, false);
      uploadUrl.searchParams.set('digest', digest);
      const auth = authorization(repository);
      const source = open();
      const limited = target.bandwidth ? source.pipe(throttle(target.bandwidth)) : source;
      let response: Response;
      try {
        response = await fetchImpl(uploadUrl, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), ...(auth ? { authorization: auth } : {}) },
          body: Readable.toWeb(limited) as unknown as ReadableStream,
          duplex: 'half',
          redirect: 'manual',
        } as RequestInit);
      } catch (error) {
        throw new RegistryError(`uploading ${digest} failed: ${(error as Error).message}`, true, { cause: error });
      }
      if (response.status !== 201) return fail(response, `uploading ${digest} to ${repository}`);
      await response.arrayBuffer().catch(() => undefined);
      return size;
    },
    async putManifest(repository, reference, mediaType, bytes) {
      const response = await send(repository, `${base}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
      if (response.status !== 201 && response.status !== 200) return fail(response, `PUT ${repository}:${reference}`);
      await response.arrayBuffer().catch(() => undefined);
      return response.headers.get('docker-content-digest') ?? undefined;
    },
    async deleteTag(repository, tag, digest, digestInUse) {
      const byTag = await send(repository, `${base}/v2/${repository}/manifests/${tag}`, { method: 'DELETE' });
      await byTag.arrayBuffer().catch(() => undefined);
      if (byTag.status === 202 || byTag.status === 200) return 'deleted';
      if (byTag.status === 404) return 'absent';
      if (byTag.status !== 400 && byTag.status !== 405) return fail(byTag, `DELETE ${repository}:${tag}`);
      if (digestInUse) throw new RegistryError(`the registry deletes manifests only by digest, and ${digest} is still tagged by another approved version: ${repository}:${tag} was left in place`, false);
      const byDigest = await send(repository, `${base}/v2/${repository}/manifests/${digest}`, { method: 'DELETE' });
      if (byDigest.status === 202 || byDigest.status === 200) return 'deleted';
      if (byDigest.status === 404) return 'absent';
      return fail(byDigest, `DELETE ${repository}@${digest}`);
    },
  };
  return client;
}
