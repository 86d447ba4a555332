
import { bundlePath, listOf } from '../../protocol/api.ts';
import {
  createEdgeRequest,
  createPolicyRequest,
  createRegistryRequest,
  createdEdge,
  edge,
  edgePath,
  policyPath,
  registryEndpoint,
  registryPath,
  replicationPolicy,
  replicationRun,
  replicationRunDetail,
  runListQuery,
  runPath,
  startRunRequest,
  updateEdgeRequest,
  updatePolicyRequest,
} from '../../protocol/replication.ts';
import { principalName } from '../auth/policy.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { ReplicationService } from './service.ts';

/** Replication's routes: destinations (edges, registry endpoints), policies per bundle, runs. */
export function replicationRoutes(service: ReplicationService): Route[] {
  const policies = '/api/v1/bundles/:name/replication-policies';
  const enable = (enabled: boolean) =>
    route({
      method: 'POST', path: `${policies}/:policy/${enabled ? 'enable' : 'disable'}`, action: 'replication:write', params: policyPath, resource: bundleInPath,
      summary: enabled ? 'Enable a replication policy' : 'Disable a replication policy (its triggers stop; runs in flight finish)',
      responses: { 200: replicationPolicy },
      async handler({ koa, params }) {
        koa.body = await service.updatePolicy(params.name, params.policy, { enabled });
      },
    });
  return [
    route({
      method: 'POST', path: '/api/v1/edges', action: 'edge:write', summary: 'Add an edge node; its token is in this answer only', body: createEdgeRequest, responses: { 201: createdEdge },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await service.addEdge(body.name, body.description, body.url);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/edges', action: 'edge:read', summary: 'List edge nodes', responses: { 200: listOf(edge) },
      async handler({ koa }) {
        koa.body = await service.listEdges();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/edges/:edge', action: 'edge:read', summary: 'One edge node', params: edgePath, responses: { 200: edge },
      async handler({ koa, params }) {
        koa.body = await service.getEdge(params.edge);
      },
    }),
    route({
      method: 'PATCH', path: '/api/v1/edges/:edge', action: 'edge:write', summary: "Change an edge's URL (push mode: the origin sends to it; null: it pulls) or description; a first URL needs the edge's token again", params: edgePath, body: updateEdgeRequest, responses: { 200: edge },
      async handler({ koa, params, body }) {
        koa.body = await service.updateEdge(params.edge, body);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/edges/:edge', action: 'edge:write', summary: 'Remove an edge node (its token stops working)', params: edgePath, responses: { 200: edge },
      async handler({ koa, params }) {
        koa.body = await service.removeEdge(params.edge);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/registries', action: 'registry:write', summary: 'Add a registry endpoint; credentials are stored encrypted (CONVOY_SECRET_KEY) and never returned', body: createRegistryRequest, responses: { 201: registryEndpoint },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await service.addRegistry(body);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/registries', action: 'registry:read', summary: 'List registry endpoints', responses: { 200: listOf(registryEndpoint) },
      async handler({ koa }) {
        koa.body = await service.listRegistries();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/registries/:registry', action: 'registry:read', summary: 'One registry endpoint', params: registryPath, responses: { 200: registryEndpoint },
      async handler({ koa, params }) {
        koa.body = await service.getRegistry(params.registry);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/registries/:registry', action: 'registry:write', summary: 'Remove a registry endpoint and its credentials', params: registryPath, responses: { 200: registryEndpoint },
      async handler({ koa, params }) {
        koa.body = await service.removeRegistry(params.registry);
      },
    }),
    route({
      method: 'POST', path: policies, action: 'replication:write', summary: 'Create a replication policy: what (filter) goes where (destinations), when (trigger)', params: bundlePath, resource: bundleInPath, body: createPolicyRequest, responses: { 201: replicationPolicy },
      async handler({ koa, params, body }) {
        koa.status = 201;
        koa.body = await service.createPolicy(params.name, body);
      },
    }),
    route({
      method: 'GET', path: policies, action: 'replication:read', summary: 'List the bundle\'s replication policies', params: bundlePath, resource: bundleInPath, responses: { 200: listOf(replicationPolicy) },
      async handler({ koa, params }) {
        koa.body = await service.listPolicies(params.name);
      },
    }),
    route({
      method: 'GET', path: `${policies}/:policy`, action: 'replication:read', summary: 'One replication policy', params: policyPath, resource: bundleInPath, responses: { 200: replicationPolicy },
      async handler({ koa, params }) {
        koa.body = await service.getPolicy(params.name, params.policy);
      },
    }),
    route({
      method: 'PATCH', path: `${policies}/:policy`, action: 'replication:write', summary: 'Change a replication policy (fields given are replaced)', params: policyPath, resource: bundleInPath, body: updatePolicyRequest, responses: { 200: replicationPolicy },
      async handler({ koa, params, body }) {
        koa.body = await service.updatePolicy(params.name, params.policy, body);
      },
    }),
    route({
      method: 'DELETE', path: `${policies}/:policy`, action: 'replication:write', summary: 'Delete a replication policy (its run history stays)', params: policyPath, resource: bundleInPath, responses: { 200: replicationPolicy },
      async handler({ koa, params }) {
        koa.body = await service.deletePolicy(params.name, params.policy);
      },
    }),
    enable(true),
    enable(false),
    route({
      method: 'POST', path: `${policies}/:policy/runs`, action: 'replication:run', summary: 'Start a run: one approved version ({"version"}) or every approved version the filter matches', params: policyPath, resource: bundleInPath, body: startRunRequest, responses: { 202: replicationRunDetail },
      async handler({ koa, params, body, principal }) {
        koa.status = 202;
        koa.body = await service.startRun(params.name, params.policy, { version: body.version, by: principal ? principalName(principal) : 'anonymous' });
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/replication-runs', action: 'replication:read', summary: 'Replication runs, newest first (?policy=, paged)', params: bundlePath, resource: bundleInPath, query: runListQuery, responses: { 200: listOf(replicationRun) },
      async handler({ koa, params, query }) {
        const page = pageOf(query);
        sendPage(koa, page, await service.listRuns(params.name, { policy: query.policy }, { offset: page.offset, limit: page.perPage }));
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/replication-runs/:run/cancel', action: 'replication:run', summary: 'Cancel a running run: tasks not started are skipped', params: runPath, resource: ({ params }) => ({ bundle: params.name }), responses: { 200: replicationRunDetail },
      async handler({ koa, params }) {
        koa.body = await service.cancelRun(params.name, params.run);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/replication-runs/:run/retry', action: 'replication:run', summary: 'Run the failed tasks of a finished run again', params: runPath, resource: ({ params }) => ({ bundle: params.name }), responses: { 202: replicationRunDetail },
      async handler({ koa, params }) {
        koa.status = 202;
        koa.body = await service.retryRun(params.name, params.run);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/replication-runs/:run', action: 'replication:read', summary: 'One run with its tasks (status, bytes, duration, attempts, error)', params: runPath, resource: ({ params }) => ({ bundle: params.name }), responses: { 200: replicationRunDetail },
      async handler({ koa, params }) {
        koa.body = await service.getRun(params.name, params.run);
      },
    }),
  ];
}

