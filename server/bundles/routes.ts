import {
  addArtifactsRequest,
  artifact,
  artifactListQuery,
  artifactPath,
  bundlePath,
  filePath,
  versionPath,
  bundle,
  bundleListQuery,
  bundleVersion,
  createBundleRequest,
  createVersionRequest,
  listOf,
  nextVersion,
  nextVersionQuery,
  patchArtifactRequest,
  putArtifactRequest,
  uploadFileQuery,
  versionListQuery,
} from '../../protocol/api.ts';
import { actsAsAdmin, type Principal } from '../auth/policy.ts';
import { ApiError } from '../http/errors.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { BundleService } from './service.ts';

/** What happens around a bundle's life that is not the bundle's own business (membership). */
export interface BundleHooks {
  created?(bundle: string, by: Principal): Promise<void>;
  /**
   * Whether the caller may name an already stored blob in a draft of `bundle` (see
   * server/blobs/readers.ts): naming a digest would otherwise let a developer of one bundle read
   * another bundle's blob through their own. Without it, every stored digest may be named.
   */
  mayName?(principal: Principal, digest: string, bundle: string): Promise<boolean>;
}

export function bundleRoutes(service: BundleService, hooks: BundleHooks & { maxBlobBytes: number }): Route[] {
  const limits = { maxBlobBytes: hooks.maxBlobBytes };
  const base = '/api/v1/bundles/:name/versions/:version';
  // A digest the caller may not read answers as if it were not stored (never confirm it exists).
  const requireNameable = async (principal: Principal, digest: string, bundle: string) => {
    if (hooks.mayName && !(await hooks.mayName(principal, digest, bundle))) {
      throw new ApiError('invalid_request', `blob ${digest} is not in the store; upload it first (through /v2/${bundle}/<image>/blobs/uploads/, or the streamed artifact upload)`);
    }
  };
  return [
    route({
      method: 'POST', path: '/api/v1/bundles', action: 'bundle:create', summary: 'Create a bundle', body: createBundleRequest, responses: { 201: bundle },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.createBundle(body.name, body.description);
        await hooks.created?.(body.name, principal!);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles', action: 'bundle:list', summary: 'List the bundles one may read (paginated; ?search= part of the name)',
      query: bundleListQuery, responses: { 200: listOf(bundle) },
      async handler({ koa, query, principal, can }) {
        const page = pageOf(query);
        // Only the bundles one may read are listed (admins: all), filtered in the query so that
        // pages and X-Total count the same bundles.
        const names = principal && actsAsAdmin(principal) ? undefined
          : principal?.type === 'user' ? [...principal.roles.keys()].filter((b) => can('bundle:read', { bundle: b })) : [];
        sendPage(koa, page, await service.listBundles({ search: query.search, names }, { offset: page.offset, limit: page.perPage }));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name', action: 'bundle:read', params: bundlePath, resource: bundleInPath, summary: 'Show a bundle', responses: { 200: bundle },
      async handler({ koa, params }) {
        koa.body = await service.getBundle(params.name);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/bundles/:name', action: 'bundle:delete', params: bundlePath, resource: bundleInPath, summary: 'Delete a bundle that has no approved version', responses: { 204: 'empty' },
      async handler({ koa, params }) {
        await service.deleteBundle(params.name);
        koa.status = 204;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/versions', action: 'bundle:write', params: bundlePath, resource: bundleInPath, summary: 'Create a draft version (copyFrom: start with the artifacts of another version)',
      body: createVersionRequest, responses: { 201: bundleVersion },
      async handler({ koa, params, body }) {
        koa.status = 201;
        koa.body = await service.createVersion(params.name, body.version, body.copyFrom);
      },
    }),
    // Declared before `…/versions/:version`: the router tries routes in order, and "next" is not a version.
    route({
      method: 'GET', path: '/api/v1/bundles/:name/versions/next', action: 'bundle:read', params: bundlePath, resource: bundleInPath, summary: 'Compute the next version (?bump=major|minor|patch|prerelease&preid=rc)',
      query: nextVersionQuery, responses: { 200: nextVersion },
      async handler({ koa, params, query }) {
        koa.body = await service.nextVersion(params.name, query.bump, query.preid);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/versions', action: 'bundle:read', params: bundlePath, resource: bundleInPath, summary: 'List versions, oldest first (paginated; ?status=draft|approved|revoked)',
      query: versionListQuery, responses: { 200: listOf(bundleVersion) },
      async handler({ koa, params, query }) {
        const page = pageOf(query);
        sendPage(koa, page, await service.listVersions(params.name, { status: query.status }, { offset: page.offset, limit: page.perPage }));
      },
    }),
    route({
      method: 'GET', path: base, action: 'bundle:read', params: versionPath, resource: bundleInPath, summary: 'Show a version', responses: { 200: bundleVersion },
      async handler({ koa, params }) {
        koa.body = await service.getVersion(params.name, params.version);
      },
    }),
    route({
      method: 'DELETE', path: base, action: 'bundle:write', params: versionPath, resource: bundleInPath, summary: 'Delete a draft version', responses: { 204: 'empty' },
      async handler({ koa, params }) {
        await service.deleteVersion(params.name, params.version);
        koa.status = 204;
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts`, action: 'bundle:read', params: versionPath, resource: bundleInPath, summary: 'List the artifacts of a version (paginated; filters: type, name, search, format, architecture, package_name, package_version)',
      query: artifactListQuery, responses: { 200: listOf(artifact) },
      async handler({ koa, params, query }) {
        const page = pageOf(query);
        const { page: _page, per_page: _perPage, ...filter } = query;
        sendPage(koa, page, await service.listArtifacts(params.name, params.version, filter, { offset: page.offset, limit: page.perPage }));
      },
    }),
    route({
      method: 'POST', path: `${base}/artifacts`, action: 'bundle:write', params: versionPath, resource: bundleInPath, summary: 'Add or replace many artifacts in one request (all or none), creating the draft if needed',
      body: addArtifactsRequest, responses: { 201: listOf(artifact) },
      async handler({ koa, params, body, principal }) {
        for (const artifact of body.artifacts) await requireNameable(principal!, artifact.digest, params.name);
        koa.status = 201;
        koa.body = await service.addArtifacts(params.name, params.version, body.artifacts);
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts/:artifact`, action: 'bundle:read', params: artifactPath, resource: bundleInPath, summary: 'Show an artifact', responses: { 200: artifact },
      async handler({ koa, params }) {
        koa.body = await service.getArtifact(params.name, params.version, params.artifact);
      },
    }),
    route({
      method: 'PUT', path: `${base}/artifacts/:artifact`, action: 'bundle:write', params: artifactPath, resource: bundleInPath, summary: 'Add or replace an artifact in a draft (the blob must be uploaded)',
      body: putArtifactRequest, responses: { 200: artifact, 201: artifact },
      async handler({ koa, params, body, principal }) {
        await requireNameable(principal!, body.digest, params.name);
        const result = await service.putArtifact(params.name, params.version, { name: params.artifact, ...body });
        koa.status = result.created ? 201 : 200;
        koa.body = result.artifact;
      },
    }),
    route({
      method: 'PATCH', path: `${base}/artifacts/:artifact`, action: 'bundle:write', params: artifactPath, resource: bundleInPath, summary: 'Change the metadata (type, package) of an artifact in a draft',
      body: patchArtifactRequest, responses: { 200: artifact },
      async handler({ koa, params, body }) {
        koa.body = await service.patchArtifact(params.name, params.version, params.artifact, body);
      },
    }),
    route({
      method: 'PUT', path: `${base}/files/:file`, action: 'bundle:write', params: filePath, resource: bundleInPath, rawBody: 'application/octet-stream',
      summary: 'Upload a file in one request (curl --upload-file; streamed) and add or replace it as an artifact, creating the draft if needed',
      query: uploadFileQuery, responses: { 200: artifact, 201: artifact },
      async handler({ koa, params, query }) {
        const [name, ver, file] = [params.name, params.version, params.file];
        const declared = koa.get('content-length');
        if (!declared && koa.get('transfer-encoding') === '') throw new ApiError('invalid_request', 'the request has no body: send the file (curl --upload-file FILE)');
        const expectedSize = declared ? Number(declared) : undefined;
        if (expectedSize !== undefined && expectedSize > limits.maxBlobBytes) throw new ApiError('payload_too_large', `file exceeds the limit of ${limits.maxBlobBytes} bytes`);
        const type = query.type ?? (query.format ? 'package' : 'file');
        const pkg = query.format
          ? { format: query.format, name: query.package_name, version: query.package_version, architecture: query.architecture }
          : undefined;
        if (!query.format && (query.package_name || query.package_version || query.architecture)) {
          throw new ApiError('invalid_request', 'package_name, package_version and architecture need format=deb|rpm|npm|generic');
        }
        const result = await service.uploadFile(name, ver, { name: file, type, package: pkg && stripUndefined(pkg), expectedDigest: query.digest, expectedSize, maxBytes: limits.maxBlobBytes }, koa.req);
        koa.status = result.created ? 201 : 200;
        koa.body = result.artifact;
      },
    }),
    route({
      method: 'DELETE', path: `${base}/artifacts/:artifact`, action: 'bundle:write', params: artifactPath, resource: bundleInPath, summary: 'Remove an artifact from a draft', responses: { 204: 'empty' },
      async handler({ koa, params }) {
        await service.deleteArtifact(params.name, params.version, params.artifact);
        koa.status = 204;
      },
    }),
    // Approving is a trust decision: its route lives in server/trust/routes.ts.
  ];
}

function stripUndefined<T extends Record<string, unknown>>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}


