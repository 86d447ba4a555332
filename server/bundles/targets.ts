import { artifactTargetPath, manifestTargetPath } from '../../protocol/targets.ts';
import { hexOf } from '../../protocol/names.ts';
import type { TargetEntry } from '../../tuf/repository.ts';
import type { BundleStore } from './store.ts';

/** What the signed targets metadata must name: every approved manifest and artifact. */
export async function listApprovedTargets(store: BundleStore): Promise<TargetEntry[]> {
  const entries: TargetEntry[] = [];
  for (const { version, manifestSize, artifacts } of await store.listApprovedWithArtifacts()) {
    entries.push({ path: manifestTargetPath(version.bundle, version.version), length: manifestSize, sha256: hexOf(version.manifestDigest!) });
    for (const artifact of artifacts) {
      entries.push({ path: artifactTargetPath(version.bundle, version.version, artifact.name), length: artifact.size, sha256: hexOf(artifact.digest) });
    }
  }
  return entries;
}

/**
 * Maps a URL under /tuf/targets/ to the blob it names. With consistent snapshots (TUF §5.7.3) the
 * file name carries the target's hash as a prefix (`<bundle>/<version>/<sha256>.manifest.json`);
 * a prefixed name must match the signed hash, else it does not exist.
 */
export async function resolveTargetUrl(store: BundleStore, urlPath: string): Promise<{ bundle: string; digest: string; size: number } | undefined> {
  const segments = urlPath.split('/');
  const basename = segments.pop() ?? '';
  const prefixed = /^([0-9a-f]{64})\.(.+)$/.exec(basename);
  const targetPath = [...segments, prefixed ? prefixed[2] : basename].join('/');
  const parsed = /^([^/]+)\/([^/]+)\/(?:manifest\.json|artifacts\/([^/]+))$/.exec(targetPath);
  if (!parsed) return undefined;
  const [, bundle, version, artifactName] = parsed;
  const row = await store.findVersionRow(bundle!, version!);
  if (!row || row.status !== 'approved') return undefined;
  let found: { digest: string; size: number } | undefined;
  if (artifactName === undefined) {
    found = { digest: row.manifest_digest!, size: Number(row.manifest_size) };
  } else {
    found = await store.findArtifact(row.id, artifactName);
  }
  if (!found || (prefixed && hexOf(found.digest) !== prefixed[1])) return undefined;
  return { bundle: bundle!, digest: found.digest, size: found.size };
}
