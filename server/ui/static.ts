import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import type { Logger } from '../../protocol/log.ts';

/**
 * Serves the web UI (built by `npm run build:ui` into dist/ui) at `/`: hashed assets are cached
 * for good, index.html never (so a new release is picked up on the next load), and any other GET
 * of a page (Accept: text/html) outside the API gets index.html, so deep links survive a reload.
 * The API, the OCI registry and the TUF repository are never shadowed: their paths pass through.
 */

/** Paths the UI never answers: they belong to the API, the registry and the TUF repository. */
const notUi = /^\/(api|v2|tuf)(\/|$)/;

/**
 * The UI loads nothing from elsewhere: scripts and styles come from this origin only (no inline
 * code), it is never framed, and it talks only to this server.
 */
export const uiContentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/**
 * Where the built UI is: dist/ui at the package root, whether this module runs from its
 * TypeScript source (server/ui/) or bundled into dist/ (dist/convoy.js, dist/chunks/).
 */
export function defaultUiDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 4; level++) {
    const candidates = [path.join(dir, 'dist', 'ui'), ...(path.basename(dir) === 'dist' ? [path.join(dir, 'ui')] : [])];
    const found = candidates.find((candidate) => existsSync(path.join(candidate, 'index.html')));
    if (found) return found;
    dir = path.dirname(dir);
  }
  // Not built: the middleware answers as if there were no UI, and says so once in the log.
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/ui');
}

export function uiMiddleware(options: { dir: string; log: Logger }): Koa.Middleware {
  const root = path.resolve(options.dir);
  let warned = false;
  return async (ctx, next) => {
    if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || notUi.test(ctx.path)) return next();
    const file = await assetFile(root, ctx.path);
    if (file) return send(ctx, file, /^\/assets\//.test(ctx.path) ? 'public, max-age=31536000, immutable' : 'no-cache');
    const wantsPage = ctx.path === '/' || ctx.path === '/index.html' || (ctx.get('accept').includes('text/html') && !ctx.path.startsWith('/assets/'));
    if (!wantsPage) return next();
    const index = path.join(root, 'index.html');
    if (!(await isFile(index))) {
      if (!warned) options.log.warn('the web UI is not built (run `npm run build:ui`)', { dir: root });
      warned = true;
      return next();
    }
    return send(ctx, index, 'no-cache');
  };
}

/** The file under root a URL path names, or undefined (never anything outside root). */
async function assetFile(root: string, urlPath: string): Promise<string | undefined> {
  if (urlPath === '/' || urlPath.endsWith('/')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const file = path.resolve(root, '.' + path.posix.normalize(decoded));
  if (!file.startsWith(root + path.sep)) return undefined;
  return (await isFile(file)) ? file : undefined;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

async function send(ctx: Koa.Context, file: string, cacheControl: string): Promise<void> {
  const stat = await fs.stat(file);
  ctx.status = 200;
  ctx.type = types[path.extname(file)] ?? 'application/octet-stream';
  ctx.length = stat.size;
  ctx.set('Cache-Control', cacheControl);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  if (file.endsWith('.html')) {
    ctx.set('Content-Security-Policy', uiContentSecurityPolicy);
    ctx.set('X-Frame-Options', 'DENY');
  }
  // HEAD: Koa sends the headers only; the (small) file is read so that no stream is left open.
  ctx.body = ctx.method === 'HEAD' ? await fs.readFile(file) : createReadStream(file);
}
