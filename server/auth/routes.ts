import { accessToken, createdToken, createTokenRequest, createUserRequest, currentUser, member, memberPath, putMemberRequest, tokenListQuery, tokenPath, user } from '../../protocol/access.ts';
import { bundlePath, listOf } from '../../protocol/api.ts';
import { ApiError } from '../http/errors.ts';
import { bundleInPath, route, type Route } from '../http/routes.ts';
import type { AuthService } from './service.ts';
import { describeUser } from './whoami.ts';

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
      method: 'GET', path: '/api/v1/bundles/:name/members', action: 'member:read', params: bundlePath, resource: bundleInPath, summary: "List a bundle's members and their roles", responses: { 200: listOf(member) },
      async handler({ koa, params }) {
        const bundle = params.name;
        await deps.requireBundle(bundle);
        koa.body = await auth.listMembers(bundle);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/bundles/:name/members', action: 'member:write', params: bundlePath, resource: bundleInPath, summary: "Add a member or change a member's role", body: putMemberRequest, responses: { 200: member, 201: member },
      async handler({ koa, params, body, principal }) {
        const bundle = params.name;
        await deps.requireBundle(bundle);
        const result = await auth.putMember(principal!, bundle, body.user, body.role);
        koa.status = result.created ? 201 : 200;
        koa.body = result.member;
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/bundles/:name/members/:user', action: 'member:write', params: memberPath, resource: bundleInPath, summary: 'Remove a member', responses: { 204: 'empty' },
      async handler({ koa, params, principal }) {
        const bundle = params.name;
        await deps.requireBundle(bundle);
        await auth.removeMember(principal!, bundle, params.user);
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
      method: 'GET', path: '/api/v1/tokens', action: 'token:read', summary: "List one's tokens with their last use (admins: ?user=NAME)", query: tokenListQuery, responses: { 200: listOf(accessToken) },
      async handler({ koa, query, principal }) {
        koa.body = await auth.listTokens(principal!, query.user);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/tokens/:id', action: 'token:write', summary: 'Revoke a token (its owner or an admin)', params: tokenPath, responses: { 200: accessToken },
      async handler({ koa, params, principal }) {
        koa.body = await auth.revokeToken(principal!, params.id);
      },
    }),
  ];
}
