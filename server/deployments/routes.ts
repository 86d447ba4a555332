import * as z from 'zod';
import { releaseNotice } from '../../protocol/messages.ts';
import { groupPath } from '../../protocol/api.ts';
import { createRolloutRequest, deploymentPath, deploymentListQuery, retryRequest, rolloutActionResult, rolloutDetail, rolloutSummary } from '../../protocol/rollout.ts';
import { principalName, type Caller } from '../auth/policy.ts';
import { mayReadDeployment } from '../auth/reads.ts';
import { ApiError } from '../http/errors.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeploymentService } from './service.ts';

/** The router already parsed it (deploymentPath); this reads it as the number it is. */
const idParam = (params: unknown): number => (params as { id: number }).id;

export function deploymentRoutes(service: DeploymentService): Route[] {
  /**
   * Control routes act on the deployment's group: the permission is looked up from it, once the
   * caller is known to see the deployment (404 otherwise, as for a read of it).
   */
  const groupOfDeployment = async ({ params, caller }: { params: unknown; caller: Caller | undefined }) => ({ group: await service.groupFor(caller, idParam(params)) });
  const control = (verb: 'pause' | 'resume' | 'abort', summary: string) =>
    route({
      method: 'POST', path: `/api/v1/deployments/:id/${verb}`, action: 'deployment:control', summary, params: deploymentPath, resource: groupOfDeployment, responses: { 200: rolloutActionResult },
      async handler({ koa, params, principal }) {
        koa.body = await service[verb](idParam(params), principalName(principal!));
      },
    });
  return [
    route({
      method: 'POST', path: '/api/v1/deployments', action: 'deployment:create',
      summary: 'Deploy an approved version to a device group, in phases (refuses an empty group or a downgrade unless forced or a rollback)',
      body: createRolloutRequest, responses: { 201: rolloutSummary },
      // Deploy right on the group, read right on the bundle (issue #14 item 2).
      resource: ({ body }) => ({ bundle: body.bundle, group: body.group }),
      async handler({ koa, body, principal }) {
        const created = await service.create(body, principalName(principal!));
        koa.status = 201;
        koa.body = created;
      },
    }),
    route({
      method: 'GET', path: '/api/v1/deployments', action: 'deployment:read', summary: 'List deployments with their state and counts, newest first (paginated; ?group= ?state= ?bundle=)',
      query: deploymentListQuery, responses: { 200: z.array(rolloutSummary) },
      async handler({ koa, query, principal }) {
        const page = pageOf(query);
        sendPage(koa, page, await service.list({ group: query.group, state: query.state, bundle: query.bundle }, { offset: page.offset, limit: page.perPage }, principal!));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/deployments/:id', action: 'deployment:read', params: deploymentPath, summary: "One deployment: counts per device state and per phase, each device's transitions",
      responses: { 200: rolloutDetail },
      async handler({ koa, params, principal }) {
        koa.body = await service.showFor(principal!, idParam(params));
      },
    }),
    control('pause', 'Pause a deployment: no new phase starts (devices already told go on)'),
    control('resume', 'Resume a paused deployment (failures so far are accepted; new ones count against the threshold)'),
    control('abort', 'Abort a deployment: devices that have not switched stop and stay where they are'),
    route({
      method: 'POST', path: '/api/v1/deployments/:id/retry', action: 'deployment:control', summary: 'Re-arm the failed devices of a deployment (or one: {"device": ID})',
      params: deploymentPath, resource: groupOfDeployment, body: retryRequest, responses: { 200: rolloutActionResult },
      async handler({ koa, params, body, principal }) {
        koa.body = await service.retry(idParam(params), body.device, principalName(principal!));
      },
    }),
    route({
      // The group topic's pull twin, for dashboards and older daemons. A device may ask only for
      // its own group; devices now follow their own notice (GET /api/v1/devices/:id/release).
      method: 'GET', path: '/api/v1/groups/:group/release', action: 'tuf:read', summary: "The release a device group runs once fully released, as its MQTT notice (204: none)",
      params: groupPath, responses: { 200: releaseNotice, 204: 'empty' },
      async handler({ koa, params, principal }) {
        const group = params.group;
        if (principal?.type === 'device' && principal.group !== group) throw new ApiError('forbidden', 'a device may only ask for its own group\'s release');
        const notice = await service.latestFor(group);
        // A user sees what a group runs as they would see its deployment: Reporter of the group
        // or of the bundle (the read model); to anyone else the group runs nothing they can see.
        if (notice && (principal?.type !== 'user' || mayReadDeployment(principal, { bundle: notice.bundle, group }))) koa.body = notice;
        else koa.status = 204;
      },
    }),
  ];
}
