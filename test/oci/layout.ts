import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

/** Test fixtures: OCI image layouts written in code, and skopeo run against a test server. */

export const execFileAsync = promisify(execFile);

export const ociManifestType = 'application/vnd.oci.image.manifest.v1+json';
export const ociIndexType = 'application/vnd.oci.image.index.v1+json';

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface Layout {
  dir: string;
  manifestDigest: string;
  manifest: Buffer;
  /** Every blob of the image (config, layers), by digest. */
  blobs: Map<string, Buffer>;
}

async function writeBlob(dir: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return digest;
}

/** The bytes of one image: a config and gzip layers of random content. */
export function makeImage(layerSizes: readonly number[]): { config: Buffer; layers: Buffer[]; manifest: Buffer } {
  const raw = layerSizes.map((size) => randomBytes(size));
  const layers = raw.map((bytes) => gzipSync(bytes, { level: 1 }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: raw.map(sha256) },
      history: raw.map(() => ({ created_by: 'convoy test' })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: ociManifestType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length })),
    }),
  );
  return { config, layers, manifest };
}

/** Writes an OCI image layout directory holding one image tagged `tag`. */
export async function writeLayout(dir: string, tag: string, layerSizes: readonly number[]): Promise<Layout> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const image = makeImage(layerSizes);
  const blobs = new Map<string, Buffer>();
  for (const bytes of [image.config, ...image.layers]) blobs.set(await writeBlob(dir, bytes), bytes);
  const manifestDigest = await writeBlob(dir, image.manifest);
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: ociManifestType, digest: manifestDigest, size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir, manifestDigest, manifest: image.manifest, blobs };
}

/** The manifest digest a layout's index.json names for `tag`. */
export async function layoutDigest(dir: string, tag: string): Promise<string> {
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no ${tag} in ${dir}/index.json`);
  return entry.digest;
}

export async function readLayoutBlob(dir: string, digest: string): Promise<Buffer> {
  return fs.readFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)));
}

/** Runs skopeo; resolves with its output or rejects with its stderr in the message. */
export async function skopeo(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.slice(0, 2).join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

export function randomPayload(size: number): Buffer {
  return randomBytes(size);
}

/** Writes an OCI layout whose `tag` names an image index of one image per architecture. */
export async function writeMultiArchLayout(dir: string, tag: string, architectures: readonly string[], layerSize: number): Promise<Layout & { children: string[] }> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const blobs = new Map<string, Buffer>();
  const children = [];
  for (const architecture of architectures) {
    const image = makeImage([layerSize]);
    for (const bytes of [image.config, ...image.layers, image.manifest]) blobs.set(await writeBlob(dir, bytes), bytes);
    children.push({ mediaType: ociManifestType, digest: sha256(image.manifest), size: image.manifest.length, platform: { architecture, os: 'linux' } });
  }
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociIndexType, manifests: children }));
  const manifestDigest = await writeBlob(dir, manifest);
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: ociIndexType, digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return { dir, manifestDigest, manifest, blobs, children: children.map((c) => c.digest) };
}
