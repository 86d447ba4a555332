import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir, pushArtifact, type TestServer } from './server.ts';

/** One artifact of a test release; `files` (for an archive) is what it extracts to. */
export interface TestArtifact {
  name: string;
  type: 'file' | 'archive' | 'image' | 'package' | 'script';
  bytes: Buffer;
  files?: Record<string, Buffer>;
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A real tar.gz made by GNU tar, holding `files` (relative paths). */
export async function makeTarGz(files: Record<string, Buffer>): Promise<Buffer> {
  const dir = await makeTempDir('convoy-tar-');
  try {
    for (const [name, bytes] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, 'src', name)), { recursive: true });
      await fs.writeFile(path.join(dir, 'src', name), bytes);
    }
    execFileSync('tar', ['-czf', path.join(dir, 'out.tar.gz'), '-C', path.join(dir, 'src'), ...Object.keys(files).sort()]);
    return await fs.readFile(path.join(dir, 'out.tar.gz'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export async function archiveArtifact(name: string, files: Record<string, Buffer>): Promise<TestArtifact> {
  return { name, type: 'archive', bytes: await makeTarGz(files), files };
}

/** What `current/` must hold for the release, as hashTree() reports it. */
export function expectedTree(artifacts: readonly TestArtifact[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const artifact of artifacts) {
    if (artifact.type === 'archive') for (const [name, bytes] of Object.entries(artifact.files!)) out[`${artifact.name}/${name}`] = sha256Hex(bytes);
    else out[artifact.name] = sha256Hex(artifact.bytes);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** Pushes, then approves a version, as CI would. */
export async function publishRelease(server: TestServer, bundle: string, version: string, artifacts: readonly TestArtifact[]): Promise<void> {
  if ((await server.api('GET', `/api/v1/bundles/${bundle}`)).status === 404) {
    const created = await server.api('POST', '/api/v1/bundles', { json: { name: bundle } });
    if (created.status !== 201) throw new Error(`bundle create answered ${created.status}: ${created.raw}`);
  }
  for (const artifact of artifacts) await pushArtifact(server, bundle, version, artifact.name, artifact.bytes, artifact.type);
  const approved = await server.api('POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`);
  if (approved.status !== 200) throw new Error(`approve answered ${approved.status}: ${approved.raw}`);
}

/** Deploys and returns the deployment id. */
export async function deploy(server: TestServer, bundle: string, version: string, group: string): Promise<number> {
  // force: tests deploy ahead of registering devices, and deploy downgrades on purpose.
  const deployed = await server.api('POST', '/api/v1/deployments', { json: { bundle, version, group, force: true } });
  if (deployed.status !== 201) throw new Error(`deploy answered ${deployed.status}: ${deployed.raw}`);
  return deployed.body.id;
}
