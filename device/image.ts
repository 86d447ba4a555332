import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { maxIndexDepth as maxDepth, maxManifestBytes, mediaTypes, readManifest, type ManifestReading } from '../protocol/oci.ts';
import { UpdateError } from './errors.ts';
import type { UpdateModule } from './modules.ts';

/**
 * OCI images on the device. A bundle names an image by its manifest digest, so the manifest is a
 * signed TUF target and was verified before it reaches this module; every blob it names (config,
 * layers; for an index, each child manifest and its blobs) is fetched by digest and verified
 * against the manifest's digest and size before use. Installed, an image is an OCI image layout
 * directory (image spec, "OCI Image Layout"): `current/<image>/oci-layout`, `index.json` (the
 * manifest, tagged with the release version) and `blobs/sha256/<hex>`, which skopeo, podman,
 * containerd or umoci read as they are (`skopeo copy oci:current/<image>:<version> …`).
 */

type Descriptor = { mediaType: string; digest: string; size: number };
type ImageReading = Extract<ManifestReading, { kind: 'image' | 'index' }>;

/** What a manifest names, or undefined when the bytes are not an image manifest or index. */
function readImageManifest(bytes: Buffer): ImageReading | undefined {
  const reading = readManifest(bytes);
  if (reading.kind === 'invalid') throw new UpdateError('untrusted_metadata', `the signed image manifest is unusable: ${reading.reason}`, false);
  return reading.kind === 'other' ? undefined : reading;
}

/**
 * Reads a verified artifact file as an image manifest or index, or undefined when it is neither.
 * Manifests are small: anything over maxManifestBytes is installed as a plain file, never parsed.
 */
async function readImageFile(file: string, length: number): Promise<ImageReading | undefined> {
  return length > maxManifestBytes ? undefined : readImageManifest(await fs.readFile(file));
}

/**
 * Walks everything an image manifest names, depth-first: `resolve` returns the verified file of a
 * child (fetching it while downloading, finding it while staging); an index's children are read
 * in turn. Bounded depth, and every child is visited once.
 */
async function walkImage(
  name: string,
  top: ImageReading,
  resolve: (child: Descriptor) => Promise<string>,
): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const visit = async (manifest: ImageReading, depth: number): Promise<void> => {
    for (const child of manifest.children) {
      const hex = hexOf(child.digest);
      if (seen.has(hex)) continue;
      const file = await resolve(child);
      seen.set(hex, file);
      if (manifest.kind === 'index') {
        if (depth >= maxDepth) throw new UpdateError('untrusted_metadata', `image "${name}" nests indexes deeper than ${maxDepth}`, false);
        const nested = await readImageFile(file, child.size);
        if (!nested) throw new UpdateError('untrusted_metadata', `image "${name}": index entry ${child.digest} is not an image manifest`, false);
        await visit(nested, depth + 1);
      }
    }
  };
  await visit(top, 1);
  return seen;
}

/**
 * The `image` update module. An image artifact whose verified bytes are an OCI (or Docker schema
 * 2) manifest or index: `prepare` fetches every blob it names by digest through the daemon's
 * verified, resumable downloader; `stage` writes the OCI image layout `<slot>/<name>/`, tagged
 * with the release version. Any other image artifact goes to `fallback` (the configured image
 * command, or a plain file).
 */
export function imageModule(fallback: UpdateModule): UpdateModule {
  return {
    async prepare({ artifact, source, fetch }) {
      const top = await readImageFile(source, artifact.length);
      if (!top) return;
      await walkImage(artifact.name, top, (child) => fetch(hexOf(child.digest), child.size));
    },
    async stage(context) {
      const { artifact } = context;
      const top = await readImageFile(context.source, artifact.length);
      if (!top) return fallback.stage(context);
      // Everything was fetched and verified by `prepare`; here it is only found again.
      const blobs = await walkImage(artifact.name, top, async (child) => context.blobPath(hexOf(child.digest)));
      blobs.set(artifact.sha256, context.source);
      await writeLayout(path.join(context.stageDir, artifact.name), {
        tag: context.release.version,
        manifest: { mediaType: top.mediaType, digest: `sha256:${artifact.sha256}`, size: artifact.length },
        blobs,
      });
      context.log.info('image staged', { name: artifact.name, digest: `sha256:${artifact.sha256}`, blobs: blobs.size });
    },
  };
}

/**
 * Writes one OCI image layout directory. Blobs are hard-linked from the download cache where the
 * file system allows (no second copy of gigabytes; they are immutable and were verified), copied
 * elsewhere. The slot is fsynced as a whole before it is renamed into place (device/install.ts).
 */
async function writeLayout(dir: string, image: { tag: string; manifest: { mediaType: string; digest: string; size: number }; blobs: Map<string, string> }): Promise<void> {
  try {
    const blobDir = path.join(dir, 'blobs', 'sha256');
    await fs.mkdir(blobDir, { recursive: true });
    for (const [hex, source] of image.blobs) await linkOrCopy(source, path.join(blobDir, hex));
    await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const index = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      manifests: [{ ...image.manifest, annotations: { 'org.opencontainers.image.ref.name': image.tag } }],
    };
    await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  } catch (error) {
    if (error instanceof UpdateError) throw error;
    throw new UpdateError('install_failed', `cannot stage image "${path.basename(dir)}": ${(error as Error).message}`, false, { cause: error });
  }
}

async function linkOrCopy(source: string, target: string): Promise<void> {
  try {
    await fs.link(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw error;
    await fs.copyFile(source, target, constants.COPYFILE_FICLONE);
  }
}

function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}
