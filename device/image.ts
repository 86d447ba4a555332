import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../protocol/log.ts';
import type { ManifestArtifact } from '../protocol/manifest.ts';
import { syncDirectory, writeFileAtomic } from '../lib/files.ts';
import { UpdateError } from './errors.ts';
import { downloadVerified } from './fetch.ts';

/**
 * OCI images on the device. A bundle names an image by its manifest digest, so the manifest is a
 * signed TUF target and was verified before it reaches this module; every blob it names (config,
 * layers; for an index, each child manifest and its blobs) is fetched by digest and verified
 * against the manifest's digest and size before use. Installed, an image is an OCI image layout
 * directory (image spec, "OCI Image Layout"): `current/<image>/oci-layout`, `index.json` (the
 * manifest, tagged with the release version) and `blobs/sha256/<hex>`, which skopeo, podman,
 * containerd or umoci read as they are (`skopeo copy oci:current/<image>:<version> …`).
 */

const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
const imageTypes: ReadonlySet<string> = new Set([mediaTypes.ociManifest, mediaTypes.dockerManifest]);
const indexTypes: ReadonlySet<string> = new Set([mediaTypes.ociIndex, mediaTypes.dockerList]);

/** Manifests are small; anything larger is installed as a plain file, never parsed. */
const maxImageManifestBytes = 4 * 1024 * 1024;
/** An index of indexes is legal but rare; the bound keeps a hostile graph from recursing forever. */
const maxDepth = 3;

export interface ImageDeps {
  dataDir: string;
  serverUrl: string;
  token: string;
  stallTimeoutMs: number;
  log: Logger;
}

export interface StagedImage {
  name: string;
  tag: string;
  manifest: { mediaType: string; digest: string; size: number };
  /** Every verified file the layout holds, by sha256 hex (the manifest included). */
  blobs: Map<string, string>;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** What a manifest names, or undefined when the bytes are not an image manifest or index. */
export function readImageManifest(bytes: Buffer): { mediaType: string; children: Descriptor[]; kind: 'image' | 'index' } | undefined {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    json = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (json.schemaVersion !== 2) return undefined;
  // mediaType is optional in OCI manifests: fall back to the shape (image spec, "Image Manifest").
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const kind = declared ? (imageTypes.has(declared) ? 'image' : indexTypes.has(declared) ? 'index' : undefined) : 'config' in json ? 'image' : 'manifests' in json ? 'index' : undefined;
  if (!kind) return undefined;
  const list = kind === 'image' ? [json.config, ...(Array.isArray(json.layers) ? json.layers : [undefined])] : Array.isArray(json.manifests) ? json.manifests : [undefined];
  const children = list.map(parseDescriptor);
  return { mediaType: declared ?? (kind === 'image' ? mediaTypes.ociManifest : mediaTypes.ociIndex), children, kind };
}

function parseDescriptor(value: unknown): Descriptor {
  const d = value as Partial<Descriptor> | null | undefined;
  if (
    !d || typeof d !== 'object' || typeof d.mediaType !== 'string' || typeof d.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d.digest) ||
    typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0
  ) {
    throw new UpdateError('untrusted_metadata', 'the signed image manifest has a descriptor without a sha256 digest and a size', false);
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * For an image artifact whose verified bytes are an image manifest or index: fetches and verifies
 * everything it names. Returns undefined for any other artifact (installed as a plain file).
 */
export async function fetchImage(deps: ImageDeps, artifact: ManifestArtifact, manifestFile: string, tag: string): Promise<StagedImage | undefined> {
  if (artifact.type !== 'image' || artifact.size > maxImageManifestBytes) return undefined;
  const top = readImageManifest(await fs.readFile(manifestFile));
  if (!top) return undefined;
  const blobs = new Map<string, string>([[hexOf(artifact.digest), manifestFile]]);
  const visit = async (manifest: NonNullable<ReturnType<typeof readImageManifest>>, depth: number): Promise<void> => {
    for (const child of manifest.children) {
      const hex = hexOf(child.digest);
      if (blobs.has(hex)) continue;
      const file = await fetchBlob(deps, child);
      blobs.set(hex, file);
      if (manifest.kind === 'index') {
        if (depth >= maxDepth) throw new UpdateError('untrusted_metadata', `image "${artifact.name}" nests indexes deeper than ${maxDepth}`, false);
        const nested = child.size <= maxImageManifestBytes ? readImageManifest(await fs.readFile(file)) : undefined;
        if (!nested) throw new UpdateError('untrusted_metadata', `image "${artifact.name}": index entry ${child.digest} is not an image manifest`, false);
        await visit(nested, depth + 1);
      }
    }
  };
  await visit(top, 1);
  deps.log.info('image verified', { name: artifact.name, digest: artifact.digest, blobs: blobs.size });
  return { name: artifact.name, tag, manifest: { mediaType: top.mediaType, digest: artifact.digest, size: artifact.size }, blobs };
}

/** Downloads one blob by digest into the shared download cache, verified by digest and size. */
async function fetchBlob(deps: ImageDeps, descriptor: Descriptor): Promise<string> {
  const sha256 = hexOf(descriptor.digest);
  const destination = path.join(deps.dataDir, 'downloads', sha256);
  await downloadVerified({
    url: `${deps.serverUrl}/api/v1/blobs/sha256:${sha256}`,
    token: deps.token,
    destination,
    length: descriptor.size,
    sha256,
    stallTimeoutMs: deps.stallTimeoutMs,
  });
  return destination;
}

/**
 * Writes each image as an OCI image layout directory in the staged slot. Blobs are hard-linked
 * from the download cache where the file system allows (no second copy of gigabytes; they are
 * immutable and were verified), copied elsewhere; every new directory entry is fsynced before
 * the slot is switched to.
 */
export async function installImages(slotDir: string, images: readonly StagedImage[]): Promise<void> {
  for (const image of images) {
    const dir = path.join(slotDir, image.name);
    try {
      const blobDir = path.join(dir, 'blobs', 'sha256');
      await fs.mkdir(blobDir, { recursive: true });
      for (const [hex, source] of image.blobs) await linkOrCopy(source, path.join(blobDir, hex));
      await writeFileAtomic(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      const index = {
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: [{ ...image.manifest, annotations: { 'org.opencontainers.image.ref.name': image.tag } }],
      };
      await writeFileAtomic(path.join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
      for (const d of [blobDir, path.dirname(blobDir), dir]) await syncDirectory(d);
    } catch (error) {
      throw new UpdateError('install_failed', `cannot stage image "${image.name}": ${(error as Error).message}`, false, { cause: error });
    }
  }
  if (images.length > 0) await syncDirectory(slotDir);
}

async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await fs.link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw error;
    await fs.copyFile(source, target, constants.COPYFILE_FICLONE);
    const handle = await fs.open(target, 'r');
    await handle.sync();
    await handle.close();
  }
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}
