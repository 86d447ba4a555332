import { createDeploymentRequest, deployment, groupPath, listOf } from '../../protocol/api.ts';
import { releaseNotice } from '../../protocol/messages.ts';
import { principalName } from '../auth/policy.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeploymentService } from './service.ts';

export function deploymentRoutes(service: DeploymentService): Route[] {
  return [
    route({
      method: 'POST', path: '/api/v1/deployments', action: 'deployment:create', summary: 'Deploy an approved version to a device group', body: createDeploymentRequest, responses: { 201: deployment },
      resource: ({ body }) => ({ bundle: body.bundle }),
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.create(body, principalName(principal!));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/deployments', action: 'deployment:read', summary: 'List deployments, newest first', responses: { 200: listOf(deployment) },
      async handler({ koa }) {
        koa.body = await service.list();
      },
    }),
    route({
      // The pull twin of the retained MQTT notice: a device whose broker is unreachable polls
      // this, so no release is missed. A device may ask only for its own group.
      method: 'GET', path: '/api/v1/groups/:group/release', action: 'tuf:read', summary: "The release a device group should run, as its MQTT notice (204: none)",
      params: groupPath, responses: { 200: releaseNotice, 204: 'empty' },
      async handler({ koa, params, principal }) {
        const group = params.group;
        if (principal?.type === 'device' && principal.group !== group) throw new ApiError('forbidden', 'a device may only ask for its own group\'s release');
        const notice = await service.latestFor(group);
        if (notice) koa.body = notice;
        else koa.status = 204;
      },
    }),
  ];
}
