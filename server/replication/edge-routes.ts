import { devicePath } from '../../protocol/rollout.ts';
import { deviceNotice, type DeviceNotice } from '../../protocol/messages.ts';
import { credentialCheck, credentialVerdict, edgeCertificate, edgeCertificateRequest, edgeReport, type DeviceCredential, type EdgeCertificate, type EdgeCertificateRequest, edgeTaskList, edgeTaskQuery, edgeTaskPath, edgeTaskReport, type CredentialVerdict } from '../../protocol/edge.ts';
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
    checkCredential(credential: DeviceCredential, digest: string | undefined, bundle?: string): Promise<CredentialVerdict>;
    /** Signs the edge's HTTPS server certificate with the fleet issuer (issue 12). */
    signCertificate(edge: string, request: EdgeCertificateRequest): Promise<EdgeCertificate>;
    /** What an active device should run (the answer its own release poll gets); not_found: no such active device. */
    releaseOf(device: string): Promise<DeviceNotice | undefined>;
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
        koa.body = await deps.checkCredential('token' in body ? { token: body.token } : { certificate: body.certificate }, body.digest, body.bundle);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/edge/certificate', action: 'edge:sync', summary: "An edge has the fleet CA sign its HTTPS server certificate (a CSR for the names its devices dial; serverAuth only)", body: edgeCertificateRequest, responses: { 200: edgeCertificate },
      async handler({ koa, edge, body }) {
        koa.body = await deps.signCertificate(edgeOf(edge), body);
      },
    }),
    route({
      // A device on the edge's HTTPS listener holds no token to forward: the edge checked its
      // certificate with the origin (POST /api/v1/edge/credentials) and asks for it by id.
      method: 'GET', path: '/api/v1/edge/devices/:id/release', action: 'edge:sync', params: devicePath, summary: 'An edge asks what a device it signed in by certificate should run', responses: { 200: deviceNotice, 204: 'empty' },
      async handler({ koa, edge, params }) {
        edgeOf(edge);
        const notice = await deps.releaseOf(params.id);
        if (notice) koa.body = notice;
        else koa.status = 204;
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
