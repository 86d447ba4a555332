import type { BundleManifest } from '../protocol/manifest.ts';
import { maxManifestBytes } from '../protocol/manifest.ts';
import { hexOf } from '../protocol/names.ts';
import { artifactTargetPath, manifestTargetPath } from '../protocol/targets.ts';
import { UpdateError } from './errors.ts';
import type { PlannedArtifact } from './state.ts';

/*
 * The daemon's planning, pure (RAUC's "plan first, then apply"): which signed bytes to fetch for a
 * release, whether the signed manifest and the signed targets agree, and how much space the
 * update needs. The shell (updater.ts) gathers the inputs (TUF target info, the manifest bytes,
 * what lies in the download cache, free space) and acts on the answer; nothing here does I/O.
 */

/** A target's signed info as tuf-js gives it (TUF §4.5 "targets": length and hashes). */
export interface SignedTarget {
  length: number;
  hashes: Record<string, string>;
}

/** Length and SHA-256 of a target, the only numbers the device trusts. */
export interface TrustedBlob {
  length: number;
  sha256: string;
}

export interface Release {
  bundle: string;
  version: string;
}

/** The signed info of one target, refused when it is missing or carries no SHA-256. */
export function requireSignedTarget(targetPath: string, info: SignedTarget | undefined): TrustedBlob {
  if (!info) throw new UpdateError('target_missing', `"${targetPath}" is not in the signed targets metadata`, false);
  const sha256 = info.hashes.sha256;
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw new UpdateError('untrusted_metadata', `"${targetPath}" has no SHA-256 in the signed targets`, false);
  }
  return { length: info.length, sha256 };
}

/** The manifest to download for a release: its signed target, bounded so it fits in memory. */
export function planManifest(release: Release, info: SignedTarget | undefined): TrustedBlob {
  const manifest = requireSignedTarget(manifestTargetPath(release.bundle, release.version), info);
  if (manifest.length > maxManifestBytes) throw new UpdateError('untrusted_metadata', `the signed manifest is ${manifest.length} bytes, over the ${maxManifestBytes} limit`, false);
  return manifest;
}

/** The target paths whose signed info planArtifacts needs, for the shell to look up. */
export function artifactTargetPaths(release: Release, manifest: BundleManifest): string[] {
  return manifest.artifacts.map((artifact) => artifactTargetPath(release.bundle, release.version, artifact.name));
}

/**
 * The artifacts of a verified manifest, each checked against its own signed target. The manifest
 * and the targets metadata are both signed; a disagreement means one of them was not produced by
 * the same approval, so neither is trusted.
 */
export function planArtifacts(release: Release, manifest: BundleManifest, targets: ReadonlyMap<string, SignedTarget | undefined>): PlannedArtifact[] {
  if (manifest.bundle !== release.bundle || manifest.version !== release.version) {
    throw new UpdateError('untrusted_metadata', `the manifest is for ${manifest.bundle}@${manifest.version}, not ${release.bundle}@${release.version}`, false);
  }
  return manifest.artifacts.map((artifact) => {
    const targetPath = artifactTargetPath(release.bundle, release.version, artifact.name);
    const info = requireSignedTarget(targetPath, targets.get(targetPath));
    if (info.length !== artifact.size || info.sha256 !== hexOf(artifact.digest)) {
      throw new UpdateError('untrusted_metadata', `artifact "${artifact.name}" differs between the manifest and the signed targets`, false);
    }
    return { name: artifact.name, type: artifact.type, length: info.length, sha256: info.sha256 };
  });
}

/** Each blob once: two artifacts with the same bytes are downloaded and verified once. */
export function uniqueBlobs(artifacts: readonly PlannedArtifact[]): PlannedArtifact[] {
  const seen = new Set<string>();
  return artifacts.filter((a) => (seen.has(a.sha256) ? false : (seen.add(a.sha256), true)));
}

export interface SpacePlan {
  /** Bytes still to download: each pending blob's length less what the cache already holds. */
  download: number;
  /** Bytes staging may write: every artifact once more where the file system cannot reflink. */
  staging: number;
  reserve: number;
  /** download + staging + reserve: what must be free on the data file system. */
  needed: number;
}

/**
 * The space an update needs from here on. `held` maps a blob's SHA-256 to the bytes the download
 * cache holds of it (whole or `.part`); `staged` says the slot exists already, so staging costs
 * nothing more.
 */
export function planSpace(input: { pending: readonly PlannedArtifact[]; artifacts: readonly PlannedArtifact[]; held: ReadonlyMap<string, number>; staged: boolean; reserveBytes: number }): SpacePlan {
  let download = 0;
  for (const blob of input.pending) download += Math.max(0, blob.length - (input.held.get(blob.sha256) ?? 0));
  const staging = input.staged ? 0 : input.artifacts.reduce((sum, a) => sum + a.length, 0);
  return { download, staging, reserve: input.reserveBytes, needed: download + staging + input.reserveBytes };
}
