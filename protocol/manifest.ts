import { z } from 'zod';
import { packageInfo } from './api.ts';
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
