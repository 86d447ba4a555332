import { createDeviceRequest, device, deviceRegistration, listOf } from '../../protocol/api.ts';
import { deviceNotice } from '../../protocol/messages.ts';
import { deviceDetail, deviceListQuery, devicePath, moveDeviceRequest } from '../../protocol/rollout.ts';
import { principalName, type Caller, type Principal } from '../auth/policy.ts';
import { ApiError } from '../http/errors.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeviceService } from './service.ts';

/** The router already parsed it (devicePath). */
const idParam = (params: unknown): string => (params as { id: string }).id;

export function deviceRoutes(service: DeviceService, deps: { inGroup: (group: string) => Promise<(d: import('../../protocol/api.ts').Device) => Promise<boolean>>; noticeFor: (id: string) => Promise<unknown> }): Route[] {
  /**
   * Write routes act on the device's group, once the caller is known to see the device: one they
   * may not see answers 404 as a read of it would (its existence is not revealed), 403 only after.
   */
  const visibleDevice = (caller: Caller | undefined, id: string) => {
    if (!caller || caller.type === 'edge') throw new ApiError('not_found', `device "${id}" does not exist`);
    return service.requireVisible(caller, id);
  };
  const groupOfDevice = async ({ params, caller }: { params: unknown; caller: Caller | undefined }) => ({ group: (await visibleDevice(caller, idParam(params))).group });
  return [
    route({
      method: 'POST', path: '/api/v1/devices', action: 'device:create', summary: 'Register a device and mint its token (a new group name creates a static group)', body: createDeviceRequest, responses: { 201: deviceRegistration },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.register(body.id, body.group, principal);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/devices', action: 'device:read',
      summary: 'List devices with inventory, state and online state (paginated; ?group= ?state= ?online= ?filter= in the dynamic-group language)',
      query: deviceListQuery, responses: { 200: listOf(device) },
      async handler({ koa, query, principal }) {
        const page = pageOf(query);
        const inGroup = query.group ? await deps.inGroup(query.group) : undefined;
        sendPage(koa, page, await service.list({ state: query.state, online: query.online === undefined ? undefined : query.online === 'true', filter: query.filter, inGroup }, { offset: page.offset, limit: page.perPage }, principal!));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/devices/:id', action: 'device:read', params: devicePath, summary: 'One device: inventory, groups, what it should run, its state history',
      responses: { 200: deviceDetail },
      async handler({ koa, params, principal }) {
        koa.body = await service.showFor(principal!, idParam(params));
      },
    }),
    route({
      method: 'POST', path: '/api/v1/devices/:id/move', action: 'device:write', params: devicePath, summary: 'Move a device to another static group (Maintainer on both groups)',
      body: moveDeviceRequest, responses: { 200: device },
      resource: async ({ params, body, caller }) => {
        await visibleDevice(caller, idParam(params));
        return { group: body.group };
      },
      async handler({ koa, params, body, can }) {
        const id = idParam(params);
        const from = (await service.requireDevice(id)).group;
        if (!can('device:write', { group: from })) throw new ApiError('forbidden', `not allowed to device:write: needs maintainer or higher on group "${from}" too (the device's group now)`);
        koa.body = await service.move(id, body.group);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/devices/:id', action: 'device:write', params: devicePath, summary: 'Decommission a device: its token stops at once on HTTP, /tuf/ and MQTT (the record stays for history)',
      resource: groupOfDevice, responses: { 200: device },
      async handler({ koa, params, principal }) {
        koa.body = await service.decommission(idParam(params), principalName(principal as Principal));
      },
    }),
    route({
      // The pull twin of the device's retained notice: a device whose broker is unreachable polls it.
      method: 'GET', path: '/api/v1/devices/:id/release', action: 'tuf:read', params: devicePath, summary: 'What this device should run (or that its deployment was aborted), as its MQTT notice (204: nothing)',
      responses: { 200: deviceNotice, 204: 'empty' },
      async handler({ koa, params, principal }) {
        const id = idParam(params);
        if (principal?.type === 'device' && principal.deviceId !== id) throw new ApiError('forbidden', 'a device may only ask for its own release');
        // A user sees a device's notice only if they may see the device (the read model): 404 otherwise.
        if (principal?.type === 'user') await service.requireVisible(principal, id);
        const notice = await deps.noticeFor(id);
        if (notice) koa.body = notice;
        else koa.status = 204;
      },
    }),
  ];
}
