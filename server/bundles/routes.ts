import { artifactName, bundleName, version as versionSchema } from '../../protocol/names.ts';
import { createBundleRequest, createVersionRequest, putArtifactRequest } from '../../protocol/api.ts';
import { parseWith } from '../../protocol/parse.ts';
import type { Principal } from '../auth/policy.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { BundleVersion } from '../../protocol/api.ts';
import type { BundleService } from './service.ts';

/** Path parameters are input like any other: validated before they reach a query. */
function nameParam(params: Record<string, string>): string {
  return parseWith(bundleName, params.name, 'bundle name in the URL', 'invalid_name');
}
function versionParam(params: Record<string, string>): string {
  return parseWith(versionSchema, params.version, 'version in the URL', 'invalid_version');
}
function artifactParam(params: Record<string, string>): string {
  return parseWith(artifactName, params.artifact, 'artifact name in the URL', 'invalid_name');
}

/** What happens around a bundle's life that is not the bundle's own business (membership, notices). */
export interface BundleHooks {
  created?(bundle: string, by: Principal): Promise<void>;
  approved?(version: BundleVersion, by: Principal): Promise<void>;
}

export function bundleRoutes(service: BundleService, hooks: BundleHooks = {}): Route[] {
  const base = '/api/v1/bundles/:name/versions/:version';
  return [
    route({
      method: 'POST', path: '/api/v1/bundles', action: 'bundle:create', summary: 'Create a bundle', body: createBundleRequest,
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.createBundle(body.name, body.description);
        await hooks.created?.(body.name, principal!);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles', action: 'bundle:list', summary: 'List bundles',
      async handler({ koa, can }) {
        // Only the bundles one may read are listed (admins: all).
        koa.body = (await service.listBundles()).filter((b) => can('bundle:read', { bundle: b.name }));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name', action: 'bundle:read', resource: bundleInPath, summary: 'Show a bundle',
      async handler({ koa, params }) {
        koa.body = await service.getBundle(nameParam(params));
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/bundles/:name', action: 'bundle:delete', resource: bundleInPath, summary: 'Delete a bundle that has no approved version',
      async handler({ koa, params }) {
        await service.deleteBundle(nameParam(params));
        koa.status = 204;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/versions', action: 'bundle:write', resource: bundleInPath, summary: 'Create a draft version', body: createVersionRequest,
      async handler({ koa, params, body }) {
        koa.status = 201;
        koa.body = await service.createVersion(nameParam(params), body.version);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/versions', action: 'bundle:read', resource: bundleInPath, summary: 'List versions',
      async handler({ koa, params }) {
        koa.body = await service.listVersions(nameParam(params));
      },
    }),
    route({
      method: 'GET', path: base, action: 'bundle:read', resource: bundleInPath, summary: 'Show a version',
      async handler({ koa, params }) {
        koa.body = await service.getVersion(nameParam(params), versionParam(params));
      },
    }),
    route({
      method: 'DELETE', path: base, action: 'bundle:write', resource: bundleInPath, summary: 'Delete a draft version',
      async handler({ koa, params }) {
        await service.deleteVersion(nameParam(params), versionParam(params));
        koa.status = 204;
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts`, action: 'bundle:read', resource: bundleInPath, summary: 'List the artifacts of a version',
      async handler({ koa, params }) {
        koa.body = await service.listArtifacts(nameParam(params), versionParam(params));
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts/:artifact`, action: 'bundle:read', resource: bundleInPath, summary: 'Show an artifact',
      async handler({ koa, params }) {
        koa.body = await service.getArtifact(nameParam(params), versionParam(params), artifactParam(params));
      },
    }),
    route({
      method: 'PUT', path: `${base}/artifacts/:artifact`, action: 'bundle:write', resource: bundleInPath, summary: 'Add or replace an artifact in a draft', body: putArtifactRequest,
      async handler({ koa, params, body }) {
        const result = await service.putArtifact(nameParam(params), versionParam(params), { name: artifactParam(params), ...body });
        koa.status = result.created ? 201 : 200;
        koa.body = result.artifact;
      },
    }),
    route({
      method: 'DELETE', path: `${base}/artifacts/:artifact`, action: 'bundle:write', resource: bundleInPath, summary: 'Remove an artifact from a draft',
      async handler({ koa, params }) {
        await service.deleteArtifact(nameParam(params), versionParam(params), artifactParam(params));
        koa.status = 204;
      },
    }),
    // Approving is a trust decision: its route lives in server/trust/routes.ts.
  ];
}
