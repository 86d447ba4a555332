import { bundleOfRole } from '../../protocol/targets.ts';

/*
 * The TUF metadata an edge must hold to serve its devices as the origin does (TUF spec §5, the
 * client workflow): every root version (a device may be several behind: §5.3 walks them one by
 * one), the current timestamp, and the snapshot and targets versions it names (consistent
 * snapshots: `<version>.<role>.json`), and every bundle role the snapshot names
 * (`<version>.bundle-<name>.json`, TUF §5.6: a device follows the delegation to its bundle's
 * role; with `bundle`, that bundle's role only). Read from the trust service; no other I/O.
 */
export async function tufMetadataFiles(trust: { readMetadata(name: string): Promise<Buffer | undefined>; currentRoot(): Record<string, unknown> }, bundle?: string): Promise<{ name: string; size: number }[]> {
  const files: { name: string; size: number }[] = [];
  const add = async (name: string): Promise<Buffer | undefined> => {
    const bytes = await trust.readMetadata(name);
    if (bytes) files.push({ name, size: bytes.length });
    return bytes;
  };
  const rootVersion = Number((trust.currentRoot().signed as { version?: unknown } | undefined)?.version ?? 1);
  for (let v = 1; v <= rootVersion; v++) await add(`${v}.root.json`);
  const versionIn = (bytes: Buffer | undefined, role: string): number | undefined => {
    if (!bytes) return undefined;
    const meta = (JSON.parse(bytes.toString('utf8')) as { signed?: { meta?: Record<string, { version?: number }> } }).signed?.meta;
    return meta?.[`${role}.json`]?.version;
  };
  const timestamp = await trust.readMetadata('timestamp.json');
  const snapshotVersion = versionIn(timestamp, 'snapshot');
  const snapshot = snapshotVersion !== undefined ? await add(`${snapshotVersion}.snapshot.json`) : undefined;
  const targetsVersion = versionIn(snapshot, 'targets');
  if (targetsVersion !== undefined) await add(`${targetsVersion}.targets.json`);
  const meta = snapshot ? ((JSON.parse(snapshot.toString('utf8')) as { signed?: { meta?: Record<string, { version?: number }> } }).signed?.meta ?? {}) : {};
  for (const [file, { version }] of Object.entries(meta).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const role = file.slice(0, -'.json'.length);
    const of = bundleOfRole(role);
    // A policy replicates one bundle: its devices follow the delegation to that role only.
    if (of !== undefined && (bundle === undefined || of === bundle) && typeof version === 'number') await add(`${version}.${role}.json`);
  }
  // The timestamp last: an edge that has it has everything it names.
  if (timestamp) files.push({ name: 'timestamp.json', size: timestamp.length });
  return files;
}
