import { createDeviceRequest, device, deviceListQuery, deviceRegistration, listOf } from '../../protocol/api.ts';
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
      method: 'GET', path: '/api/v1/devices', action: 'device:read', summary: 'List devices with their reported state (?group=)', query: deviceListQuery, responses: { 200: listOf(device) },
      async handler({ koa, query }) {
        const group = query.group;
        koa.body = await service.list(group ? { group } : {});
      },
    }),
  ];
}
