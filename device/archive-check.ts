import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { paxRecord, readTarHeader } from '../lib/tar-header.ts';
import { UpdateError } from './errors.ts';

/*
 * What an `archive` artifact may hold. convoyd runs as root, and GNU tar run by root restores
 * device nodes, fifos, setuid/setgid bits and symlinks pointing anywhere. Before tar extracts
 * anything, every member is read here (tar headers, POSIX ustar with GNU long names and pax
 * `path`/`linkpath`) and checked: regular files, directories, and symbolic or hard links that
 * stay inside the extraction directory; nothing else. One bad member refuses the whole archive.
 */

export interface TarEntry {
  path: string;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory, '6' fifo, '7' contiguous file. */
  type: string;
  mode: number;
  linkTarget: string;
}

/** Why the entry may not be extracted, or undefined when it may. Pure. */
export function refusalOf(entry: TarEntry): string | undefined {
  const name = entry.path.replace(/\/+$/, '');
  const kinds: Record<string, string> = { '3': 'a character device', '4': 'a block device', '6': 'a fifo' };
  if (kinds[entry.type]) return `"${name}" is ${kinds[entry.type]}`;
  if (!['0', '\0', '7', '5', '1', '2'].includes(entry.type)) return `"${name}" is of tar type "${entry.type}", which is not extracted`;
  if (name.startsWith('/')) return `"${name}" is an absolute path`;
  if (escapes(name)) return `"${name}" leads out of the archive's directory`;
  if (entry.mode & 0o4000) return `"${name}" has the setuid bit`;
  if (entry.mode & 0o2000) return `"${name}" has the setgid bit`;
  if (entry.type === '2') {
    if (entry.linkTarget.startsWith('/')) return `symlink "${name}" points to the absolute path "${entry.linkTarget}"`;
    // A symlink's target is read relative to the directory holding it.
    if (escapes(path.posix.join(path.posix.dirname(name), entry.linkTarget))) return `symlink "${name}" points out of the archive's directory ("${entry.linkTarget}")`;
  }
  if (entry.type === '1' && (entry.linkTarget.startsWith('/') || escapes(entry.linkTarget))) return `hard link "${name}" names "${entry.linkTarget}", outside the archive's directory`;
  return undefined;
}

function escapes(relative: string): boolean {
  const normal = path.posix.normalize(relative);
  return normal === '..' || normal.startsWith('../') || relative.split('/').includes('..');
}

/** Checks every member of the archive at `file`; throws a fatal install error naming the first bad one. */
export async function checkArchive(file: string, artifactName: string): Promise<void> {
  for await (const entry of readTarEntries(await openDecompressed(file))) {
    const refusal = refusalOf(entry);
    if (refusal) {
      throw new UpdateError('install_failed', `archive "${artifactName}" refused: ${refusal}; only regular files, directories and links that stay inside the slot are extracted`, false);
    }
  }
}

/** The archive's tar bytes, whatever the compression GNU tar would detect (gzip, xz, bzip2, zstd, none). */
async function openDecompressed(file: string): Promise<AsyncIterable<Buffer>> {
  const handle = await fs.open(file, 'r');
  const magic = Buffer.alloc(6);
  try {
    await handle.read(magic, 0, 6, 0);
  } finally {
    await handle.close();
  }
  if (magic[0] === 0x1f && magic[1] === 0x8b) return createReadStream(file).pipe(createGunzip());
  const tool = magic.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
    ? 'xz'
    : magic.subarray(0, 3).toString('latin1') === 'BZh'
      ? 'bzip2'
      : magic.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))
        ? 'zstd'
        : undefined;
  if (!tool) return createReadStream(file);
  const child = spawn(tool, ['-dc', file], { stdio: ['ignore', 'pipe', 'ignore'] });
  child.on('error', () => child.stdout.destroy(new UpdateError('install_failed', `the archive needs "${tool}" to be read, which is not installed`, false)));
  return child.stdout;
}

/** Streams tar headers, skipping member data without holding it. */
export async function* readTarEntries(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  let pending: Buffer = Buffer.alloc(0);
  let skip = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let paxPath: string | undefined;
  let paxLink: string | undefined;
  /** Data of an 'L', 'K' or 'x' member being collected, and how much of it is wanted. */
  let collecting: { type: string; size: number; data: Buffer[]; got: number } | undefined;
  for await (const chunk of source) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (skip > 0) {
        const take = Math.min(skip, pending.length);
        if (collecting && collecting.got < collecting.size) {
          const part = pending.subarray(0, Math.min(take, collecting.size - collecting.got));
          collecting.data.push(part);
          collecting.got += part.length;
        }
        pending = pending.subarray(take);
        skip -= take;
        if (skip > 0) break;
        if (collecting) {
          const text = Buffer.concat(collecting.data).toString('utf8');
          if (collecting.type === 'L') longName = text.replace(/\0.*$/s, '');
          else if (collecting.type === 'K') longLink = text.replace(/\0.*$/s, '');
          else {
            paxPath = paxRecord(text, 'path') ?? paxPath;
            paxLink = paxRecord(text, 'linkpath') ?? paxLink;
          }
          collecting = undefined;
        }
      }
      if (pending.length < 512) break;
      const header = pending.subarray(0, 512);
      pending = pending.subarray(512);
      if (header.every((b) => b === 0)) continue; // end-of-archive blocks
      const read = readTarHeader(header);
      if (!read) throw new UpdateError('install_failed', 'the archive has a corrupt tar header', false);
      const { type, size, padded } = read;
      if (type === 'L' || type === 'K' || type === 'x') {
        if (size > 1024 * 1024) throw new UpdateError('install_failed', 'the archive has an extended header over 1 MiB', false);
        collecting = { type, size, data: [], got: 0 };
        skip = padded;
        continue;
      }
      if (type === 'g') {
        skip = padded; // global pax header: defaults for later members, no path of its own
        continue;
      }
      const entry: TarEntry = {
        path: paxPath ?? longName ?? read.path,
        type,
        mode: read.mode,
        linkTarget: paxLink ?? longLink ?? read.linkTarget,
      };
      longName = longLink = paxPath = paxLink = undefined;
      yield entry;
      // Only files carry data: a link or directory declaring some would be read differently by
      // GNU tar than by this check, so it is refused rather than guessed at.
      if (size > 0 && !(type === '0' || type === '\0' || type === '7')) throw new UpdateError('install_failed', `archive member "${entry.path}" of tar type "${type}" declares ${size} bytes of data`, false);
      // Links, directories and devices carry no data; a file's data is skipped unread.
      skip = type === '0' || type === '\0' || type === '7' ? padded : 0;
    }
  }
}
