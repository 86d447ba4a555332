import semver from 'semver';
import type { BundleManifest, ManifestArtifact } from '../../protocol/manifest.ts';
import type { DestinationRef, ReplicationFilter } from '../../protocol/replication.ts';

/*
 * The replication planner: pure. Given a policy's filter and destinations and one approved
 * version's signed manifest, it says which blobs, metadata files and image manifests each
 * destination must receive, in the order they must arrive, and which it already holds. No I/O:
 * the service gathers the inputs (the manifest, the image graphs, what each destination holds)
 * and the transports do the sending.
 */

export interface Described {
  digest: string;
  size: number;
}

/** What an image manifest (or index) references: child manifests in push order, and blobs. */
export interface ImageGraph {
  /** Manifests an index names (pushed by digest before the index); empty for a plain image. */
  children: readonly (Described & { mediaType: string })[];
  /** Config and layer blobs of the image and of every child. */
  blobs: readonly Described[];
  /** The root manifest's own media type (the registry needs it as Content-Type). */
  mediaType: string;
}

export interface PlanInput {
  filter: ReplicationFilter;
  destinations: readonly DestinationRef[];
  manifest: BundleManifest;
  /** The signed bundle manifest itself, a blob named in the TUF targets. */
  manifestBlob: Described;
  /** For each image artifact, by its digest (the image manifest's digest). */
  images: ReadonlyMap<string, ImageGraph>;
  /** The TUF metadata files an edge serves its devices (names as under /tuf/). */
  metadata: readonly { name: string; size: number }[];
  /** Whether a destination already holds a blob (for registries: in that repository). */
  holds(destination: DestinationRef, digest: string, repository?: string): boolean;
  /** Repository prefix at each registry destination, by name (none: `<bundle>/<image>`). */
  namespaces?: ReadonlyMap<string, string | null>;
}

export interface PlannedTask {
  destination: DestinationRef;
  kind: 'blob' | 'metadata' | 'manifest' | 'delete';
  /** blob: the digest (edges) or `<repository>@<digest>` (registries); metadata: the file name; manifest: `<repository>:<tag>` or `<repository>@<digest>`. */
  ref: string;
  size: number;
  /** `skipped` when the destination already holds it: recorded, never sent. */
  status: 'pending' | 'skipped';
  /**
   * Manifest tasks: the digest of the manifest sent and its media type. Delete tasks: the
   * digest the tag names, and `mediaType: 'shared'` when another approved version still tags
   * it (a registry that deletes only by digest must then leave it).
   */
  digest?: string;
  mediaType?: string;
}

/**
 * semver §11: a range matches pre-releases only when it names one of the same major.minor.patch
 * (`>=2.0.0` does not match 2.1.0-rc.1); no range matches every version.
 */
export function matchesVersions(filter: ReplicationFilter, version: string): boolean {
  return filter.versions === undefined || semver.satisfies(version, filter.versions);
}

export function selectArtifacts(filter: ReplicationFilter, manifest: BundleManifest): ManifestArtifact[] {
  return manifest.artifacts.filter((a) => (filter.types === undefined || filter.types.includes(a.type)) && (filter.names === undefined || filter.names.includes(a.name)));
}

/** The repository an image goes to at a registry: `[namespace/]<bundle>/<image>`, lowercase as OCI requires. */
export function registryRepository(namespace: string | null | undefined, bundle: string, image: string): string {
  return `${namespace ? `${namespace}/` : ''}${bundle}/${image.toLowerCase()}`;
}

export function planVersion(input: PlanInput): PlannedTask[] {
  if (!matchesVersions(input.filter, input.manifest.version)) return [];
  const artifacts = selectArtifacts(input.filter, input.manifest);
  const tasks: PlannedTask[] = [];
  for (const destination of input.destinations) {
    if (destination.type === 'edge') tasks.push(...planEdge(input, destination, artifacts));
    else tasks.push(...planRegistry(input, destination, artifacts));
  }
  return tasks;
}

/**
 * An edge mirrors what its devices fetch: every selected artifact's bytes (and an image's
 * blobs), the signed bundle manifest, and the TUF metadata, sent last so an edge never serves
 * metadata naming bytes it does not have yet. A blob two artifacts share is sent once.
 */
