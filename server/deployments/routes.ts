import { createDeploymentRequest } from '../../protocol/api.ts';
import { principalName } from '../auth/policy.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeploymentService } from './service.ts';

export function deploymentRoutes(service: DeploymentService): Route[] {
  return [
    route({
      method: 'POST', path: '/api/v1/deployments', action: 'deployment:create', summary: 'Deploy an approved version to a device group', body: createDeploymentRequest,
      resource: ({ body }) => ({ bundle: body.bundle }),
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.create(body, principalName(principal!));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/deployments', action: 'deployment:read', summary: 'List deployments, newest first',
      async handler({ koa }) {
        koa.body = await service.list();
      },
    }),
  ];
}
