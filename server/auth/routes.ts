import { accessToken, createdToken, currentUser, createTokenRequest, createUserRequest, member, putMemberRequest, user, userName } from '../../protocol/access.ts';
import { listOf } from '../../protocol/api.ts';
import { bundleName } from '../../protocol/names.ts';
import { parseWith } from '../../protocol/parse.ts';
import { ApiError } from '../http/errors.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { AuthService } from './service.ts';
import { describeUser } from './whoami.ts';

function nameParam(params: Record<string, string>): string {
  return parseWith(bundleName, params.name, 'bundle name in the URL', 'invalid_name');
}
function userParam(value: unknown, what: string): string {
  return parseWith(userName, value, what, 'invalid_name');
}

/** Users, bundle membership and access tokens. */
export function accessRoutes(auth: AuthService, deps: { requireBundle: (name: string) => Promise<unknown> }): Route[] {
  return [
    route({
      method: 'GET', path: '/api/v1/user', action: 'session:read', summary: 'Who the caller is: roles, token scopes and the actions they hold', responses: { 200: currentUser },
      async handler({ koa, principal }) {
        if (principal?.type !== 'user') throw new ApiError('forbidden', 'only users have a session; devices do not');
        koa.body = describeUser(principal);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/users', action: 'user:write', summary: 'Create a user (admin)', body: createUserRequest, responses: { 201: user },
      async handler({ koa, body }) {
        koa.status = 201;
        koa.body = await auth.createUser(body.name, body.admin ?? false);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/users', action: 'user:read', summary: 'List users (admin)', responses: { 200: listOf(user) },
      async handler({ koa }) {
        koa.body = await auth.listUsers();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/bundles/:name/members', action: 'member:read', resource: bundleInPath, summary: "List a bundle's members and their roles", responses: { 200: listOf(member) },
      async handler({ koa, params }) {
        const bundle = nameParam(params);
        await deps.requireBundle(bundle);
        koa.body = await auth.listMembers(bundle);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/members', action: 'member:write', resource: bundleInPath, summary: "Add a member or change a member's role", body: putMemberRequest, responses: { 200: member, 201: member },
      async handler({ koa, params, body, principal }) {
        const bundle = nameParam(params);
        await deps.requireBundle(bundle);
        const result = await auth.putMember(principal!, bundle, body.user, body.role);
        koa.status = result.created ? 201 : 200;
        koa.body = result.member;
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/bundles/:name/members/:user', action: 'member:write', resource: bundleInPath, summary: 'Remove a member', responses: { 204: 'empty' },
      async handler({ koa, params, principal }) {
        const bundle = nameParam(params);
        await deps.requireBundle(bundle);
        await auth.removeMember(principal!, bundle, userParam(params.user, 'user name in the URL'));
        koa.status = 204;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/tokens', action: 'token:write', summary: 'Create an access token (shown once); admins may name another user', body: createTokenRequest, responses: { 201: createdToken },
      async handler({ koa, body, principal }) {
        koa.status = 201;
        koa.body = await auth.createToken(principal!, body);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/tokens', action: 'token:read', summary: "List one's tokens with their last use (admins: ?user=NAME)", responses: { 200: listOf(accessToken) },
      async handler({ koa, principal }) {
        const user = koa.query.user === undefined ? undefined : userParam(koa.query.user, 'user filter');
        koa.body = await auth.listTokens(principal!, user);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/tokens/:id', action: 'token:write', summary: 'Revoke a token (its owner or an admin)', responses: { 200: accessToken },
      async handler({ koa, params, principal }) {
        const id = Number(params.id);
        if (!/^\d{1,15}$/.test(params.id ?? '') || id < 1) throw new ApiError('invalid_request', 'token id in the URL must be a positive whole number');
        koa.body = await auth.revokeToken(principal!, id);
      },
    }),
  ];
}
