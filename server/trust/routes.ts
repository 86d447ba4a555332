import { ApiError } from '../http/errors.ts';
import { route, type Route } from '../http/routes.ts';
import type { BlobStore } from '../blobs/store.ts';
import { sendBlob } from '../blobs/routes.ts';
import type { TrustService } from './service.ts';

/**
 * The TUF repository as a stock client expects it (TUF §5): metadata at `/tuf/<name>.json`,
 * targets under `/tuf/targets/`, hash-prefixed because root sets consistent_snapshot.
 */
export function trustRoutes(deps: {
  trust: TrustService;
  blobs: BlobStore;
  resolveTarget: (path: string) => Promise<{ digest: string; size: number } | undefined>;
  anonymous: boolean;
}): Route[] {
  return [
    route({
      method: 'GET', path: '/tuf/targets/*path', action: 'tuf:read', anonymous: deps.anonymous, summary: 'Download a signed target', responses: { 200: 'binary', 206: 'binary', 304: 'empty' },
      async handler({ koa, params }) {
        const found = await deps.resolveTarget(params.path ?? '');
        if (!found) throw new ApiError('not_found', 'no such target');
        await sendBlob(koa, deps.blobs, found.digest, found.size);
      },
    }),
    route({
      method: 'GET', path: '/tuf/:file', action: 'tuf:read', anonymous: deps.anonymous, summary: 'Download TUF metadata', responses: { 200: 'binary' },
      async handler({ koa, params }) {
        const bytes = await deps.trust.readMetadata(params.file ?? '');
        if (!bytes) throw new ApiError('not_found', `no metadata named "${params.file}"`);
        koa.type = 'application/json';
        // Versioned files never change; timestamp.json and root.json do and must not be cached.
        koa.set('Cache-Control', /^\d+\./.test(params.file ?? '') ? 'private, max-age=31536000, immutable' : 'no-store');
        koa.body = bytes;
      },
    }),
  ];
}
