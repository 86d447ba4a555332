import * as z from 'zod';
import { digestPattern } from './names.ts';

/*
 * OCI manifests as the image spec (v1.1) defines them, shared by the registry (server/oci/), which
 * checks what is pushed, and the daemon (device/image.ts), which walks what a signed manifest
 * names. One copy, so the two sides cannot disagree on what an image is. Pure: no I/O.
 */

export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** Media types of a manifest naming a config and layers (OCI, and Docker schema 2). */
export const imageManifestTypes: ReadonlySet<string> = new Set([mediaTypes.ociManifest, mediaTypes.dockerManifest]);
/** Media types of an index naming other manifests (OCI index, Docker manifest list). */
export const indexTypes: ReadonlySet<string> = new Set([mediaTypes.ociIndex, mediaTypes.dockerList]);
export const manifestMediaTypes: readonly string[] = [...imageManifestTypes, ...indexTypes];

/** The largest manifest accepted or parsed (distribution's default too): manifests are held in memory. */
export const maxManifestBytes = 4 * 1024 * 1024;

/**
 * A content descriptor (image spec, "Descriptors"). The digest is any string here: each side says
 * in its own words that Convoy only takes sha256 (protocol/names.ts `digestPattern`).
 */
export const descriptor = z.looseObject({
  mediaType: z.string().min(1).max(255),
  digest: z.string(),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  artifactType: z.string().max(255).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  urls: z.array(z.string()).optional(),
});
export type Descriptor = z.infer<typeof descriptor>;

/** Image manifest (image spec, "Image Manifest"): one config and its layers. */
export const imageManifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().max(255).optional(),
  config: descriptor,
  layers: z.array(descriptor).max(10_000),
  subject: descriptor.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof imageManifest>;

/** Image index (image spec, "Image Index"): manifests, e.g. one per platform. */
export const imageIndex = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().max(255).optional(),
  manifests: z.array(descriptor).max(10_000),
  subject: descriptor.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof imageIndex>;

/** An index of indexes is legal but rare; every walker stops at this depth so a hostile graph cannot recurse forever. */
export const maxIndexDepth = 3;

/** What a blob is, read as a manifest: an image or index and the blobs it names, or not one at all. */
export type ManifestReading =
  | { kind: 'image' | 'index'; mediaType: string; children: { mediaType: string; digest: string; size: number }[] }
  /** Not an image manifest or index (any other JSON, or not JSON): a plain file to whoever holds it. */
  | { kind: 'other' }
  /** Shaped like a manifest, but a descriptor has no sha256 digest or no size: never walk it. */
  | { kind: 'invalid'; reason: string };

/**
 * Reads bytes as an image manifest or index: the registry's checks, the daemon's install walk,
 * `convoy artifact pull` and `convoy bundle verify` all use this one reading. The media type is
 * optional in OCI manifests; without it the shape decides (image spec, "Image Manifest").
 */
export function readManifest(bytes: Uint8Array): ManifestReading {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'other' };
    json = parsed as Record<string, unknown>;
  } catch {
    return { kind: 'other' };
  }
  if (json.schemaVersion !== 2) return { kind: 'other' };
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const kind = declared
    ? imageManifestTypes.has(declared) ? 'image' : indexTypes.has(declared) ? 'index' : undefined
    : 'config' in json ? 'image' : 'manifests' in json ? 'index' : undefined;
  if (!kind) return { kind: 'other' };
  const list: unknown[] = kind === 'image' ? [json.config, ...(Array.isArray(json.layers) ? json.layers : [undefined])] : Array.isArray(json.manifests) ? json.manifests : [undefined];
  const children: { mediaType: string; digest: string; size: number }[] = [];
  for (const item of list) {
    const result = descriptor.safeParse(item);
    // Only sha256, which every blob store here keys by.
    if (!result.success || !digestPattern.test(result.data.digest)) return { kind: 'invalid', reason: 'a descriptor has no sha256 digest and size' };
    children.push({ mediaType: result.data.mediaType, digest: result.data.digest, size: result.data.size });
  }
  return { kind, mediaType: declared ?? (kind === 'image' ? mediaTypes.ociManifest : mediaTypes.ociIndex), children };
}
