import type Koa from 'koa';
import { maxPerPage, defaultPerPage } from '../../protocol/api.ts';

/*
 * GitLab-style offset pagination, so scripts written against GitLab's API work unchanged:
 * `page` (from 1) and `per_page` (default 20, at most 100: larger values are capped, as GitLab
 * does), answered with X-Total, X-Total-Pages, X-Page, X-Per-Page, X-Next-Page, X-Prev-Page and
 * an RFC 8288 Link header (first, prev, next, last).
 */
export { defaultPerPage, maxPerPage, pageQueryFields } from '../../protocol/api.ts';

export interface PageRequest {
  page: number;
  perPage: number;
  offset: number;
}

export function pageOf(query: { page?: number | undefined; per_page?: number | undefined }): PageRequest {
  const page = query.page ?? 1;
  const perPage = query.per_page ?? defaultPerPage;
  return { page, perPage, offset: (page - 1) * perPage };
}

/**
 * The headers of one page, computed from the total; pure so it can be tested by table. The Link
 * targets are relative references (RFC 3986 §4.2, which RFC 8288 allows): the request's path and
 * query, never a host, so a forged Host header cannot send a client's next request elsewhere.
 */
export function pageHeaders(page: PageRequest, total: number, requestTarget: string): Record<string, string> {
  const totalPages = Math.max(1, Math.ceil(total / page.perPage));
  // A fixed base only to parse the path and query; it never appears in a link.
  const base = new URL(requestTarget, 'http://convoy.invalid');
  const linkTo = (n: number) => {
    const target = new URL(base);
    target.searchParams.set('page', String(n));
    target.searchParams.set('per_page', String(page.perPage));
    return `${target.pathname}${target.search}`;
  };
  const links = [`<${linkTo(1)}>; rel="first"`];
  const headers: Record<string, string> = {
    'X-Total': String(total),
    'X-Total-Pages': String(totalPages),
    'X-Page': String(page.page),
    'X-Per-Page': String(page.perPage),
    'X-Next-Page': page.page < totalPages ? String(page.page + 1) : '',
    'X-Prev-Page': page.page > 1 ? String(Math.min(page.page - 1, totalPages)) : '',
  };
  if (headers['X-Prev-Page']) links.push(`<${linkTo(Number(headers['X-Prev-Page']))}>; rel="prev"`);
  if (headers['X-Next-Page']) links.push(`<${linkTo(page.page + 1)}>; rel="next"`);
  links.push(`<${linkTo(totalPages)}>; rel="last"`);
  headers.Link = links.join(', ');
  return headers;
}

/** Answers one page of a listing: the items as the body, the rest in headers. */
export function sendPage<T>(ctx: Koa.Context, page: PageRequest, result: { items: T[]; total: number }): void {
  for (const [name, value] of Object.entries(pageHeaders(page, result.total, ctx.originalUrl))) ctx.set(name, value);
  ctx.body = result.items;
}
