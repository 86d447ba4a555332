import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openTrustClient } from '../tuf/client.ts';
import { silentLogger } from '../protocol/log.ts';
import { bundleManifest, maxManifestBytes } from '../protocol/manifest.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { artifactTargetPath, manifestTargetPath } from '../protocol/targets.ts';
import { CliError, type ApiClient } from './client.ts';
import { hashFile } from './command.ts';
import { isOciLayout, verifyLayout } from './oci-layout.ts';

/*
 * `convoy bundle verify`: the consumer's check of what they hold against the signed metadata. A
 * pure comparison (tested by table) inside a thin shell that fetches and verifies the metadata
 * with tuf-js, trusting only the root the consumer pinned. Imported lazily: tuf-js is heavy and
 * only this command needs it.
 */

export interface ExpectedFile {
  name: string;
  size: number;
  sha256: string;
}
export type Held = { name: string; size: number; sha256: string };
export type Mismatch =
  | { type: 'missing'; name: string }
  | { type: 'size'; name: string; expected: number; actual: number }
  | { type: 'digest'; name: string; expected: string; actual: string }
  | { type: 'extra'; name: string }
  | { type: 'unsigned'; name: string; detail: string }
  | { type: 'image'; name: string; detail: string };

/** What differs between the signed list and the files held. Pure: tested by table. */
export function compareFiles(expected: readonly ExpectedFile[], held: readonly Held[]): Mismatch[] {
  const byName = new Map(held.map((file) => [file.name, file]));
  const mismatches: Mismatch[] = [];
  for (const want of expected) {
    const have = byName.get(want.name);
    if (!have) mismatches.push({ type: 'missing', name: want.name });
    else if (have.size !== want.size) mismatches.push({ type: 'size', name: want.name, expected: want.size, actual: have.size });
    else if (have.sha256 !== want.sha256) mismatches.push({ type: 'digest', name: want.name, expected: `sha256:${want.sha256}`, actual: `sha256:${have.sha256}` });
    byName.delete(want.name);
  }
  for (const name of [...byName.keys()].sort()) mismatches.push({ type: 'extra', name });
  return mismatches;
}

export function describeMismatch(m: Mismatch): string {
  switch (m.type) {
    case 'missing':
      return `missing   ${m.name}: signed in the release, not in the directory`;
    case 'size':
      return `changed   ${m.name}: ${m.actual} bytes, signed as ${m.expected}`;
    case 'digest':
      return `changed   ${m.name}: hashes to ${m.actual}, signed as ${m.expected}`;
    case 'extra':
      return `extra     ${m.name}: in the directory, not in the release`;
    case 'unsigned':
      return `unsigned  ${m.name}: ${m.detail}`;
    case 'image':
      return `changed   ${m.name}: ${m.detail}`;
  }
}

export async function verifyRelease(options: { client: ApiClient; token: string; bundle: string; version: string; dir: string; rootFile: string }): Promise<{ expected: ExpectedFile[]; mismatches: Mismatch[] }> {
  const metadataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-verify-'));
  try {
    // A fresh metadata dir seeded with the pinned root: only what chains to it is believed.
    const trust = await openTrustClient({ metadataDir, goodDir: path.join(metadataDir, 'good'), log: silentLogger, pinnedRootFile: options.rootFile, serverUrl: options.client.baseUrl, token: options.token, timeoutMs: 30_000 });
    try {
      await trust.refresh();
    } catch (error) {
      throw new CliError(`the signed metadata does not verify against the pinned root ${options.rootFile}: ${(error as Error).message}`, 'untrusted_metadata');
    }
    const manifestPath = manifestTargetPath(options.bundle, options.version);
    const manifestInfo = await trust.targetInfo(manifestPath);
    if (!manifestInfo) throw new CliError(`${options.bundle}@${options.version} is not in the signed metadata (not approved, or unknown)`, 'not_found');
    const sha256 = manifestInfo.hashes.sha256;
    if (!sha256 || manifestInfo.length > maxManifestBytes) throw new CliError('the signed manifest entry has no sha256 or is too large', 'untrusted_metadata');
    const url = `${options.client.baseUrl}/tuf/targets/${options.bundle}/${options.version}/${sha256}.manifest.json`;
    const response = await fetch(url, { headers: { authorization: `Bearer ${options.token}` } });
    if (!response.ok) throw new CliError(`GET ${new URL(url).pathname} answered ${response.status}`, 'download_failed');
    const bytes = Buffer.from(await response.arrayBuffer());
    if (bytes.length !== manifestInfo.length || createHash('sha256').update(bytes).digest('hex') !== sha256) {
      throw new CliError('the manifest served does not match its signed length and hash', 'untrusted_metadata');
    }
    const manifest = parseWith(bundleManifest, parseJson(bytes.toString('utf8'), 'manifest'), 'manifest', 'untrusted_metadata');
    if (manifest.bundle !== options.bundle || manifest.version !== options.version) throw new CliError('the signed manifest names another release', 'untrusted_metadata');

    const expected: ExpectedFile[] = [];
    const unsigned: Mismatch[] = [];
    for (const entry of manifest.artifacts) {
      const info = await trust.targetInfo(artifactTargetPath(options.bundle, options.version, entry.name));
      if (!info?.hashes.sha256) unsigned.push({ type: 'unsigned', name: entry.name, detail: 'listed in the manifest but not a signed target' });
      else if (`sha256:${info.hashes.sha256}` !== entry.digest || info.length !== entry.size) unsigned.push({ type: 'unsigned', name: entry.name, detail: 'the manifest and the signed target disagree' });
      else expected.push({ name: entry.name, size: info.length, sha256: info.hashes.sha256 });
    }
    const held: Held[] = [];
    const images: Mismatch[] = [];
    for (const dirent of await fs.readdir(options.dir, { withFileTypes: true })) {
      const file = path.join(options.dir, dirent.name);
      if (dirent.isFile()) {
        const { digest, size } = await hashFile(file);
        held.push({ name: dirent.name, size, sha256: digest.slice('sha256:'.length) });
        continue;
      }
      // An image: an OCI layout directory (skopeo's oci:DIR, a device's current/<image>/), held
      // as signed when its manifest and every blob it names hash to what the signature covers.
      const want = expected.find((e) => e.name === dirent.name);
      if (!dirent.isDirectory() || !(await isOciLayout(file))) continue;
      if (!want) {
        held.push({ name: dirent.name, size: -1, sha256: '' });
        continue;
      }
      const problems = await verifyLayout(file, { digest: `sha256:${want.sha256}`, size: want.size });
      if (problems.length === 0) held.push({ name: dirent.name, size: want.size, sha256: want.sha256 });
      else images.push({ type: 'image', name: dirent.name, detail: problems.join('; ') });
    }
    // Names in `unsigned` are reported once, as unsigned, not again as extra; a bad image once.
    const reported = new Set([...unsigned, ...images].map((m) => m.name));
    const mismatches = [...unsigned, ...images, ...compareFiles(expected.filter((e) => !reported.has(e.name)), held.filter((h) => !reported.has(h.name)))];
    return { expected, mismatches };
  } finally {
    await fs.rm(metadataDir, { recursive: true, force: true });
  }
}
