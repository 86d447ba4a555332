import { createDeploymentRequest } from '../../protocol/api.ts';
import { principalName } from '../auth/policy.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeploymentService } from './service.ts';

export function deploymentRoutes(service: DeploymentService): Route[] {
  return [
    route({
      method: 'POST', path: '/api/v1/deployments', action: 'deployment:create', summary: 'Deploy an approved version to a device group', body: createDeploymentRequest,
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
    route({
      // The pull twin of the retained MQTT notice: a device whose broker is unreachable polls
      // this, so no release is missed. Devices hold `tuf:read`; only a device has a group.
      method: 'GET', path: '/api/v1/device/release', action: 'tuf:read', summary: "The release the calling device's group should run (204: none)",
      async handler({ koa, principal }) {
        if (principal?.type !== 'device') throw new ApiError('forbidden', 'only a device may ask for its release');
        const notice = await service.latestFor(principal.group);
        if (notice) koa.body = notice;
        else koa.status = 204;
      },
    }),
  ];
}
