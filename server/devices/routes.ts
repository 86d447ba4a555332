import { createDeviceRequest, device, deviceRegistration, listOf } from '../../protocol/api.ts';
import { groupName } from '../../protocol/names.ts';
import { parseWith } from '../../protocol/parse.ts';
import { route, type Route } from '../http/routes.ts';
import type { DeviceService } from './service.ts';

export function deviceRoutes(service: DeviceService): Route[] {
  return [
    route({
      method: 'POST', path: '/api/v1/devices', action: 'device:create', summary: 'Register a device and mint its token', body: createDeviceRequest, responses: { 201: deviceRegistration },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await service.register(body.id, body.group);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/devices', action: 'device:read', summary: 'List devices with their reported state (?group=)', responses: { 200: listOf(device) },
      async handler({ koa }) {
        const group = typeof koa.query.group === 'string' ? parseWith(groupName, koa.query.group, 'group filter', 'invalid_name') : undefined;
        koa.body = await service.list(group ? { group } : {});
      },
    }),
  ];
}
