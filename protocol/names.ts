import semver from 'semver';
import * as z from 'zod';

/*
 * Names travel into file paths (blob store, device slots), URLs, MQTT topics and TUF target paths,
 * so each is a strict allow-list: no separators, no dot-only names, no control characters.
 */

/** Bundle names are lowercase so that `<bundle>/<image>` is also a valid OCI repository name. */
export const bundleNamePattern = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;
/** Artifact names become file names on devices: letters, digits, `.`, `_`, `-`; no leading dot. */
export const artifactNamePattern = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Device ids and group names appear as single MQTT topic levels. */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const digestPattern = /^sha256:[a-f0-9]{64}$/;

export const bundleName = z
  .string()
  .regex(bundleNamePattern, 'must be 1-64 lowercase letters, digits, ".", "_" or "-", starting and ending with a letter or digit');
export const artifactName = z
  .string()
  .regex(artifactNamePattern, 'must be 1-128 letters, digits, ".", "_" or "-", not starting with "."')
  .refine((name) => name !== '..' && name !== '.', 'must not be "." or ".."');
export const deviceId = z.string().regex(idPattern, 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
export const groupName = deviceId;
export const digest = z.string().regex(digestPattern, 'must be "sha256:" followed by 64 lowercase hex digits');

/**
 * A strict semantic version (semver 2.0.0, no leading "v", no loose forms), at most 128 chars.
 * Build metadata (`+…`) is refused: semver §10 gives 1.0.0+a and 1.0.0+b the same precedence, so
 * they could not be told apart as "the newer release".
 */
export const version = z
  .string()
  .max(128, 'must be at most 128 characters')
  .refine((value) => !value.includes('+'), 'must not carry build metadata ("+…"): versions differing only in it are equal in semver precedence')
  .refine((value) => semver.valid(value) === value, 'must be a semantic version such as 1.2.3 or 2.0.0-rc.1');

/**
 * How a device applies an artifact (one update module per type, device/modules.ts): `file` is
 * placed as is, `archive` (tar, tar.gz) is extracted, `image` and `package` are handed to a
 * command the device configures (skopeo, a container runtime, `rauc install`, dpkg), `script`
 * is run once while staging. Appended only: the strings are stable.
 */
export const artifactTypes = ['image', 'package', 'file', 'archive', 'script'] as const;
export const artifactType = z.enum(artifactTypes);
export type ArtifactType = z.infer<typeof artifactType>;

/** `bundle@version`, the way users name one release on the command line and in deployments. */
export function parseRelease(text: string): { bundle: string; version: string } | undefined {
  const at = text.lastIndexOf('@');
  if (at <= 0) return undefined;
  const bundle = text.slice(0, at);
  const ver = text.slice(at + 1);
  if (!bundleName.safeParse(bundle).success || !version.safeParse(ver).success) return undefined;
  return { bundle, version: ver };
}

export function hexOf(sha256Digest: string): string {
  return sha256Digest.slice('sha256:'.length);
}
