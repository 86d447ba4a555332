import fs from 'node:fs/promises';
import path from 'node:path';
import type { TargetFile } from 'tuf-js';
import type { Logger } from '../protocol/log.ts';
import { bundleManifest, maxManifestBytes, type BundleManifest } from '../protocol/manifest.ts';
import { hexOf } from '../protocol/names.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { artifactTargetPath, manifestTargetPath } from '../protocol/targets.ts';
import { UpdateError } from './errors.ts';
import { downloadVerified } from './fetch.ts';
import { fetchImage, installImages, type StagedImage } from './image.ts';
import { checkDowngrade } from './guard.ts';
import { createSlot, pruneSlots, switchCurrent } from './install.ts';
import { readJournal, writeJournal, type SlotRecord } from './journal.ts';
import type { TrustClient } from './trust.ts';

export interface UpdaterDeps {
  dataDir: string;
  serverUrl: string;
  token: string;
  trust: TrustClient;
  stallTimeoutMs: number;
  log: Logger;
}

export interface Release {
  bundle: string;
  version: string;
}

/**
 * One update, as a sequence of named steps: refresh signed metadata, fetch and check the
 * manifest, fetch and check every artifact, stage a slot, switch, record. Each step verifies
 * before the next uses its output; any failure leaves `current` as it was.
 */
export async function applyRelease(deps: UpdaterDeps, release: Release): Promise<SlotRecord> {
  const log = deps.log;
  await deps.trust.refresh();
  await checkDowngrade(deps.trust, deps.dataDir, release);

  const manifestInfo = await requireTarget(deps.trust, manifestTargetPath(release.bundle, release.version));
  if (manifestInfo.length > maxManifestBytes) throw new UpdateError('untrusted_metadata', `the signed manifest is ${manifestInfo.length} bytes, over the ${maxManifestBytes} limit`, false);
  const manifestFile = await download(deps, manifestInfo);
  const manifest = await readManifest(manifestFile, release);
  log.info('manifest verified', { bundle: release.bundle, version: release.version, artifacts: manifest.artifacts.length });

  const files = [];
  const images: StagedImage[] = [];
  for (const artifact of manifest.artifacts) {
    const info = await requireTarget(deps.trust, artifactTargetPath(release.bundle, release.version, artifact.name));
    // The manifest and the targets metadata are both signed; a disagreement means one of them
    // was not produced by the same approval, so neither is trusted.
    if (info.length !== artifact.size || info.hashes.sha256 !== hexOf(artifact.digest)) {
      throw new UpdateError('untrusted_metadata', `artifact "${artifact.name}" differs between the manifest and the signed targets`, false);
    }
    const source = await download(deps, info);
    log.info('artifact verified', { name: artifact.name, bytes: artifact.size });
    // An image artifact is an OCI manifest: its blobs are fetched and verified, then installed
    // as an OCI layout directory (device/image.ts) instead of a file.
    const image = await fetchImage(deps, artifact, source, release.version);
    if (image) images.push(image);
    else files.push({ name: artifact.name, source });
  }

  const slot = await createSlot(deps.dataDir, release, files);
  await installImages(path.join(deps.dataDir, 'slots', slot), images);
  const journalFile = path.join(deps.dataDir, 'journal.json');
  const journal = await readJournal(journalFile);
  await switchCurrent(deps.dataDir, slot);
  const installed: SlotRecord = { bundle: release.bundle, version: release.version, slot };
  await writeJournal(journalFile, { ...journal, installed, previous: journal.installed });
  await pruneSlots(deps.dataDir, [slot, ...(journal.installed ? [journal.installed.slot] : [])]);
  await pruneDownloads(deps.dataDir, new Set(files.map((f) => path.basename(f.source))));
  log.info('switched to the new release', { bundle: release.bundle, version: release.version, slot });
  return installed;
}

async function requireTarget(trust: TrustClient, targetPath: string): Promise<TargetFile> {
  const info = await trust.targetInfo(targetPath);
  if (!info) throw new UpdateError('target_missing', `"${targetPath}" is not in the signed targets metadata`, false);
  if (!info.hashes.sha256 || !/^[0-9a-f]{64}$/.test(info.hashes.sha256)) {
    throw new UpdateError('untrusted_metadata', `"${targetPath}" has no SHA-256 in the signed targets`, false);
  }
  return info;
}

/** Downloads a signed target's bytes from the blob API into the content-addressed download cache. */
async function download(deps: UpdaterDeps, info: TargetFile): Promise<string> {
  const sha256 = info.hashes.sha256!;
  const destination = path.join(deps.dataDir, 'downloads', sha256);
  const result = await downloadVerified({
    url: `${deps.serverUrl}/api/v1/blobs/sha256:${sha256}`,
    token: deps.token,
    destination,
    length: info.length,
    sha256,
    stallTimeoutMs: deps.stallTimeoutMs,
  });
  if (result.resumedFrom > 0 && result.received > 0) deps.log.info('resumed a download', { sha256, from: result.resumedFrom });
  return destination;
}

async function readManifest(file: string, release: Release): Promise<BundleManifest> {
  const manifest = parseWith(bundleManifest, parseJson(await fs.readFile(file, 'utf8'), 'manifest'), 'manifest', 'untrusted_metadata');
  if (manifest.bundle !== release.bundle || manifest.version !== release.version) {
    throw new UpdateError('untrusted_metadata', `the manifest is for ${manifest.bundle}@${manifest.version}, not ${release.bundle}@${release.version}`, false);
  }
  return manifest;
}

/** Keeps the download cache to what the release just installed used (a later resume may want it). */
async function pruneDownloads(dataDir: string, keep: ReadonlySet<string>): Promise<void> {
  const dir = path.join(dataDir, 'downloads');
  for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!keep.has(entry)) await fs.rm(path.join(dir, entry), { force: true });
  }
}
