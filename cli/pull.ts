import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Artifact } from '../protocol/api.ts';
import { CliError, type ApiClient } from './client.ts';
import { maxIndexDepth, maxManifestBytes, mediaTypes, readManifest } from '../protocol/oci.ts';
import type { Descriptor } from './oci-layout.ts';

/*
 * `convoy artifact pull`: what a consumer fetches before checking it with `convoy bundle verify`.
 * Every blob is written to a temp file, its length and hash checked while it streams, and only
 * then renamed into place: a cut transfer or a wrong byte never leaves a file that looks whole.
 */

async function fetchBlob(client: ApiClient, want: Descriptor, target: string): Promise<void> {
  const response = await client.download(`/api/v1/blobs/${want.digest}`);
  if (!response.body) throw new CliError(`blob ${want.digest}: empty answer`, 'download_failed');
  const hash = createHash('sha256');
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > want.size) return callback(new CliError(`blob ${want.digest}: more than the ${want.size} bytes expected`, 'download_failed'));
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  const part = `${target}.part`;
  try {
    await pipeline(Readable.fromWeb(response.body as never), check, createWriteStream(part, { mode: 0o644 }));
    const digest = `sha256:${hash.digest('hex')}`;
    if (size !== want.size || digest !== want.digest) throw new CliError(`blob ${want.digest}: received ${size} bytes hashing to ${digest}`, 'download_failed');
    await fs.rename(part, target);
  } finally {
    await fs.rm(part, { force: true });
  }
}

/** A file or package: its bytes at `out`. */
export async function pullFile(client: ApiClient, artifact: Artifact, out: string): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(out)), { recursive: true });
  await fetchBlob(client, { digest: artifact.digest, size: artifact.size }, out);
}

/** An image: an OCI image layout at `out`, tagged `tag`, readable by skopeo (`oci:OUT:TAG`). */
export async function pullImage(client: ApiClient, artifact: Artifact, out: string, tag: string): Promise<number> {
  const blobDir = path.join(out, 'blobs', 'sha256');
  await fs.mkdir(blobDir, { recursive: true });
  const done = new Set<string>();
  async function pull(d: Descriptor, depth: number, isManifest: boolean): Promise<void> {
    if (done.has(d.digest)) return;
    done.add(d.digest);
    const target = path.join(blobDir, d.digest.slice('sha256:'.length));
    await fetchBlob(client, d, target);
    if (!isManifest) return;
    if (d.size > maxManifestBytes) throw new CliError(`${artifact.name}: manifest ${d.digest} is too large`, 'invalid_image');
    const bytes = await fs.readFile(target);
    const manifest = readManifest(bytes);
    if (manifest.kind === 'other') throw new CliError(`${artifact.name}: ${d.digest} is not an image manifest or index`, 'invalid_image');
    if (manifest.kind === 'invalid') throw new CliError(`${artifact.name}: ${d.digest}: ${manifest.reason}`, 'invalid_image');
    if (manifest.kind === 'index' && depth >= maxIndexDepth) throw new CliError(`${artifact.name}: indexes nested deeper than ${maxIndexDepth}`, 'invalid_image');
    if (depth === 0) topMediaType = manifest.mediaType;
    for (const child of manifest.children) await pull(child, depth + 1, manifest.kind === 'index');
  }
  let topMediaType: string = mediaTypes.ociManifest;
  await pull({ digest: artifact.digest, size: artifact.size }, 0, true);
  const mediaType = topMediaType;
  await fs.writeFile(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [{ mediaType, digest: artifact.digest, size: artifact.size, annotations: { 'org.opencontainers.image.ref.name': tag } }] };
  await fs.writeFile(path.join(out, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  return done.size;
}
