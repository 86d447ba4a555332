import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { requestIdPattern } from '../../protocol/access.ts';
import { tufTargetPath } from '../../protocol/api.ts';
import type { CredentialVerdict, DeviceCredential } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import type { Principal } from '../auth/policy.ts';
import { sendBlob } from '../blobs/routes.ts';
import type { BlobStore } from '../blobs/store.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import { OciError, ociErrorMiddleware } from '../oci/errors.ts';
import { pageTags, parseRepository, type Repository } from '../oci/media.ts';
import { listCatalog, matchRegistryPath, ociReadRoutes, type OciRoute, type RegistryReadSource } from '../oci/routes.ts';
import { targetOfUrl, type EdgeContent, type EdgeContentView } from './content.ts';
import type { CredentialCache } from './credentials.ts';
import type { IntegrityCheck } from './integrity.ts';
import { certificateOf } from './tls.ts';
import { UpstreamUnavailable } from './upstream.ts';

/*
 * What a stock client reads at an edge (issue 12): the OCI distribution API read-only under /v2
 * (so `skopeo copy docker://edge/<bundle>/<image>:<version>` and a device's container runtime
 * pull from the shop's LAN), and the signed targets under /tuf/targets/ (so a stock TUF client
 * can use the edge). Both serve only what the edge's verified metadata names (content.ts), each
 * blob only while it is the one the edge verified (integrity.ts: a file changed on disk is hashed
 * again, quarantined and fetched again). Callers are devices, checked by the origin and cached
 * as on the device API (credentials.ts): a device's token as the HTTP Basic password (its id as
 * the user name) or a Bearer token, or its certificate on the HTTPS listener; a device pulls only
 * the bundles deployed to it, the origin's own rule. The read handlers are the origin's
 * (server/oci/routes.ts) over the edge's content.
 */

