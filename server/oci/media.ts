import type { z } from 'zod';
import { imageIndex, imageManifest, imageManifestTypes, indexTypes, manifestMediaTypes, type Descriptor } from '../../protocol/oci.ts';
import { artifactNamePattern, bundleNamePattern, digestPattern, version } from '../../protocol/names.ts';
import { OciError } from './errors.ts';

/*
 * The pure core of the registry: names, references, media types and manifest parsing as the OCI
 * distribution spec (v1.1) and image spec (v1.1) define them. No I/O here.
 */

// The manifest schemas and media types live in protocol/oci.ts, shared with the daemon.
export { maxManifestBytes, mediaTypes, manifestMediaTypes, type Descriptor } from '../../protocol/oci.ts';

export interface Repository {
  /** `<bundle>/<image>`, as it appears in the URL. */
  name: string;
  bundle: string;
  image: string;
}

/**
 * OCI path component grammar (distribution spec, "Pulling manifests"):
 * `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. A Convoy repository is exactly `<bundle>/<image>`: the
 * bundle it lands in and the artifact name the image takes there.
 */
const componentPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

export function parseRepository(name: string): Repository {
  const parts = name.split('/');
  if (parts.length !== 2 || !parts.every((part) => componentPattern.test(part))) {
    throw new OciError('NAME_INVALID', `repository "${truncate(name)}" must be <bundle>/<image>: two lowercase components of letters and digits separated by ".", "_" or "-"`);
  }
  const [bundle, image] = parts as [string, string];
  if (!bundleNamePattern.test(bundle) || !artifactNamePattern.test(image) || image.length > 128) {
    throw new OciError('NAME_INVALID', `repository "${truncate(name)}": the bundle name is at most 64 characters and the image name at most 128`);
  }
  return { name, bundle, image };
}

/** OCI tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. */
const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export type Reference = { type: 'digest'; digest: string } | { type: 'tag'; tag: string };

export function parseReference(reference: string): Reference {
  if (reference.includes(':')) return { type: 'digest', digest: parseDigest(reference) };
  if (!tagPattern.test(reference)) throw new OciError('MANIFEST_INVALID', `"${truncate(reference)}" is neither a tag nor a digest`);
  return { type: 'tag', tag: reference };
}

/** Only sha256 is stored (the blob store is keyed by it); anything else is refused up front. */
export function parseDigest(text: string): string {
  if (!digestPattern.test(text)) {
    throw new OciError('DIGEST_INVALID', `"${truncate(text)}" is not a supported digest: Convoy stores sha256:<64 lowercase hex digits>`, { digest: truncate(text) });
  }
  return text;
}

/** A tag is how an image joins a release, so it must be the release's strict semver version. */
export function versionOfTag(tag: string): string {
  if (!version.safeParse(tag).success) {
    throw new OciError(
      'TAG_INVALID',
      `tag "${truncate(tag)}" is not a release version: tag images with the bundle version they belong to (strict semver such as 1.2.3 or 2.0.0-rc.1, e.g. $CONVOY_RELEASE_VERSION)`,
      { tag: truncate(tag) },
    );
  }
  return tag;
}

/** What the registry keeps about a manifest, besides its bytes. */
export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** Config and layers: blobs that must be in the repository. */
  blobs: Descriptor[];
  /** Index entries: manifests that must be in the repository. */
  manifests: Descriptor[];
  subject: string | undefined;
  /** For referrers: the manifest's artifactType, else its config's media type (image spec 1.1). */
  artifactType: string | undefined;
  annotations: Record<string, string> | undefined;
}

/**
 * Parses pushed manifest bytes. The media type is the `mediaType` field when present, else the
 * request's Content-Type; when both are present they must agree (distribution spec, "Pushing
 * Manifests"). Docker schema 1 and unknown types are refused: nothing downstream could use them.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciError('MANIFEST_INVALID', 'the manifest is not valid JSON');
  }
  const declared = typeof (json as { mediaType?: unknown } | null)?.mediaType === 'string' ? (json as { mediaType: string }).mediaType : undefined;
  const header = contentType?.split(';')[0]?.trim().toLowerCase() || undefined;
  if (declared && header && header !== declared && manifestMediaTypes.includes(header)) {
    throw new OciError('MANIFEST_INVALID', `the manifest's mediaType "${declared}" differs from its Content-Type "${header}"`);
  }
  const mediaType = declared ?? header;
  if (!mediaType || !manifestMediaTypes.includes(mediaType)) {
    throw new OciError('MANIFEST_INVALID', `unsupported manifest media type "${truncate(mediaType ?? '(none)')}"; Convoy accepts ${manifestMediaTypes.join(', ')}`);
  }
  const schema = imageManifestTypes.has(mediaType) ? imageManifest : imageIndex;
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new OciError('MANIFEST_INVALID', `invalid ${mediaType}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const value = result.data as z.infer<typeof imageManifest> & z.infer<typeof imageIndex>;
  const blobs = imageManifestTypes.has(mediaType) ? [value.config, ...value.layers] : [];
  const manifests = indexTypes.has(mediaType) ? value.manifests : [];
  for (const entry of [...blobs, ...manifests, ...(value.subject ? [value.subject] : [])]) {
    if (!digestPattern.test(entry.digest)) {
      throw new OciError('MANIFEST_INVALID', `descriptor digest "${truncate(entry.digest)}" is not sha256:<64 lowercase hex digits>`);
    }
  }
  return {
    mediaType,
    kind: imageManifestTypes.has(mediaType) ? 'image' : 'index',
    blobs,
    manifests,
    subject: value.subject?.digest,
    artifactType: value.artifactType ?? (imageManifestTypes.has(mediaType) ? value.config.mediaType : undefined),
    annotations: value.annotations,
  };
}

/** `Content-Range: <start>-<end>` on PATCH (distribution spec, "Pushing a blob in chunks"). */
export function parseContentRange(header: string): { start: number; end: number } | undefined {
  const match = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  return { start, end };
}

/** Tag listing page (distribution spec, "Listing Tags"): lexical order, after `last`, at most `n`. */
export function pageTags(tags: readonly string[], n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
  const sorted = [...tags].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const after = last === undefined ? sorted : sorted.filter((tag) => tag > last);
  if (n === undefined) return { tags: after, more: false };
  return { tags: after.slice(0, n), more: after.length > n };
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
