import {
  createEnrollmentTokenRequest,
  deviceCertificateList,
  devicePath,
  deviceRevocation,
  enrollment,
  enrollmentToken,
  enrollmentTokenList,
  enrollmentTokenListQuery,
  enrollmentTokenPath,
  enrollmentTokenRevocation,
  enrollRequest,
  renewal,
  renewRequest,
} from '../../protocol/enrollment.ts';
import type { Principal } from '../auth/policy.ts';
import { route, type Route } from '../http/routes.ts';
import type { EnrollmentService } from './service.ts';

/**
 * `requireVisible` is the devices' read model (server/auth/reads.ts): a device's certificates are
 * shown only to who may read the device, and one they may not see answers 404 like a read of it.
 */
export function enrollmentRoutes(service: EnrollmentService, deps: { requireVisible(viewer: Principal, id: string): Promise<unknown> }): Route[] {
  return [
    route({
      method: 'POST', path: '/api/v1/enrollment-tokens', action: 'enrollment:create', summary: 'Create an enrollment token for a group (or for one device to enroll again); shown once',
      body: createEnrollmentTokenRequest, responses: { 201: enrollmentToken },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await service.createToken(principal!, body);
      },
    }),
    // Listing and revoking need the same power as creating: whoever may mint a batch token may
    // see the live ones and stop a leaked one.
    route({
      method: 'GET', path: '/api/v1/enrollment-tokens', action: 'enrollment:create', summary: 'List live enrollment tokens (a use left, not expired, not revoked; ?group=): who may enroll, uses left, expiry, who made it; never the secret',
      query: enrollmentTokenListQuery, responses: { 200: enrollmentTokenList },
      async handler({ koa, query }) {
        koa.body = { tokens: await service.listTokens({ group: query.group }) };
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/enrollment-tokens/:id', action: 'enrollment:create', summary: 'Revoke an enrollment token: nobody enrolls with it from now on (revoking twice answers when it was revoked)',
      params: enrollmentTokenPath, responses: { 200: enrollmentTokenRevocation },
      async handler({ koa, params, principal }) {
        koa.body = await service.revokeToken(principal!, params.id);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/devices/:id/certificates', action: 'device:read', summary: "A device's certificates, newest first: serial, SHA-256 fingerprint, issued, not after, revoked",
      params: devicePath, responses: { 200: deviceCertificateList },
      async handler({ koa, params, principal }) {
        await deps.requireVisible(principal!, params.id);
        koa.body = { device: params.id, certificates: await service.certificatesOf(params.id) };
      },
    }),
    route({
      method: 'POST', path: '/api/v1/enroll', action: 'device:enroll', anonymous: true, summary: 'Enroll a device: an enrollment token and a CSR in, its certificate, the CA chain and the TUF root out',
      body: enrollRequest, responses: { 201: enrollment },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await service.enroll(body.token, body.csr);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/enroll/renew', action: 'device:enroll', anonymous: true, summary: "Renew a device's certificate: the current one (still valid) and a CSR of the same key",
      body: renewRequest, responses: { 200: renewal },
      async handler({ koa, body }) {
        koa.body = await service.renew(body.certificate, body.csr);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/devices/:id/revoke', action: 'device:revoke', summary: "Revoke a device: its certificates and tokens stop working at once, its MQTT sessions are closed",
      params: devicePath, responses: { 200: deviceRevocation },
      async handler({ koa, params, principal }) {
        koa.body = await service.revokeDevice(principal!, params.id);
      },
    }),
  ];
}