/** The registry's reads over the edge's verified content. */
export function edgeRegistrySource(deps: { content: EdgeContentView; blobs: BlobStore; integrity: IntegrityCheck }): RegistryReadSource {
  const tagsOf = (view: EdgeContent, repo: Repository) => {
    const tags = view.tags.get(repo.name);
    if (!tags) throw new OciError('NAME_UNKNOWN', `repository ${repo.name} is not on this edge (no approved version mirrored here holds that image)`, { name: repo.name });
    return tags;
  };
  /** The size of a blob the repository's signed images reach, once the file on disk checks out. */
  async function verifiedSize(view: EdgeContent, repo: Repository, digest: string): Promise<number | undefined> {
    const reached = view.reachable.get(repo.name)?.get(digest);
    if (!reached || !(await deps.integrity.ensure(digest))) return undefined;
    const stat = await deps.blobs.stat(digest);
    return stat && stat.size === reached.size ? stat.size : undefined;
  }
  return {
    async resolveManifest(repo, reference) {
      const view = await deps.content.current();
      const tags = tagsOf(view, repo);
      const digest = reference.type === 'tag' ? tags.get(reference.tag)?.digest : reference.digest;
      const mediaType = digest ? view.reachable.get(repo.name)?.get(digest)?.mediaType : undefined;
      const size = digest && mediaType ? await verifiedSize(view, repo, digest) : undefined;
      if (!digest || !mediaType || size === undefined) {
        throw new OciError('MANIFEST_UNKNOWN', `${repo.name}:${reference.type === 'tag' ? reference.tag : reference.digest} is not on this edge`, reference.type === 'tag' ? { tag: reference.tag } : { digest: reference.digest });
      }
      return { digest, mediaType, size };
    },
    async statBlob(repo, digest) {
      const view = await deps.content.current();
      tagsOf(view, repo);
      const size = await verifiedSize(view, repo, digest);
      if (size === undefined) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not in ${repo.name} on this edge`, { digest });
      return { size };
    },
    async listTags(repo, n, last) {
      return pageTags([...tagsOf(await deps.content.current(), repo).keys()], n, last);
    },
    async listRepositories(mayRead, n, last) {
      const names = [...(await deps.content.current()).tags.keys()].sort().filter((name) => (last === undefined || name > last) && mayRead(name));
      return { repositories: names.slice(0, n), more: names.length > n };
    },
  };
}

/** A device's credential on a registry request: Basic (id:token), Bearer, or the verified certificate. */
function registryCredential(koa: Koa.Context): { credential: DeviceCredential; user?: string } {
  const header = koa.get('authorization');
  if (!header) {
    const certificate = certificateOf(koa);
    if (certificate) return { credential: certificate };
    throw new OciError('UNAUTHORIZED', "authentication required: HTTP Basic with the device's id and its token as the password");
  }
  const basic = /^Basic ([A-Za-z0-9+/=]{1,8192})$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0 && colon < decoded.length - 1) return { credential: { token: decoded.slice(colon + 1) }, user: decoded.slice(0, colon) };
  }
  const bearer = /^Bearer ([^\s]{1,4096})$/i.exec(header);
  if (bearer) return { credential: { token: bearer[1]! } };
  throw new OciError('UNAUTHORIZED', 'the Authorization header is neither HTTP Basic nor a Bearer token');
}

async function ask(credentials: CredentialCache, credential: DeviceCredential, bundle?: string): Promise<CredentialVerdict> {
  try {
    return await credentials.check(credential, undefined, bundle);
  } catch (error) {
    if (error instanceof UpstreamUnavailable) throw new ApiError('upstream_unavailable', 'this edge cannot reach its origin to check the credential, and holds no recent answer for it');
    throw error;
  }
}

export function edgeRegistryMiddleware(deps: { content: EdgeContentView; blobs: BlobStore; integrity: IntegrityCheck; credentials: CredentialCache; upstreamUrl: string; log: Logger }): Koa.Middleware {
  const source = edgeRegistrySource(deps);
  const reads = ociReadRoutes(source, deps.blobs);
  const routes: OciRoute[] = [reads.blobRead('GET'), reads.blobRead('HEAD'), reads.manifestRead('GET'), reads.manifestRead('HEAD'), reads.tagsList];
  const onError = ociErrorMiddleware(deps.log);
  return async (ctx, next) => {
    if (ctx.path !== '/v2' && !ctx.path.startsWith('/v2/')) return next();
    const supplied = ctx.get('x-request-id');
    ctx.set('X-Request-Id', requestIdPattern.test(supplied) ? supplied : randomUUID());
    await onError(ctx, () => dispatch(ctx));
  };

  async function dispatch(ctx: Koa.Context): Promise<void> {
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    // Writes belong to the origin: refused before anything else, whoever asks.
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      throw new OciError('UNSUPPORTED', `this edge is a read-only mirror; push to the origin (${deps.upstreamUrl}) instead of ${ctx.method} ${ctx.path.slice(0, 200)}`);
    }
    const { credential, user } = registryCredential(ctx);
    const signIn = await ask(deps.credentials, credential);
    // Only devices sign in at an edge (users pull from the origin); over Basic the user name is the device's id, as on the origin.
    if (!signIn.device || (user !== undefined && user !== signIn.device.id)) throw new OciError('UNAUTHORIZED', 'the device id or token is invalid, revoked, or not a device credential (users pull from the origin)');
    const principal: Principal = { type: 'device', deviceId: signIn.device.id, group: signIn.device.group };
    const mayPull = async (bundle: string) => (await ask(deps.credentials, credential, bundle)).allowed;
    if (ctx.path === '/v2/' || ctx.path === '/v2') {
      ctx.type = 'application/json';
      ctx.body = {};
      return;
    }
    if (ctx.path === '/v2/_catalog') {
      const view = await deps.content.current();
      const allowed = new Set<string>();
      for (const bundle of new Set([...view.tags.values()].flatMap((tags) => [...tags.values()].map((image) => image.bundle)))) if (await mayPull(bundle)) allowed.add(bundle);
      await listCatalog(ctx, source, (bundle) => allowed.has(bundle));
      return;
    }
    const matched = matchRegistryPath(ctx.path);
    if (!matched) throw new OciError('NAME_INVALID', `no registry endpoint at ${ctx.path.slice(0, 200)}`, {}, { status: 404 });
    // The referrers API is not mirrored (signatures and SBOMs are not signed targets): a 404 tells clients to fall back, as the spec allows.
    const found = routes.find((r) => r.path === matched.path && r.method === ctx.method);
    if (!found) throw new OciError('UNSUPPORTED', `${matched.path.replace('*', '<ref>')} is not served by an edge; ask the origin (${deps.upstreamUrl})`, {}, { status: 404 });
    const repo = parseRepository(matched.name);
    // As on the origin: a device may pull only the bundles deployed to it.
    if (!(await mayPull(repo.bundle))) throw new OciError('DENIED', `device:${principal.deviceId} may not pull from ${repo.name}`, { action: found.action });
    let param: string;
    try {
      param = decodeURIComponent(matched.param);
    } catch {
      throw new OciError('NAME_INVALID', 'the URL is not valid percent-encoding', {}, { status: 400 });
    }
    await found.handler({ koa: ctx, principal, repo, param });
  }
}

/**
 * `GET /tuf/targets/<path>` at the edge, for a stock TUF client: the signed target the edge's
 * verified metadata names, to a device that may read its bundle (the origin's rule, asked and
 * cached); anything else is 404, as on the origin. Range supported (sendBlob).
 */
export function edgeTargetRoute(deps: { content: EdgeContentView; blobs: BlobStore; integrity: IntegrityCheck; credentials: CredentialCache }): Route {
  return route({
    method: 'GET', path: '/tuf/targets/*path', action: 'tuf:read', summary: 'Download a signed target (mirrored, served while it matches its signed hash)', params: tufTargetPath, responses: { 200: 'binary', 206: 'binary', 304: 'empty' },
    async handler({ koa, params }) {
      const target = targetOfUrl((await deps.content.current()).targets, params.path);
      const bearer = /^Bearer (\S+)$/i.exec(koa.get('authorization'))?.[1];
      const credential: DeviceCredential | undefined = bearer ? { token: bearer } : certificateOf(koa);
      const allowed = target && credential ? (await ask(deps.credentials, credential, target.bundle)).allowed : false;
      const stat = allowed && (await deps.integrity.ensure(target!.digest)) ? await deps.blobs.stat(target!.digest) : undefined;
      if (!target || !stat || stat.size !== target.size) throw new ApiError('not_found', 'no such target');
      await sendBlob(koa, deps.blobs, target.digest, target.size);
    },
  });
}
