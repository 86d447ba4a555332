import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { requestIdPattern } from '../../protocol/access.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Logger } from '../../protocol/log.ts';
import type { TLSSocket } from 'node:tls';
import { isAllowed, isAllowedOnBundle, principalName, type Action, type Principal } from '../auth/policy.ts';
import type { AuthService } from '../auth/service.ts';
import { parseRange } from '../blobs/routes.ts';
import type { BlobStore } from '../blobs/store.ts';
import { OciError, ociErrorMiddleware } from './errors.ts';
import { maxManifestBytes, mediaTypes, parseContentRange, parseDigest, parseReference, parseRepository, type Reference, type Repository } from './media.ts';
import { sendFileRange } from './send.ts';
import type { OciService } from './service.ts';
import type { StoredManifest } from './store.ts';

/**
 * The OCI distribution API (spec v1.1, "Endpoints" table end-1 … end-13) under /v2. One
 * declaration per route: method, path pattern, the action it needs on the repository's bundle,
 * handler. The dispatcher authenticates (HTTP Basic, the access token as password), checks the
 * action, and turns every failure into an OCI error body.
 */
export interface OciContext {
  koa: Koa.Context;
  principal: Principal;
  repo: Repository;
  /** The path segment after the repository (digest, reference or session id). */
  param: string;
}

export interface OciRoute {
  method: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Path after `/v2/<name>/`; `*` is the one parameter. */
  path: string;
  summary: string;
  action: Action;
  handler(ctx: OciContext): Promise<void>;
}

function uploadLocation(repo: Repository, id: string): string {
  return `/v2/${repo.name}/blobs/uploads/${id}`;
}

/** Upload progress as the spec writes it: `Range: 0-<last byte>` (`0-0` when empty, as distribution does). */
function setUploadHeaders(koa: Koa.Context, repo: Repository, id: string, size: number): void {
  koa.set('Location', uploadLocation(repo, id));
  koa.set('Range', `0-${Math.max(size - 1, 0)}`);
  koa.set('Docker-Upload-UUID', id);
}

