import { createHash } from 'node:crypto';
import { manifestArtifacts, type ManifestArtifactInput } from '../../protocol/manifest.ts';

/**
 * What an approval vouches for: a fingerprint of exactly what the manifest will sign about the
 * artifacts (names, types, digests, sizes and package metadata), made from the same
 * `manifestArtifacts` the manifest builder uses. Anything the manifest signs that changes
 * changes the fingerprint, so an edit of package metadata voids earlier approvals too.
 * (`approvedAt` is left out: it is the moment of freezing, not content anyone approved.)
 */
export function contentFingerprint(artifacts: readonly ManifestArtifactInput[]): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(manifestArtifacts(artifacts))).digest('hex')}`;
}
