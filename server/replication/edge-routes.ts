import { credentialCheck, credentialVerdict, edgeReport, edgeTaskList, edgeTaskQuery, edgeTaskPath, edgeTaskReport, type CredentialVerdict } from '../../protocol/edge.ts';
import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { ReplicationService } from './service.ts';

/*
 * What an edge node calls on its origin, signed in with its edge token (action `edge:sync`, held
 * by edges only). The bytes themselves come through the origin's ordinary read routes: blobs by
 * digest (`GET /api/v1/blobs/:digest`, Range for resumes; an edge reads what its tasks name) and
 * TUF metadata (`GET /tuf/:file`). Asking for tasks is the edge's heartbeat (its lastSeenAt).
 */
export function edgeSyncRoutes(
  service: Pick<ReplicationService, 'edgeTasks' | 'finishEdgeTask'>,
  deps: {
    /** Whether a device token (sent to the edge by a device) holds, and may read the digest (or the metadata). */
    checkCredential(token: string, digest: string | undefined): Promise<CredentialVerdict>;
    /** A device report the edge's broker stored and now forwards (not_found: no such active device). */
    receiveReport(device: string, payload: Buffer): Promise<void>;
  },
): Route[] {
  const edgeOf = (edge: string | undefined): string => {
    // The policy lets only edges through; this narrows the type and guards a future mistake.
    if (edge === undefined) throw new ApiError('forbidden', 'only edge nodes call this (with their edge token)');
    return edge;
  };
  return [
    route({
      method: 'GET', path: '/api/v1/edge/tasks', action: 'edge:sync', summary: "An edge's pending replication tasks, in order (asking is its heartbeat; ?wait=N holds the request up to N s until there are some)", query: edgeTaskQuery, responses: { 200: edgeTaskList },
      async handler({ koa, edge, query }) {
        koa.body = await service.edgeTasks(edgeOf(edge), (query.wait ?? 0) * 1000);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/tasks/:task', action: 'edge:sync', summary: 'An edge reports a task done or failed', params: edgeTaskPath, body: edgeTaskReport, responses: { 204: 'empty' },
      async handler({ koa, edge, params, body }) {
        await service.finishEdgeTask(edgeOf(edge), params.task, body);
        koa.status = 204;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/credentials', action: 'edge:sync', summary: 'An edge asks whether a device token holds and may read a blob (or the TUF metadata)', body: credentialCheck, responses: { 200: credentialVerdict },
      async handler({ koa, edge, body }) {
        edgeOf(edge);
        koa.body = await deps.checkCredential(body.token, body.digest);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/reports', action: 'edge:sync', summary: "An edge forwards a device's status report its broker stored (a report seen before counts once)", body: edgeReport, responses: { 204: 'empty' },
      async handler({ koa, edge, body }) {
        edgeOf(edge);
        await deps.receiveReport(body.device, Buffer.from(body.payload, 'utf8'));
        koa.status = 204;
      },
    }),
  ];
}
