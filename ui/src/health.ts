import type { Edge } from '../../protocol/replication.ts';

/* An edge's health as the API can tell it today: when it last called the origin. Pure, tested without a browser. */

/** An edge that has not called the origin for this long is shown as quiet: edge mode (l-edge) may tune it once its polling interval is settled. */
const quietAfterMs = 15 * 60_000;

/** How an edge looks from its last call to the origin: the health the API can tell today. */
export function edgeHealth(e: Edge, now = Date.now()): { label: string; tone: string } {
  if (!e.lastSeenAt) return { label: 'never connected', tone: 'warning' };
  const age = now - new Date(e.lastSeenAt).getTime();
  return age <= quietAfterMs ? { label: 'healthy', tone: 'success' } : { label: 'quiet', tone: 'danger' };
}
