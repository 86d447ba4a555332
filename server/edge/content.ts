import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import type { Logger } from '../../protocol/log.ts';
import { bundleManifest } from '../../protocol/manifest.ts';
import { artifactTargetPath, bundleOfRole, bundleOfTarget, bundleRoleName } from '../../protocol/targets.ts';
import { parseManifest, parseRepository } from '../oci/media.ts';

/*
 * What an edge may serve beyond the device API (issue 12): the signed targets its verified TUF
 * metadata names, and the container images among them, named as the origin's registry names them
 * (`<bundle>/<image>`, tagged with the version). Everything here is derived from the metadata the
 * edge published (its mirror published only what tuf-js verified), verified again against the
 * root the edge trusts (tuf-js's own state, `<data dir>/trust/current/root.json`) whenever the
 * timestamp changes: signatures and thresholds of timestamp, snapshot, targets and every bundle
 * role (TUF §5.4–5.6), the versions and hashes each names. A file changed on disk since it was
 * published fails here, and its targets are not served. The bytes of every manifest read to
 * build the view are hashed against the signed digest before they are parsed.
 */

/** A signed target file: a bundle manifest or an artifact, by its TUF path. */
export interface SignedTarget {
  path: string;
  bundle: string;
  digest: string;
  size: number;
}

/** One tag of one repository: an image artifact of an approved version. */
export interface EdgeImage {
  repository: string;
  bundle: string;
  tag: string;
  digest: string;
  mediaType: string;
  size: number;
}

export interface EdgeContent {
  /** Signed targets by TUF path (`<bundle>/<version>/manifest.json`, `…/artifacts/<name>`). */
  targets: ReadonlyMap<string, SignedTarget>;
  /** Repository (`<bundle>/<image>`) → tag (version) → image. */
  tags: ReadonlyMap<string, ReadonlyMap<string, EdgeImage>>;
  /** Repository → every digest its tagged images reach (index, child manifests, config, layers) → the size the signed descriptors give. */
  reachable: ReadonlyMap<string, ReadonlyMap<string, { size: number; mediaType?: string }>>;
  /** A manifest or blob the metadata names but the edge does not hold (yet): the view is built again soon. */
  incomplete: boolean;
}

export const emptyContent: EdgeContent = { targets: new Map(), tags: new Map(), reachable: new Map(), incomplete: false };

type Json = Parameters<typeof Metadata.fromJSON>[1];
const parseJson = (bytes: Buffer): Json => JSON.parse(bytes.toString('utf8')) as Json;
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * Verifies the published chain against the trusted root and returns every signed target of the
 * bundles whose role the edge holds. Throws when the top of the chain does not verify (nothing
 * may be served); a bundle role that does not verify is left out and reported. Files are read
 * through `file` as the chain names them (the published directory keeps every version).
 */