function contentLength(koa: Koa.Context): number | undefined {
  const raw = koa.get('content-length');
  if (raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new OciError('BLOB_UPLOAD_INVALID', 'invalid Content-Length');
  return Number(raw);
}

function contentRange(koa: Koa.Context): { start: number; end: number } | undefined {
  const raw = koa.get('content-range');
  if (raw === '') return undefined;
  const range = parseContentRange(raw);
  if (!range) throw new OciError('RANGE_INVALID', `invalid Content-Range "${raw.slice(0, 60)}": expected <start>-<end>`, {}, { status: 416 });
  return range;
}

function queryString(koa: Koa.Context, name: string): string | undefined {
  const value = koa.query[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Where the registry's reads come from: the origin's database and blob store (OciService), or an
 * edge's mirror, which knows only what its verified TUF metadata names (server/edge/registry.ts).
 * The read handlers below are written once against this; each side keeps its own rules on which
 * repositories, tags and digests exist. `signedOnly`: only approved (signed) versions count, for
 * a caller that may read nothing else (a device).
 */
export interface RegistryReadSource {
  /** The manifest a tag or digest names in the repository; OciError MANIFEST_UNKNOWN (or NAME_UNKNOWN) when none. */
  resolveManifest(repo: Repository, reference: Reference, options?: { signedOnly?: boolean }): Promise<Pick<StoredManifest, 'digest' | 'mediaType' | 'size'>>;
  /** A blob the repository may serve; OciError BLOB_UNKNOWN when none. */
  statBlob(repo: Repository, digest: string): Promise<{ size: number }>;
  listTags(repo: Repository, n: number | undefined, last: string | undefined, options?: { signedOnly?: boolean }): Promise<{ tags: string[]; more: boolean }>;
  /** Repository names the caller may read, at most `n` after `last` (the catalog). */
  listRepositories(mayRead: (repository: string) => boolean, n: number, last: string | undefined): Promise<{ repositories: string[]; more: boolean }>;
}

/**
 * Answers a HEAD with the length of what a GET would send. Koa turns a null body into 204 and
 * drops Content-Length, and a file stream as the body would be opened for nothing.
 */
function endHead(koa: Koa.Context, length: number): void {
  koa.status = 200;
  koa.set('Content-Length', String(length));
  koa.respond = false;
  koa.res.end();
}

function setCreatedBlob(koa: Koa.Context, repo: Repository, digest: string): void {
  koa.set('Location', `/v2/${repo.name}/blobs/${digest}`);
  koa.set('Docker-Content-Digest', digest);
  koa.body = null;
  koa.status = 201;
}

async function readManifestBody(koa: Koa.Context): Promise<Buffer> {
  const declared = contentLength(koa);
  if (declared !== undefined && declared > maxManifestBytes) throw new OciError('SIZE_INVALID', `the manifest exceeds ${maxManifestBytes} bytes`, {}, { status: 413 });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of koa.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxManifestBytes) throw new OciError('SIZE_INVALID', `the manifest exceeds ${maxManifestBytes} bytes`, {}, { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The read side of the registry (blobs, manifests, tags), shared by the origin and its edges. */
export function ociReadRoutes(source: RegistryReadSource, blobs: BlobStore): { blobRead(method: 'GET' | 'HEAD'): OciRoute; manifestRead(method: 'GET' | 'HEAD'): OciRoute; tagsList: OciRoute } {
  const blobRead = (method: 'GET' | 'HEAD'): OciRoute => ({
    method, path: 'blobs/*', action: 'bundle:pull', summary: 'Fetch a blob (Range supported)',
    async handler({ koa, repo, param }) {
      const digest = parseDigest(param);
      const { size } = await source.statBlob(repo, digest);
      // RFC 9110 §14: one range answers 206; If-Range with a stale validator gets the whole blob.
      const etag = `"${digest}"`;
      koa.set('Docker-Content-Digest', digest);
      koa.set('ETag', etag);
      koa.set('Accept-Ranges', 'bytes');
      koa.set('Cache-Control', 'private, max-age=31536000, immutable');
      koa.type = 'application/octet-stream';
      if (method === 'HEAD') {
        endHead(koa, size);
        return;
      }
      const rangeHeader = koa.get('range');
      const ifRange = koa.get('if-range');
      const range = rangeHeader && (!ifRange || ifRange === etag) ? parseRange(rangeHeader, size) : undefined;
      if (range === 'unsatisfiable') {
        koa.set('Content-Range', `bytes */${size}`);
        throw new OciError('RANGE_INVALID', `range not satisfiable for a blob of ${size} bytes`, { size }, { status: 416 });
      }
      const { start, end } = range ?? { start: 0, end: size - 1 };
      koa.status = range ? 206 : 200;
      if (range) koa.set('Content-Range', `bytes ${start}-${end}/${size}`);
      koa.length = end - start + 1;
      await sendFileRange(koa, blobs.pathOf(digest), start, end);
    },
  });
  const manifestRead = (method: 'GET' | 'HEAD'): OciRoute => ({
    method, path: 'manifests/*', action: 'bundle:pull', summary: 'Fetch a manifest by tag (version) or digest',
    async handler({ koa, repo, param, principal }) {
      // A device reads only what is signed: a draft's tag is not there for it.
      const manifest = await source.resolveManifest(repo, parseReference(param), { signedOnly: principal.type === 'device' });
      koa.set('Docker-Content-Digest', manifest.digest);
      koa.set('ETag', `"${manifest.digest}"`);
      koa.type = manifest.mediaType;
      if (method === 'HEAD') {
        endHead(koa, manifest.size);
        return;
      }
      koa.status = 200;
      koa.length = manifest.size;
      koa.body = blobs.openRead(manifest.digest);
    },
  });
  const tagsList: OciRoute = {
    method: 'GET', path: 'tags/list', action: 'bundle:read', summary: 'List tags (the versions holding this image), with n/last and Link',
    async handler({ koa, repo, principal }) {
      const nRaw = queryString(koa, 'n');
      if (nRaw !== undefined && (!/^\d{1,6}$/.test(nRaw))) throw new OciError('UNSUPPORTED', 'n must be a whole number', {}, { status: 400 });
      const n = nRaw === undefined ? undefined : Number(nRaw);
      const last = queryString(koa, 'last');
      const page = await source.listTags(repo, n, last, { signedOnly: principal.type === 'device' });
      if (page.more && n !== undefined && page.tags.length > 0) {
        koa.set('Link', `</v2/${repo.name}/tags/list?n=${n}&last=${encodeURIComponent(page.tags.at(-1)!)}>; rel="next"`);
      }
      koa.body = { name: repo.name, tags: page.tags };
    },
  };
  return { blobRead, manifestRead, tagsList };
}

export function ociRoutes(service: OciService, blobs: BlobStore): OciRoute[] {
  const { blobRead, manifestRead, tagsList } = ociReadRoutes(service, blobs);
  return [
    blobRead('GET'),
    blobRead('HEAD'),
    {
      method: 'POST', path: 'blobs/uploads/', action: 'bundle:write', summary: 'Start an upload, upload in one request (?digest=) or mount (?mount=&from=)',
      async handler({ koa, principal, repo }) {
        const mount = queryString(koa, 'mount');
        const from = queryString(koa, 'from');
        if (mount !== undefined) {
          const digest = parseDigest(mount);
          if (from !== undefined) {
            const source = parseRepository(from);
            // Mounting reads the source repository: the caller must be allowed to pull from it.
            if (authorize(principal, 'bundle:pull', source, new Set()) && (await service.mountBlob(repo, source, digest))) {
              setCreatedBlob(koa, repo, digest);
              return;
            }
          }
        }
        const digest = queryString(koa, 'digest');
        if (digest !== undefined) {
          const stored = await service.putBlob(repo, koa.req, parseDigest(digest), contentLength(koa));
          setCreatedBlob(koa, repo, stored.digest);
          return;
        }
        const id = await service.startUpload(repo, principalName(principal));
        setUploadHeaders(koa, repo, id, 0);
        koa.body = null;
        koa.status = 202;
      },
    },
    {
      method: 'GET', path: 'blobs/uploads/*', action: 'bundle:write', summary: 'Upload progress',
      async handler({ koa, repo, param, principal }) {
        const size = await service.uploadStatus(repo, param, principalName(principal));
        setUploadHeaders(koa, repo, param, size);
        koa.body = null;
        koa.status = 204;
      },
    },
    {
      method: 'PATCH', path: 'blobs/uploads/*', action: 'bundle:write', summary: 'Upload a chunk (Content-Range) or the whole blob streamed',
      async handler({ koa, repo, param, principal }) {
        const size = await service.appendChunk(repo, param, principalName(principal), koa.req, contentRange(koa), contentLength(koa));
        setUploadHeaders(koa, repo, param, size);
        koa.body = null;
        koa.status = 202;
      },
    },
    {
      method: 'PUT', path: 'blobs/uploads/*', action: 'bundle:write', summary: 'Finish an upload (?digest=), with an optional last chunk',
      async handler({ koa, repo, param, principal }) {
        const digest = queryString(koa, 'digest');
        if (digest === undefined) throw new OciError('DIGEST_INVALID', 'finishing an upload needs ?digest=sha256:<hex>');
        const stored = await service.completeUpload(repo, param, principalName(principal), koa.req, parseDigest(digest), contentRange(koa), contentLength(koa));
        setCreatedBlob(koa, repo, stored.digest);
      },
    },
    {
      method: 'DELETE', path: 'blobs/uploads/*', action: 'bundle:write', summary: 'Cancel an upload',
      async handler({ koa, repo, param, principal }) {
        await service.cancelUpload(repo, param, principalName(principal));
        koa.body = null;
        koa.status = 204;
      },
    },
    manifestRead('GET'),
    manifestRead('HEAD'),
    {
      method: 'PUT', path: 'manifests/*', action: 'bundle:write', summary: 'Push a manifest; by tag (a version) it joins that version\'s draft as image <image>',
      async handler({ koa, repo, param }) {
        const reference = parseReference(param);
        const bytes = await readManifestBody(koa);
        const result = await service.putManifest(repo, reference, bytes, koa.get('content-type') || undefined);
        koa.set('Location', `/v2/${repo.name}/manifests/${result.digest}`);
        koa.set('Docker-Content-Digest', result.digest);
        if (result.subject) koa.set('OCI-Subject', result.subject);
        koa.body = null;
        koa.status = 201;
      },
    },
    {
      method: 'DELETE', path: 'manifests/*', action: 'bundle:write', summary: 'Not supported: versions change through the bundle API',
      async handler() {
        throw new OciError('UNSUPPORTED', 'manifests are not deleted through the registry; remove the image from the draft (DELETE /api/v1/bundles/:name/versions/:version/artifacts/:image)');
      },
    },
    {
      method: 'DELETE', path: 'blobs/*', action: 'bundle:write', summary: 'Not supported: unreferenced blobs are garbage-collected',
      async handler() {
        throw new OciError('UNSUPPORTED', 'blobs are not deleted through the registry; unreferenced blobs are garbage-collected');
      },
    },
    tagsList,
    {
      method: 'GET', path: 'referrers/*', action: 'bundle:read', summary: 'List manifests whose subject is the digest (an empty index when none)',
      async handler({ koa, repo, param }) {
        const digest = parseDigest(param);
        const artifactType = queryString(koa, 'artifactType');
        const referrers = await service.listReferrers(repo, digest, artifactType);
        if (artifactType !== undefined) koa.set('OCI-Filters-Applied', 'artifactType');
        koa.type = mediaTypes.ociIndex;
        koa.body = {
          schemaVersion: 2,
          mediaType: mediaTypes.ociIndex,
          manifests: referrers.map((m) => ({
            mediaType: m.mediaType,
            digest: m.digest,
            size: m.size,
            ...(m.artifactType ? { artifactType: m.artifactType } : {}),
            ...(m.annotations ? { annotations: m.annotations } : {}),
          })),
        };
      },
    },
  ];
}

/**
 * Images belong to the bundle named by the repository's first path segment: its roles decide.
 * A device reads (pulls, lists tags of) only the bundles deployed to it (`runs`), as its blob and
 * TUF reads do (the read model per bundle); it never writes.
 */
function authorize(principal: Principal, action: Action, repo: Pick<Repository, 'bundle'>, runs: ReadonlySet<string>): boolean {
  if (principal.type === 'device') return action !== 'bundle:write' && isAllowedOnBundle(principal, 'bundle:pull', repo.bundle, runs);
  return isAllowed(principal, action, { bundle: repo.bundle });
}

/** The user name a token is given with over HTTP Basic: a user's name, a device's id (a colon cannot be in a Basic user name). */
function basicUserMatches(principal: Principal, user: string): boolean {
  return principalName(principal) === user || (principal.type === 'device' && principal.deviceId === user);
}

/**
 * HTTP Basic with the access token as the password (`skopeo copy --dest-creds admin:TOKEN`); the
 * user name must be the token's user. A Bearer token is accepted as well, for curl.
 */
async function authenticate(koa: Koa.Context, auth: AuthService, byCertificate?: (peer: { commonName: string; serial: string }) => Promise<Principal | undefined>): Promise<Principal> {
  const header = koa.get('authorization');
  // The devices' mTLS listener: a certificate the TLS layer verified, and the server still honours.
  const socket = koa.req.socket as Partial<TLSSocket>;
  if (!header && byCertificate && socket.authorized && socket.getPeerCertificate) {
    const cert = socket.getPeerCertificate();
    const principal = await byCertificate({ commonName: String(cert.subject?.CN ?? ''), serial: cert.serialNumber ?? '' });
    if (!principal) throw new OciError('UNAUTHORIZED', 'this device certificate is revoked or unknown to the server');
    return principal;
  }
  if (!header) throw new OciError('UNAUTHORIZED', 'authentication required: HTTP Basic with your user name and an access token as the password');
  const basic = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header);
  const bearer = /^Bearer ([^\s]{1,512})$/i.exec(header);
  let principal: Principal | undefined;
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      const found = await auth.authenticate(decoded.slice(colon + 1));
      if (found && basicUserMatches(found, decoded.slice(0, colon))) principal = found;
    }
  } else if (bearer) {
    principal = await auth.authenticate(bearer[1]!);
  }
  if (!principal) throw new OciError('UNAUTHORIZED', 'the user name or access token is invalid, expired or revoked');
  return principal;
}

/** Splits `/v2/<name>/<rest>`: the first suffix that matches wins, the name is the longest prefix before it. */
const suffixes: readonly { suffix: RegExp; path: string }[] = [
  { suffix: /^(.+)\/blobs\/uploads\/?$/, path: 'blobs/uploads/' },
  { suffix: /^(.+)\/blobs\/uploads\/([^/]+)$/, path: 'blobs/uploads/*' },
  { suffix: /^(.+)\/blobs\/([^/]+)$/, path: 'blobs/*' },
  { suffix: /^(.+)\/manifests\/([^/]+)$/, path: 'manifests/*' },
  { suffix: /^(.+)\/tags\/list$/, path: 'tags/list' },
  { suffix: /^(.+)\/referrers\/([^/]+)$/, path: 'referrers/*' },
];

/** The route pattern, repository name and parameter a path under `/v2/` names, if any. */
export function matchRegistryPath(requestPath: string): { path: string; name: string; param: string } | undefined {
  const rest = requestPath.slice('/v2/'.length);
  for (const { suffix, path } of suffixes) {
    const match = suffix.exec(rest);
    if (match) return { path, name: match[1]!, param: match[2] ?? '' };
  }
  return undefined;
}

/** A registry route as docs/permissions.md lists it: method, path under /v2, action. */
export interface RegistryRoute {
  method: string;
  path: string;
  action: Action;
  summary: string;
}

/** The registry's route table, described (the permission doc lists it beside the REST routes). */
export function registryRouteTable(service: OciService, blobs: BlobStore): RegistryRoute[] {
  return [
    catalogRoute,
    ...ociRoutes(service, blobs).map(({ method, path, action, summary }) => ({
      method,
      path: `/v2/<bundle>/<image>/${path.replace('*', path.startsWith('manifests') ? '<reference>' : path.startsWith('blobs/uploads') ? '<session>' : '<digest>')}`,
      action,
      summary,
    })),
  ];
}

/**
 * `GET /v2/_catalog` is not under a repository: any signed-in user may ask, and the answer names
 * only the repositories whose bundle the caller may read (pull), so it reveals nothing else.
 */
const catalogRoute: RegistryRoute = {
  method: 'GET',
  path: '/v2/_catalog',
  action: 'bundle:list',
  summary: 'List the repositories one may pull from, with n/last and Link (distribution\'s catalog API)',
};

/** Without `n` a page holds this many names; `n` above the cap is lowered to it (as distribution does). */
const catalogDefaultPage = 100;
const catalogMaxPage = 1000;

export async function listCatalog(koa: Koa.Context, service: Pick<RegistryReadSource, 'listRepositories'>, mayRead: (bundle: string) => boolean): Promise<void> {
  for (const name of Object.keys(koa.query)) {
    if (name !== 'n' && name !== 'last') throw new OciError('UNSUPPORTED', `unknown query parameter "${name.slice(0, 40)}" on /v2/_catalog (n and last are known)`, {}, { status: 400 });
    if (Array.isArray(koa.query[name])) throw new OciError('UNSUPPORTED', `query parameter "${name}" is given more than once`, {}, { status: 400 });
  }
  const nRaw = queryString(koa, 'n');
  if (nRaw !== undefined && !/^\d{1,6}$/.test(nRaw)) throw new OciError('UNSUPPORTED', 'n must be a whole number', {}, { status: 400 });
  const n = Math.min(nRaw === undefined ? catalogDefaultPage : Number(nRaw), catalogMaxPage);
  const last = queryString(koa, 'last');
  if (last !== undefined && last.length > 256) throw new OciError('UNSUPPORTED', 'last is at most 256 characters', {}, { status: 400 });
  const page = n === 0 ? { repositories: [], more: false } : await service.listRepositories((name) => mayRead(name.split('/')[0]!), n, last);
  // Distribution spec, "Listing repositories": the next page is linked with RFC 5988 Link, its
  // URL relative to this host (the client resolves it against the request's).
  if (page.more) koa.set('Link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(page.repositories.at(-1)!)}>; rel="next"`);
  koa.type = 'application/json';
  koa.body = { repositories: page.repositories };
}

/** What the audit log needs to know about one /v2 request, filled in as the request is understood. */
interface OciAuditNote {
  principal?: Principal;
  action?: Action;
  bundle?: string;
  version?: string;
}

/**
 * Which /v2 requests reach the audit log: every one that may change something (pushes create and
 * fill drafts), and every refused read except the anonymous `GET /v2/` probe with which each
 * registry client starts (it is the protocol's way to ask for the challenge, not an attempt).
 */
function isAudited(ctx: Koa.Context): boolean {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return true;
  if (ctx.status !== 401 && ctx.status !== 403) return false;
  return !((ctx.path === '/v2/' || ctx.path === '/v2') && ctx.get('authorization') === '');
}

export function ociMiddleware(deps: {
  service: OciService;
  blobs: BlobStore;
  auth: AuthService;
  log: Logger;
  audit?: AuditLog;
  /** The bundles a device may pull: those deployed to it or to its group (absent: devices pull nothing). */
  deviceBundles?: (device: { deviceId: string; group: string }) => Promise<readonly string[]>;
  /** Who a verified client certificate is, on the devices' HTTPS listener. */
  certificatePrincipal?: (peer: { commonName: string; serial: string }) => Promise<Principal | undefined>;
}): Koa.Middleware {
  const routes = ociRoutes(deps.service, deps.blobs);
  const onError = ociErrorMiddleware(deps.log);
  return async (ctx, next) => {
    if (ctx.path !== '/v2' && !ctx.path.startsWith('/v2/')) return next();
    const supplied = ctx.get('x-request-id');
    const requestId = requestIdPattern.test(supplied) ? supplied : randomUUID();
    ctx.set('X-Request-Id', requestId);
    const note: OciAuditNote = {};
    await onError(ctx, () => dispatch(ctx, note));
    if (deps.audit && isAudited(ctx)) {
      const failed = ctx.status >= 400 ? ((ctx.body as { errors?: { code?: string }[] } | undefined)?.errors?.[0]?.code ?? 'UNKNOWN') : undefined;
      await deps.audit.record({
        action: note.action ?? (ctx.method === 'GET' || ctx.method === 'HEAD' ? 'bundle:read' : 'bundle:write'),
        method: ctx.method,
        // The path only: a query may carry upload state, and no header (credentials) is kept.
        target: ctx.path,
        principal: note.principal,
        bundle: note.bundle,
        version: note.version,
        requestId,
        status: ctx.status,
        error: failed?.toLowerCase(),
      });
    }
  };

  async function dispatch(ctx: Koa.Context, note: OciAuditNote): Promise<void> {
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    const matched = matchRegistryPath(ctx.path);
    // Known before authenticating, so a refused push is recorded as the push it was.
    const route = matched && routes.find((r) => r.path === matched.path && r.method === ctx.method);
    if (route) note.action = route.action;
    if (matched) {
      const bundle = matched.name.split('/')[0]!;
      if (/^[a-z0-9][a-z0-9._-]{0,63}$/.test(bundle)) note.bundle = bundle;
      // A manifest pushed by tag joins that version's draft: the tag is the version.
      if (matched.path === 'manifests/*' && !matched.param.includes(':')) note.version = matched.param;
    }
    const principal = await authenticate(ctx, deps.auth, deps.certificatePrincipal);
    note.principal = principal;
    const runs = new Set(principal.type === 'device' && deps.deviceBundles ? await deps.deviceBundles(principal) : []);
    if (ctx.path === '/v2/' || ctx.path === '/v2') {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on /v2/`);
      ctx.type = 'application/json';
      ctx.body = {};
      return;
    }
    if (ctx.path === '/v2/_catalog') {
      note.action = catalogRoute.action;
      if (ctx.method !== 'GET') throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on /v2/_catalog`);
      // A device lists the repositories of the bundles deployed to it (filtered below).
      if (principal.type !== 'device' && !isAllowed(principal, catalogRoute.action)) throw new OciError('DENIED', `${principalName(principal)} may not list repositories`, { action: catalogRoute.action });
      await listCatalog(ctx, deps.service, (bundle) => authorize(principal, 'bundle:pull', { bundle }, runs));
      return;
    }
    if (!matched) throw new OciError('NAME_INVALID', `no registry endpoint at ${ctx.path.slice(0, 200)}`, {}, { status: 404 });
    if (!route) {
      ctx.set('Allow', routes.filter((r) => r.path === matched.path).map((r) => r.method).join(', '));
      throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on ${matched.path.replace('*', '<ref>')}`);
    }
    const repo = parseRepository(matched.name);
    if (!authorize(principal, route.action, repo, runs)) {
      throw new OciError('DENIED', `${principalName(principal)} may not ${route.action === 'bundle:write' ? 'push to' : 'pull from'} ${repo.name}`, { action: route.action });
    }
    let param: string;
    try {
      param = decodeURIComponent(matched.param);
    } catch {
      throw new OciError('NAME_INVALID', 'the URL is not valid percent-encoding', {}, { status: 400 });
    }
    await route.handler({ koa: ctx, principal, repo, param });
  }
}