function planEdge(input: PlanInput, destination: DestinationRef, artifacts: readonly ManifestArtifact[]): PlannedTask[] {
  const blobs = new Map<string, number>();
  for (const artifact of artifacts) {
    const graph = artifact.type === 'image' ? input.images.get(artifact.digest) : undefined;
    for (const blob of graph?.blobs ?? []) blobs.set(blob.digest, blob.size);
    for (const child of graph?.children ?? []) blobs.set(child.digest, child.size);
    blobs.set(artifact.digest, artifact.size);
  }
  blobs.set(input.manifestBlob.digest, input.manifestBlob.size);
  const tasks: PlannedTask[] = [...blobs].map(([digest, size]) => ({ destination, kind: 'blob', ref: digest, size, status: input.holds(destination, digest) ? 'skipped' : 'pending' }));
  for (const file of input.metadata) tasks.push({ destination, kind: 'metadata', ref: file.name, size: file.size, status: 'pending' });
  return tasks;
}

/**
 * A registry receives the selected images only (it stores nothing else), in the order the
 * distribution spec requires: blobs, then child manifests by digest, then the image tagged with
 * the version. Tags are always sent: they are small and a tag may have moved at the destination.
 */
function planRegistry(input: PlanInput, destination: DestinationRef, artifacts: readonly ManifestArtifact[]): PlannedTask[] {
  const tasks: PlannedTask[] = [];
  const namespace = input.namespaces?.get(destination.name) ?? null;
  for (const artifact of artifacts) {
    if (artifact.type !== 'image') continue;
    const graph = input.images.get(artifact.digest);
    if (!graph) continue;
    const repository = registryRepository(namespace, input.manifest.bundle, artifact.name);
    const seen = new Set<string>();
    for (const blob of graph.blobs) {
      if (seen.has(blob.digest)) continue;
      seen.add(blob.digest);
      tasks.push({ destination, kind: 'blob', ref: `${repository}@${blob.digest}`, size: blob.size, status: input.holds(destination, blob.digest, repository) ? 'skipped' : 'pending' });
    }
    for (const child of graph.children) {
      tasks.push({ destination, kind: 'manifest', ref: `${repository}@${child.digest}`, size: child.size, status: 'pending', digest: child.digest, mediaType: child.mediaType });
    }
    tasks.push({ destination, kind: 'manifest', ref: `${repository}:${input.manifest.version}`, size: artifact.size, status: 'pending', digest: artifact.digest, mediaType: graph.mediaType });
  }
  return tasks;
}

/**
 * Withdrawing a revoked version (policies that propagate revocations): at each registry, the
 * tag of every image the policy sent. `inUse` names `<repository>@<digest>` pairs another
 * approved version still tags, so a registry that deletes only by digest is not asked to
 * remove an image that is still released under another tag.
 */
export function planWithdrawal(input: {
  filter: ReplicationFilter;
  destinations: readonly DestinationRef[];
  manifest: BundleManifest;
  namespaces?: ReadonlyMap<string, string | null>;
  inUse: ReadonlySet<string>;
  /** Edges: the revoked version's signed manifest (they forget it) and the metadata to refresh, timestamp last. */
  manifestDigest?: string;
  metadata?: readonly { name: string; size: number }[];
}): PlannedTask[] {
  if (!matchesVersions(input.filter, input.manifest.version)) return [];
  const tasks: PlannedTask[] = [];
  for (const destination of input.destinations) {
    if (destination.type === 'edge') {
      // An edge keeps the blobs (content-addressed, perhaps shared with other versions) but drops
      // the version's manifest and takes the re-signed metadata, which no longer names it.
      if (input.manifestDigest) tasks.push({ destination, kind: 'delete', ref: input.manifestDigest, size: 0, status: 'pending', digest: input.manifestDigest });
      for (const file of input.metadata ?? []) tasks.push({ destination, kind: 'metadata', ref: file.name, size: file.size, status: 'pending' });
      continue;
    }
    const namespace = input.namespaces?.get(destination.name) ?? null;
    for (const artifact of selectArtifacts(input.filter, input.manifest)) {
      if (artifact.type !== 'image') continue;
      const repository = registryRepository(namespace, input.manifest.bundle, artifact.name);
      const shared = input.inUse.has(`${repository}@${artifact.digest}`);
      tasks.push({ destination, kind: 'delete', ref: `${repository}:${input.manifest.version}`, size: 0, status: 'pending', digest: artifact.digest, ...(shared ? { mediaType: 'shared' } : {}) });
    }
  }
  return tasks;
}