export async function verifiedTargets(input: {
  root: Buffer;
  /** A published metadata file by name (undefined: the edge does not hold it). */
  file(name: string): Promise<Buffer | undefined>;
}): Promise<{ targets: Map<string, SignedTarget>; refused: string[] }> {
  const root = Metadata.fromJSON(MetadataKind.Root, parseJson(input.root)) as Metadata<Root>;
  const need = async (name: string) => {
    const bytes = await input.file(name);
    if (!bytes) throw new Error(`${name} is not published`);
    return bytes;
  };
  // §5.4: the timestamp, signed by the root's timestamp keys.
  const timestamp = Metadata.fromJSON(MetadataKind.Timestamp, parseJson(await need('timestamp.json'))) as Metadata<Timestamp>;
  root.verifyDelegate('timestamp', timestamp);
  // §5.5: the snapshot the timestamp names (version, and hashes when present).
  const snapshotName = `${timestamp.signed.snapshotMeta.version}.snapshot.json`;
  const snapshotBytes = await need(snapshotName);
  timestamp.signed.snapshotMeta.verify(snapshotBytes);
  const snapshot = Metadata.fromJSON(MetadataKind.Snapshot, parseJson(snapshotBytes)) as Metadata<Snapshot>;
  root.verifyDelegate('snapshot', snapshot);
  if (snapshot.signed.version !== timestamp.signed.snapshotMeta.version) throw new Error(`${snapshotName} is version ${snapshot.signed.version}`);
  // §5.6: top-level targets, the version the snapshot names.
  const targetsMeta = snapshot.signed.meta['targets.json'];
  if (!targetsMeta) throw new Error('the snapshot names no targets.json');
  const targetsBytes = await need(`${targetsMeta.version}.targets.json`);
  targetsMeta.verify(targetsBytes);
  const top = Metadata.fromJSON(MetadataKind.Targets, parseJson(targetsBytes)) as Metadata<Targets>;
  root.verifyDelegate('targets', top);
  if (top.signed.version !== targetsMeta.version) throw new Error(`targets.json is version ${top.signed.version}, not ${targetsMeta.version}`);

  const targets = new Map<string, SignedTarget>();
  const refused: string[] = [];
  // §5.6.7: each bundle's delegated role, signed by the keys top-level targets delegates to it,
  // trusted only for its own bundle's paths (the delegation is terminating, protocol/targets.ts).
  for (const [name, meta] of Object.entries(snapshot.signed.meta)) {
    const role = name.replace(/\.json$/, '');
    const bundle = bundleOfRole(role);
    if (!bundle || role !== bundleRoleName(bundle)) continue;
    const bytes = await input.file(`${meta.version}.${name}`);
    if (!bytes) continue; // a bundle no policy mirrors to this edge
    try {
      meta.verify(bytes);
      const delegated = Metadata.fromJSON(MetadataKind.Targets, parseJson(bytes)) as Metadata<Targets>;
      top.verifyDelegate(role, delegated);
      if (delegated.signed.version !== meta.version) throw new Error(`version ${delegated.signed.version}, not ${meta.version}`);
      for (const [targetPath, info] of Object.entries(delegated.signed.targets)) {
        const hex = info.hashes.sha256;
        if (bundleOfTarget(targetPath) !== bundle || !hex || !/^[0-9a-f]{64}$/.test(hex)) continue;
        targets.set(targetPath, { path: targetPath, bundle, digest: `sha256:${hex}`, size: info.length });
      }
    } catch (error) {
      refused.push(`${meta.version}.${name}: ${(error as Error).message}`);
    }
  }
  return { targets, refused };
}

/**
 * The images among the signed targets: each approved version's bundle manifest (a signed target)
 * lists its artifacts; an `image` artifact is a manifest (or index) whose digest its own signed
 * target gives, reaching child manifests, configs and layers by digest. `read` gives a blob's
 * bytes only when they hash to the digest asked for (undefined otherwise, or when absent).
 */
export async function imagesOf(targets: ReadonlyMap<string, SignedTarget>, read: (digest: string) => Promise<Buffer | undefined>): Promise<Pick<EdgeContent, 'tags' | 'reachable' | 'incomplete'>> {
  const tags = new Map<string, Map<string, EdgeImage>>();
  const reachable = new Map<string, Map<string, { size: number; mediaType?: string }>>();
  let incomplete = false;
  for (const target of targets.values()) {
    const match = /^([^/]+)\/([^/]+)\/manifest\.json$/.exec(target.path);
    if (!match) continue;
    const [, bundle, version] = match as unknown as [string, string, string];
    const bytes = await read(target.digest);
    if (!bytes) {
      incomplete = true;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      continue; // signed bytes that are not a manifest: nothing to serve from them
    }
    const parsed = bundleManifest.safeParse(value);
    if (!parsed.success || parsed.data.bundle !== bundle || parsed.data.version !== version) continue;
    for (const artifact of parsed.data.artifacts) {
      if (artifact.type !== 'image') continue;
      // The artifact is a signed target of its own: the manifest's digest is the one signed.
      if (targets.get(artifactTargetPath(bundle, version, artifact.name))?.digest !== artifact.digest) continue;
      let repository: string;
      try {
        repository = parseRepository(`${bundle}/${artifact.name}`).name;
      } catch {
        continue; // an artifact name the registry cannot spell: the origin does not serve it on /v2 either
      }
      const reached = new Map<string, { size: number; mediaType?: string }>();
      const missing = { child: false };
      const top = await walkImage(artifact.digest, artifact.size, read, reached, missing);
      if (missing.child) incomplete = true;
      if (!top) {
        incomplete = true;
        continue;
      }
      if (!tags.has(repository)) tags.set(repository, new Map());
      tags.get(repository)!.set(version, { repository, bundle, tag: version, digest: artifact.digest, mediaType: top.mediaType, size: artifact.size });
      if (!reachable.has(repository)) reachable.set(repository, new Map());
      for (const [digest, info] of reached) reachable.get(repository)!.set(digest, info);
    }
  }
  return { tags, reachable, incomplete };
}

