import type { Artifact } from '../protocol/api.ts';

/* `convoy bundle diff`: what changed between two releases, by artifact name. Pure. */

export interface ReleaseDiff {
  added: Artifact[];
  removed: Artifact[];
  changed: { name: string; from: Artifact; to: Artifact; fields: string[] }[];
}

/** What changed from one artifact list to another, by name. Pure. */
export function diffArtifacts(from: readonly Artifact[], to: readonly Artifact[]): ReleaseDiff {
  const before = new Map(from.map((a) => [a.name, a]));
  const after = new Map(to.map((a) => [a.name, a]));
  const diff: ReleaseDiff = { added: [], removed: [], changed: [] };
  for (const [name, a] of after) if (!before.has(name)) diff.added.push(a);
  for (const [name, a] of before) if (!after.has(name)) diff.removed.push(a);
  for (const [name, a] of before) {
    const b = after.get(name);
    if (!b) continue;
    const fields = (['type', 'digest', 'size'] as const).filter((f) => a[f] !== b[f]);
    if (JSON.stringify(a.package) !== JSON.stringify(b.package)) fields.push('package' as never);
    if (fields.length > 0) diff.changed.push({ name, from: a, to: b, fields });
  }
  return diff;
}

export const short = (digest: string) => digest.slice(0, 'sha256:'.length + 12);
