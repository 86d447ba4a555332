import * as z from 'zod';
import { packageInfo } from './package.ts';
import { artifactName, artifactType, bundleName, digest, version } from './names.ts';

/**
 * The bundle manifest: what one approved release contains. It is written once at approval,
 * stored as a blob and named in the signed TUF targets, so a device trusts it only after TUF has
 * verified its length and hash; each artifact it lists is a signed target of its own too.
 */
export const manifestSchemaId = 'convoy.bundle.manifest/v1';

export const manifestArtifact = z.strictObject({
  name: artifactName,
  type: artifactType,
  digest,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** For packages: signed with the rest, so a consumer can trust what a package claims to be. */
  package: packageInfo.optional(),
});
export type ManifestArtifact = z.infer<typeof manifestArtifact>;

export const bundleManifest = z.strictObject({
  schema: z.literal(manifestSchemaId),
  bundle: bundleName,
  version,
  approvedAt: z.iso.datetime(),
  artifacts: z
    .array(manifestArtifact)
    .min(1)
    .max(10_000)
    .refine((list) => new Set(list.map((a) => a.name)).size === list.length, 'artifact names must be unique'),
});
export type BundleManifest = z.infer<typeof bundleManifest>;

/** Upper bound for a manifest a device will download: 10 000 artifacts fit comfortably. */
export const maxManifestBytes = 4 * 1024 * 1024;

/** What the manifest needs of an artifact (a stored artifact row has more; only these are signed). */
export interface ManifestArtifactInput {
  name: string;
  type: ManifestArtifact['type'];
  digest: string;
  size: number;
  package?: ManifestArtifact['package'] | null | undefined;
}

/**
 * The artifacts as the manifest lists them: sorted by name, keys in one fixed order, package
 * metadata kept for packages. Pure and deterministic, so the same content always gives the
 * same bytes, whichever path (server-signed or offline-signed) builds it.
 */
export function manifestArtifacts(artifacts: readonly ManifestArtifactInput[]): ManifestArtifact[] {
  return [...artifacts]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(({ name, type, digest, size, package: pkg }) => ({
      name,
      type,
      digest,
      size,
      ...(pkg ? { package: { format: pkg.format, name: pkg.name, version: pkg.version, architecture: pkg.architecture } } : {}),
    }));
}

/** The one builder of the bundle manifest: every signing path goes through it. */
export function buildBundleManifest(input: { bundle: string; version: string; approvedAt: string; artifacts: readonly ManifestArtifactInput[] }): BundleManifest {
  return { schema: manifestSchemaId, bundle: input.bundle, version: input.version, approvedAt: input.approvedAt, artifacts: manifestArtifacts(input.artifacts) };
}

/** The manifest's text as stored and signed, UTF-8 encoded (pretty-printed: people read it too). */
export function encodeBundleManifest(manifest: BundleManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}
