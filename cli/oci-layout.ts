import fs from 'node:fs/promises';
import path from 'node:path';
import { hashFile } from './command.ts';

/*
 * OCI image layouts (image spec, "OCI Image Layout"): `oci-layout`, `index.json` and
 * `blobs/sha256/<hex>`, as `skopeo copy … oci:DIR:TAG` writes them and as convoyd installs an
 * image into `current/<image>/`. A bundle signs an image by its manifest digest; a layout is
 * verified by finding that manifest among its blobs and every blob it names (config, layers; for
 * an index, each child manifest and its blobs), each hashed against its digest and size.
 */

const maxManifestBytes = 4 * 1024 * 1024;
/** An index of indexes is legal but rare; the bound keeps a hostile graph from recursing forever. */
const maxDepth = 3;
const digestPattern = /^sha256:[0-9a-f]{64}$/;

export interface Descriptor {
  digest: string;
  size: number;
}

/** The descriptors a manifest or index names (children), or undefined when it is neither. Pure. */
export function manifestChildren(bytes: Buffer): Descriptor[] | undefined {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    json = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (json.schemaVersion !== 2) return undefined;
  const list = 'manifests' in json ? json.manifests : 'config' in json ? [json.config, ...(Array.isArray(json.layers) ? json.layers : [null])] : undefined;
  if (!Array.isArray(list)) return undefined;
  const children: Descriptor[] = [];
  for (const item of list) {
    const d = item as Partial<Descriptor> | null;
    if (!d || typeof d.digest !== 'string' || !digestPattern.test(d.digest) || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) return undefined;
    children.push({ digest: d.digest, size: d.size });
  }
  return children;
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
    const children = manifestChildren(await fs.readFile(blobPath(d.digest)));
    if (!children) return void problems.push(`${what} ${d.digest} is not an image manifest or index`);
    const bytes = JSON.parse((await fs.readFile(blobPath(d.digest))).toString('utf8')) as Record<string, unknown>;
    const isIndex = 'manifests' in bytes;
    if (isIndex && depth >= maxDepth) return void problems.push(`${what} ${d.digest}: indexes nested deeper than ${maxDepth}`);
    for (const child of children) await check(child, depth + 1, isIndex ? 'manifest' : 'blob');
  }
  await check(expected, 0, 'manifest');
  return problems;
}
