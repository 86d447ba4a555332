import fs from 'node:fs/promises';
import path from 'node:path';
import { maxIndexDepth, maxManifestBytes, readManifest } from '../protocol/oci.ts';
import { hashFile } from './command.ts';

/*
 * OCI image layouts (image spec, "OCI Image Layout"): `oci-layout`, `index.json` and
 * `blobs/sha256/<hex>`, as `skopeo copy … oci:DIR:TAG` writes them and as convoyd installs an
 * image into `current/<image>/`. A bundle signs an image by its manifest digest; a layout is
 * verified by finding that manifest among its blobs and every blob it names (config, layers; for
 * an index, each child manifest and its blobs), each hashed against its digest and size.
 */

export interface Descriptor {
  digest: string;
  size: number;
}

export async function isOciLayout(dir: string): Promise<boolean> {
  return (await fs.stat(path.join(dir, 'oci-layout')).catch(() => undefined))?.isFile() === true;
}

async function hashBlob(file: string): Promise<{ digest: string; size: number } | undefined> {
  const stat = await fs.stat(file).catch(() => undefined);
  return stat?.isFile() ? hashFile(file) : undefined;
}

/**
 * The problems of a layout against the signed manifest `expected`; empty when every blob is
 * there with the bytes the signature covers. Blobs the layout holds beyond the image are ignored
 * (a layout may hold several images).
 */
export async function verifyLayout(dir: string, expected: Descriptor): Promise<string[]> {
  const problems: string[] = [];
  const blobPath = (digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const seen = new Set<string>();
  async function check(d: Descriptor, depth: number, what: string): Promise<void> {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const held = await hashBlob(blobPath(d.digest));
    if (!held) return void problems.push(`${what} ${d.digest} is not in the layout`);
    if (held.size !== d.size) return void problems.push(`${what} ${d.digest}: ${held.size} bytes, signed as ${d.size}`);
    if (held.digest !== d.digest) return void problems.push(`${what} ${d.digest}: hashes to ${held.digest}`);
    if (what === 'blob') return;
    if (d.size > maxManifestBytes) return void problems.push(`${what} ${d.digest} is larger than a manifest may be`);
    const manifest = readManifest(await fs.readFile(blobPath(d.digest)));
    if (manifest.kind === 'other') return void problems.push(`${what} ${d.digest} is not an image manifest or index`);
    if (manifest.kind === 'invalid') return void problems.push(`${what} ${d.digest}: ${manifest.reason}`);
    if (manifest.kind === 'index' && depth >= maxIndexDepth) return void problems.push(`${what} ${d.digest}: indexes nested deeper than ${maxIndexDepth}`);
    for (const child of manifest.children) await check(child, depth + 1, manifest.kind === 'index' ? 'manifest' : 'blob');
  }
  await check(expected, 0, 'manifest');
  return problems;
}
