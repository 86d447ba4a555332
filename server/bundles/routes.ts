import { artifactName, bundleName, version as versionSchema } from '../../protocol/names.ts';
import { createBundleRequest, createVersionRequest, putArtifactRequest } from '../../protocol/api.ts';
import { parseWith } from '../../protocol/parse.ts';
import { route, type Route } from '../http/routes.ts';
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

export function bundleRoutes(service: BundleService): Route[] {
  const base = '/api/v1/bundles/:name/versions/:version';
  return [
    route({
      method: 'POST', path: '/api/v1/bundles', action: 'bundle:write', summary: 'Create a bundle', body: createBundleRequest,
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await service.createBundle(body.name, body.description);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles', action: 'bundle:read', summary: 'List bundles',
      async handler({ koa }) {
        koa.body = await service.listBundles();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name', action: 'bundle:read', summary: 'Show a bundle',
      async handler({ koa, params }) {
        koa.body = await service.getBundle(nameParam(params));
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/bundles/:name', action: 'bundle:write', summary: 'Delete a bundle that has no approved version',
      async handler({ koa, params }) {
        await service.deleteBundle(nameParam(params));
        koa.status = 204;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/versions', action: 'bundle:write', summary: 'Create a draft version', body: createVersionRequest,
      async handler({ koa, params, body }) {
        koa.status = 201;
        koa.body = await service.createVersion(nameParam(params), body.version);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/versions', action: 'bundle:read', summary: 'List versions',
      async handler({ koa, params }) {
        koa.body = await service.listVersions(nameParam(params));
      },
    }),
    route({
      method: 'GET', path: base, action: 'bundle:read', summary: 'Show a version',
      async handler({ koa, params }) {
        koa.body = await service.getVersion(nameParam(params), versionParam(params));
      },
    }),
    route({
      method: 'DELETE', path: base, action: 'bundle:write', summary: 'Delete a draft version',
      async handler({ koa, params }) {
        await service.deleteVersion(nameParam(params), versionParam(params));
        koa.status = 204;
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts`, action: 'bundle:read', summary: 'List the artifacts of a version',
      async handler({ koa, params }) {
        koa.body = await service.listArtifacts(nameParam(params), versionParam(params));
      },
    }),
    route({
      method: 'GET', path: `${base}/artifacts/:artifact`, action: 'bundle:read', summary: 'Show an artifact',
      async handler({ koa, params }) {
        koa.body = await service.getArtifact(nameParam(params), versionParam(params), artifactParam(params));
      },
    }),
    route({
      method: 'PUT', path: `${base}/artifacts/:artifact`, action: 'bundle:write', summary: 'Add or replace an artifact in a draft', body: putArtifactRequest,
      async handler({ koa, params, body }) {
        const result = await service.putArtifact(nameParam(params), versionParam(params), { name: artifactParam(params), ...body });
        koa.status = result.created ? 201 : 200;
        koa.body = result.artifact;
      },
    }),
    route({
      method: 'DELETE', path: `${base}/artifacts/:artifact`, action: 'bundle:write', summary: 'Remove an artifact from a draft',
      async handler({ koa, params }) {
        await service.deleteArtifact(nameParam(params), versionParam(params), artifactParam(params));
        koa.status = 204;
      },
    }),
    // Approving is a trust decision: its route lives in server/trust/routes.ts.
  ];
}