/** Reads one manifest (verified by its digest) and what it names, recursively for an index. */
async function walkImage(digest: string, size: number, read: (digest: string) => Promise<Buffer | undefined>, reached: Map<string, { size: number; mediaType?: string }>, missing: { child: boolean }, depth = 0): Promise<{ mediaType: string } | undefined> {
  const bytes = await read(digest);
  if (!bytes || bytes.length !== size || depth > 2) return undefined;
  let parsed;
  try {
    parsed = parseManifest(bytes, undefined);
  } catch {
    return undefined;
  }
  reached.set(digest, { size, mediaType: parsed.mediaType });
  for (const blob of parsed.blobs) reached.set(blob.digest, { size: blob.size });
  for (const child of parsed.manifests) {
    // A child the edge does not hold (a platform the policy did not send) stays unknown here.
    if (!(await walkImage(child.digest, child.size, read, reached, missing, depth + 1))) missing.child = true;
  }
  return { mediaType: parsed.mediaType };
}

/**
 * The signed target a URL under /tuf/targets/ names. With consistent snapshots (TUF §5.7.3) the
 * file name carries the target's hash as a prefix (`<bundle>/<version>/<sha256>.manifest.json`);
 * a prefixed name must match the signed hash, else it does not exist (as on the origin).
 */
export function targetOfUrl(targets: ReadonlyMap<string, SignedTarget>, urlPath: string): SignedTarget | undefined {
  const segments = urlPath.split('/');
  const basename = segments.pop() ?? '';
  const prefixed = /^([0-9a-f]{64})\.(.+)$/.exec(basename);
  const found = targets.get([...segments, prefixed ? prefixed[2] : basename].join('/'));
  if (!found || (prefixed && found.digest !== `sha256:${prefixed[1]}`)) return undefined;
  return found;
}

export interface EdgeContentView {
  /** The current view (built again when the published timestamp changed, or soon after an incomplete build). */
  current(): Promise<EdgeContent>;
}

export function createEdgeContent(deps: {
  dataDir: string;
  /** A published metadata file (what devices read under /tuf/). */
  readMetadata(name: string): Promise<Buffer | undefined>;
  /** A stored blob's bytes, only once checked against its digest (integrity.ts; undefined: absent or damaged). */
  readBlob(digest: string): Promise<Buffer | undefined>;
  now?: () => number;
  /** An incomplete view is built again after this long (ms). */
  retryMs?: number;
  log: Logger;
}): EdgeContentView {
  const now = deps.now ?? Date.now;
  const retryMs = deps.retryMs ?? 2000;
  let cached: { key: string; at: number; content: EdgeContent } | undefined;
  let building: Promise<EdgeContent> | undefined;
  async function build(): Promise<EdgeContent> {
    const root = await fs.readFile(path.join(deps.dataDir, 'trust', 'current', 'root.json')).catch(() => undefined);
    if (!root) return emptyContent;
    let targets: Map<string, SignedTarget>;
    try {
      const verified = await verifiedTargets({ root, file: (name) => deps.readMetadata(name) });
      targets = verified.targets;
      for (const refusal of verified.refused) deps.log.error('published metadata does not verify: its targets are not served', { refusal });
    } catch (error) {
      deps.log.error('published metadata does not verify against the trusted root: nothing is served by path or on /v2', { error: (error as Error).message });
      return { ...emptyContent, incomplete: false };
    }
    const images = await imagesOf(targets, async (digest) => {
      const bytes = await deps.readBlob(digest);
      return bytes && sha256(bytes) === digest ? bytes : undefined;
    });
    return { targets, ...images };
  }
  return {
    async current() {
      const key = (await deps.readMetadata('timestamp.json'))?.toString('base64') ?? '';
      if (cached && cached.key === key && (!cached.content.incomplete || now() - cached.at < retryMs)) return cached.content;
      building ??= build()
        .then((content) => {
          cached = { key, at: now(), content };
          return content;
        })
        .finally(() => {
          building = undefined;
        });
      return building;
    },
  };
}
