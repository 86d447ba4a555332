import * as z from 'zod';
import { rolloutDetail, type RolloutDetail } from '../../protocol/rollout.ts';
import type { Principal } from '../auth/policy.ts';
import { streamSnapshots } from '../http/events.ts';
import { route, type Route } from '../http/routes.ts';

/** `/api/v1/deployments/:id/events`: the deployment's id, a positive whole number. */
const deploymentEventsPath = z.strictObject({ id: z.string().regex(/^[1-9]\d{0,14}$/, 'must be a positive whole number').transform(Number) });

/** A deployment in one of these states changes no more: its stream sends it and ends. */
const finished = new Set(['completed', 'aborted', 'superseded']);

export interface DeploymentEventOptions {
  /** How often an open stream reads the deployment (each client: one query per interval). */
  intervalMs: number;
  heartbeatMs: number;
  /** A stream ends after this long and the client opens a new one. */
  maxMs: number;
  /** Ends open streams when the server stops. */
  signal?: AbortSignal;
}

export const defaultDeploymentEvents: DeploymentEventOptions = { intervalMs: 1000, heartbeatMs: 15_000, maxMs: 10 * 60_000 };

/**
 * Live progress of one deployment as server-sent events (the web UI's deployment screen): the
 * detail `GET /api/v1/deployments/:id` answers, again each time it changes.
 */
export function deploymentEventRoutes(service: { showFor(viewer: Principal, id: number): Promise<RolloutDetail>; changeToken?(id: number): Promise<string> }, options: DeploymentEventOptions = defaultDeploymentEvents): Route[] {
  return [
    route({
      method: 'GET', path: '/api/v1/deployments/:id/events', action: 'deployment:read', params: deploymentEventsPath,
      summary: 'Live progress of a deployment: server-sent events, each the deployment as GET /api/v1/deployments/:id answers it, sent when it changes; ends once the deployment is finished',
      responses: { 200: { eventStream: rolloutDetail } },
      async handler({ koa, params, principal }) {
        const id = (params as { id: number }).id;
        const changeToken = service.changeToken?.bind(service);
        // The same read check as GET /api/v1/deployments/:id, on every snapshot: the first one
        // answers 404 before the stream opens for a deployment the caller may not read.
        await streamSnapshots(koa, { load: () => service.showFor(principal!, id), ...(changeToken ? { version: () => changeToken(id) } : {}), isFinal: (d) => finished.has(d.state), ...options });
      },
    }),
  ];
}
