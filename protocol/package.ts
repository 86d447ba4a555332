import * as z from 'zod';

/*
 * Packages are artifacts of type `package` with a format. Where the format defines where its
 * metadata lives (a .deb's control file, an npm tarball's package.json, an RPM header) the server
 * reads it from the bytes; fields given by the user must agree with it. Otherwise (generic) the
 * user gives them.
 *
 * A module of its own, apart from api.ts: the bundle manifest (manifest.ts) signs package metadata,
 * and convoyd, which parses manifests, should not build every REST schema to get these few.
 */
export const packageFormats = ['deb', 'rpm', 'npm', 'generic'] as const;
export const packageFormat = z.enum(packageFormats);
export type PackageFormat = z.infer<typeof packageFormat>;
/** Debian, RPM and npm package names (npm scopes included); no spaces or control characters. */
export const packageName = z.string().regex(/^[A-Za-z0-9@_][A-Za-z0-9@/._+~-]{0,213}$/, 'must be 1-214 letters, digits or one of @ / . _ + ~ -');
/** Debian (epoch:upstream-revision), RPM and semver versions. */
export const packageVersion = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}$/, 'must be 1-128 letters, digits or one of . + ~ : _ -, starting with a letter or digit');
export const architecture = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, 'must be 1-32 letters, digits, ".", "_" or "-" (amd64, x86_64, noarch, all…)');

export const packageInfo = z.strictObject({ format: packageFormat, name: packageName, version: packageVersion, architecture });
export type PackageInfo = z.infer<typeof packageInfo>;
