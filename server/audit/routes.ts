import { auditEvent, auditQuery } from '../../protocol/access.ts';
import { listOf } from '../../protocol/api.ts';
import { pageOf, sendPage } from '../http/pagination.ts';
import { route, type Route } from '../http/routes.ts';
import type { AuditLog } from './log.ts';

export function auditRoutes(audit: AuditLog): Route[] {
  return [
    route({
      method: 'GET', path: '/api/v1/audit', action: 'audit:read', summary: 'List audit events, newest first (?actor=&action=&bundle=&outcome=&since=&until=&page=&per_page=)', query: auditQuery, responses: { 200: listOf(auditEvent) },
      async handler({ koa, query }) {
        const { page: _page, per_page: _perPage, ...filter } = query;
        const page = pageOf(query);
        const { events, total } = await audit.list(filter, page.page, page.perPage);
        sendPage(koa, page, { items: events, total });
      },
    }),
  ];
}
