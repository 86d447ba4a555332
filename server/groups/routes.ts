import * as z from 'zod';
import { groupPath, pageQuery } from '../../protocol/api.ts';
import { createGroupRequest, groupMemberPath, deviceGroup, groupMember, groupPreview, groupPreviewRequest, putGroupMemberRequest } from '../../protocol/rollout.ts';
import type { Device } from '../../protocol/api.ts';
import { actsAsAdmin, principalName, type Principal } from '../auth/policy.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { route, type Route } from '../http/routes.ts';
import type { GroupService } from './service.ts';

/** The router already parsed it (groupPath, groupMemberPath). */
const groupParam = (params: unknown): string => (params as { group: string }).group;
const groupInPath = ({ params }: { params: unknown }) => ({ group: groupParam(params) });

export function groupRoutes(
  service: GroupService,
  hooks: {
    changed?: () => void;
    /** The devices of a list the caller may see (the devices' read model, server/auth/reads.ts). */
    visible?: (viewer: Principal, devices: Device[]) => Promise<Device[]>;
  } = {},
): Route[] {
  return [
    route({
      method: 'GET', path: '/api/v1/groups', action: 'group:list', summary: 'List the device groups one may read, with their sizes (paginated)',
      query: pageQuery, responses: { 200: z.array(deviceGroup) },
      async handler({ koa, query, principal, can }) {
        const page = pageOf(query);
        const all = await service.list((group) => (principal !== undefined && actsAsAdmin(principal)) || can('group:read', { group }));
        sendPage(koa, page, { items: all.slice(page.offset, page.offset + page.perPage), total: all.length });
      },
    }),
    route({
      method: 'POST', path: '/api/v1/groups', action: 'group:create', summary: 'Create a device group: static, or dynamic with a filter over inventory', body: createGroupRequest, responses: { 201: deviceGroup },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.create(body, principal!, principalName(principal!));
        hooks.changed?.();
      },
    }),
    route({
      // Declared before /:group so that "preview" is not read as a group name.
      method: 'POST', path: '/api/v1/groups/preview', action: 'device:read', summary: 'Which devices a filter matches now (the preview of a dynamic group)', body: groupPreviewRequest, responses: { 200: groupPreview },
      async handler({ koa, body, principal }) {
        // A preview names devices: only those the caller may see, as GET /api/v1/devices would.
        koa.body = await service.preview(body.filter, hooks.visible ? (devices) => hooks.visible!(principal!, devices) : undefined);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/groups/:group', action: 'group:read', params: groupPath, resource: groupInPath, summary: 'Show a device group', responses: { 200: deviceGroup },
      async handler({ koa, params }) {
        koa.body = await service.get(groupParam(params));
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/groups/:group', action: 'group:delete', params: groupPath, resource: groupInPath, summary: 'Delete a device group without devices or unfinished deployments', responses: { 204: 'empty' },
      async handler({ koa, params }) {
        await service.delete(groupParam(params));
        koa.status = 204;
      },
    }),
    route({
      method: 'GET', path: '/api/v1/groups/:group/members', action: 'group-member:read', params: groupPath, resource: groupInPath, summary: "List a device group's members", responses: { 200: z.array(groupMember) },
      async handler({ koa, params }) {
        koa.body = await service.listMembers(groupParam(params));
      },
    }),
    route({
      method: 'POST', path: '/api/v1/groups/:group/members', action: 'group-member:write', params: groupPath, resource: groupInPath, summary: 'Add a member to a device group or change their role', body: putGroupMemberRequest,
      responses: { 200: groupMember, 201: groupMember },
      async handler({ koa, params, body, principal }) {
        const { member, created } = await service.putMember(principal!, groupParam(params), body.user, body.role);
        koa.status = created ? 201 : 200;
        koa.body = member;
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/groups/:group/members/:user', action: 'group-member:write', params: groupMemberPath, resource: groupInPath, summary: 'Remove a member from a device group', responses: { 204: 'empty' },
      async handler({ koa, params, principal }) {
        await service.removeMember(principal!, groupParam(params), (params as { user: string }).user);
        koa.status = 204;
      },
    }),
  ];
}
