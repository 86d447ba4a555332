import type Koa from 'koa';
import { auditEvent, auditQuery } from '../../protocol/access.ts';
import { listOf } from '../../protocol/api.ts';
import { parseWith } from '../../protocol/parse.ts';
import { route, type Route } from '../http/routes.ts';
import type { AuditLog } from './log.ts';

/**
 * GitLab's pagination headers (X-Total, X-Total-Pages, X-Page, X-Per-Page, X-Next-Page,
 * X-Prev-Page and Link), so scripts written against GitLab page through this list unchanged.
 */
function setPageHeaders(ctx: Koa.Context, page: number, perPage: number, total: number): void {
  const pages = Math.max(1, Math.ceil(total / perPage));
  ctx.set('X-Total', String(total));
  ctx.set('X-Total-Pages', String(pages));
  ctx.set('X-Page', String(page));
  ctx.set('X-Per-Page', String(perPage));
  ctx.set('X-Next-Page', page < pages ? String(page + 1) : '');
  ctx.set('X-Prev-Page', page > 1 && page <= pages ? String(page - 1) : '');
  const link = (p: number, rel: string) => {
    const url = new URL(ctx.href);
    url.searchParams.set('page', String(p));
    url.searchParams.set('per_page', String(perPage));
    return `<${url.pathname}${url.search}>; rel="${rel}"`;
  };
  const links = [link(1, 'first'), link(pages, 'last')];
  if (page < pages) links.unshift(link(page + 1, 'next'));
  if (page > 1 && page <= pages) links.unshift(link(page - 1, 'prev'));
  ctx.set('Link', links.join(', '));
}

export function auditRoutes(audit: AuditLog): Route[] {
  return [
    route({
      method: 'GET', path: '/api/v1/audit', action: 'audit:read', summary: 'List audit events, newest first (?actor=&action=&bundle=&outcome=&since=&until=&page=&per_page=)', responses: { 200: listOf(auditEvent) },
      async handler({ koa }) {
        const query = parseWith(auditQuery, { ...koa.query }, 'query');
        const { page, per_page: perPage, ...filter } = query;
        const { events, total } = await audit.list(filter, page, perPage);
        setPageHeaders(koa, page, perPage, total);
        koa.body = events;
      },
    }),
  ];
}
