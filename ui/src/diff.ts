import type { Artifact } from '../../protocol/api.ts';

/**
 * What changed from one version to another, by artifact name. Pure; the same rules as
 * `convoy bundle diff` (a changed digest, type, size or package counts as changed).
 */
export interface ArtifactDiff {
  added: Artifact[];
  removed: Artifact[];
  changed: { name: string; from: Artifact; to: Artifact; fields: string[] }[];
  unchanged: Artifact[];
}

export function diffArtifacts(from: readonly Artifact[], to: readonly Artifact[]): ArtifactDiff {
  const before = new Map(from.map((a) => [a.name, a]));
  const after = new Map(to.map((a) => [a.name, a]));
  const diff: ArtifactDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const [name, a] of after) if (!before.has(name)) diff.added.push(a);
  for (const [name, a] of before) if (!after.has(name)) diff.removed.push(a);
  for (const [name, b] of after) {
    const a = before.get(name);
    if (!a) continue;
    const fields = (['digest', 'type', 'size'] as const).filter((field) => a[field] !== b[field]);
    if (JSON.stringify(a.package) !== JSON.stringify(b.package)) fields.push('package' as never);
    if (fields.length > 0) diff.changed.push({ name, from: a, to: b, fields });
    else diff.unchanged.push(b);
  }
  const byName = (x: { name: string }, y: { name: string }) => x.name.localeCompare(y.name);
  diff.added.sort(byName);
  diff.removed.sort(byName);
  diff.changed.sort(byName);
  diff.unchanged.sort(byName);
  return diff;
}
