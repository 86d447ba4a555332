/**
 * TUF target paths: how the signed targets metadata names what a release contains.
 *   <bundle>/<version>/manifest.json       the bundle manifest
 *   <bundle>/<version>/artifacts/<name>    each artifact
 * Bundle, version and artifact names are validated allow-lists (protocol/names.ts), so a path
 * never holds "..", a leading "/" or an empty segment.
 */
export function manifestTargetPath(bundle: string, version: string): string {
  return `${bundle}/${version}/manifest.json`;
}

export function artifactTargetPath(bundle: string, version: string, artifact: string): string {
  return `${bundle}/${version}/artifacts/${artifact}`;
}
