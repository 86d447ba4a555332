import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { UpdatePolicy } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import type { ArtifactType } from '../protocol/names.ts';
import { checkArchive } from './archive-check.ts';
import { describeResult, runCommand } from './command.ts';
import { UpdateError } from './errors.ts';
import { imageModule } from './image.ts';
import type { PlannedArtifact } from './state.ts';

/**
 * Update modules: one per artifact type, as in Mender. A module turns one verified artifact into
 * its part of a staged slot. It runs while staging, before the switch, and must be idempotent:
 * after a crash the slot is staged again from scratch.
 *
 * Fetching: the daemon downloads every artifact's own bytes (verified against the signed target).
 * A module whose artifact names more content (an OCI image manifest naming blobs by digest) gets
 * `fetch` to pull those by digest through the same resumable, verified downloader, in the
 * downloading step (`prepare`), so disk checks, stall detection and resume apply to them too.
 */
export interface ModuleContext {
  artifact: PlannedArtifact;
  /** The verified bytes of the artifact (read only: it is the download cache). */
  source: string;
  /** The slot directory being staged (not yet visible as `current`). */
  stageDir: string;
  /** The name the slot will have, for commands that record it. */
  slot: string;
  /** The release being staged. */
  release: { bundle: string; version: string };
  /** Where a blob fetched by `prepare` is (verified against its digest when it was fetched). */
  blobPath: (sha256: string) => string;
  log: Logger;
}

export interface UpdateModule {
  /** Extra verified content the artifact needs, fetched in the downloading step. */
  prepare?(context: { artifact: PlannedArtifact; source: string; fetch: (sha256: string, length: number) => Promise<string> }): Promise<void>;
  stage(context: ModuleContext): Promise<void>;
}

/** `file`: the bytes, placed under the artifact's name (a reflink where the file system can). */
export const fileModule: UpdateModule = {
  async stage({ artifact, source, stageDir }) {
    const target = path.join(stageDir, artifact.name);
    await fs.copyFile(source, target, constants.COPYFILE_FICLONE);
  },
};

/**
 * `archive`: a tar (plain, gzip, xz: GNU tar detects it) extracted into a directory named after
 * the artifact. Every member is checked first (archive-check.ts): only regular files,
 * directories and links that stay inside are extracted; device nodes, fifos, setuid/setgid bits
 * and absolute or escaping links refuse the archive. Ownership is not restored
 * (`--no-same-owner`), so an archive cannot plant root-owned files either.
 */
export function archiveModule(options: { timeoutMs: number }): UpdateModule {
  return {
    async stage({ artifact, source, stageDir, log }) {
      await checkArchive(source, artifact.name);
      const dir = path.join(stageDir, artifact.name);
      await fs.mkdir(dir);
      const argv = ['tar', '-x', '-f', source, '-C', dir, '--no-same-owner', '--no-overwrite-dir'];
      const result = await runCommand(argv, { cwd: stageDir, timeoutMs: options.timeoutMs, log, what: `tar ${artifact.name}` });
      if (!result.ok) throw new UpdateError('install_failed', describeResult(`extracting "${artifact.name}"`, result, options.timeoutMs), false);
    },
  };
}

/**
 * `image`, `package`: handed to a command the device configures, such as `skopeo copy
 * oci-archive:{file} containers-storage:pos:latest`, `rauc install {file}` (OS images that need a
 * bootloader A/B switch) or `dpkg -i {file}`. `{file}` is the verified artifact inside the stage
 * directory, `{slot}` the slot name, `{name}` the artifact name. Without a command the artifact is
 * placed as a file, for the application to use.
 */
export function commandModule(template: readonly string[] | undefined, options: { timeoutMs: number }): UpdateModule {
  return {
    async stage(context) {
      await fileModule.stage(context);
      if (!template) return;
      const file = path.join(context.stageDir, context.artifact.name);
      const argv = template.map((part) => part.replaceAll('{file}', file).replaceAll('{slot}', context.slot).replaceAll('{name}', context.artifact.name));
      const result = await runCommand(argv, { cwd: context.stageDir, timeoutMs: options.timeoutMs, log: context.log, what: `${context.artifact.type} ${context.artifact.name}` });
      if (!result.ok) throw new UpdateError('install_failed', describeResult(`the ${context.artifact.type} command for "${context.artifact.name}"`, result, options.timeoutMs), false);
    },
  };
}

/** `script`: an executable shipped in the release, run once in the stage directory while staging. */
export function scriptModule(options: { timeoutMs: number }): UpdateModule {
  return {
    async stage(context) {
      await fileModule.stage(context);
      const file = path.join(context.stageDir, context.artifact.name);
      await fs.chmod(file, 0o755);
      const result = await runCommand([file], {
        cwd: context.stageDir,
        env: { CONVOY_SLOT: context.slot, CONVOY_STAGE_DIR: context.stageDir },
        timeoutMs: options.timeoutMs,
        log: context.log,
        what: `script ${context.artifact.name}`,
      });
      if (!result.ok) throw new UpdateError('install_failed', describeResult(`script "${context.artifact.name}"`, result, options.timeoutMs), false);
    },
  };
}

export type ModuleTable = Record<ArtifactType, UpdateModule>;

export function defaultModules(policy: UpdatePolicy): ModuleTable {
  const timeouts = { timeoutMs: policy.hookTimeoutMs };
  return {
    file: fileModule,
    archive: archiveModule(timeouts),
    image: imageModule(commandModule(policy.modules.image, timeouts)),
    package: commandModule(policy.modules.package, timeouts),
    script: scriptModule(timeouts),
  };
}
