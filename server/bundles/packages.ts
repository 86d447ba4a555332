import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { createGunzip, gunzipSync } from 'node:zlib';
import { cString, paxRecord, readTarHeader } from '../../lib/tar-header.ts';
import { packageInfo, type PackageInfo, type PackageInput } from '../../protocol/api.ts';
import { ApiError } from '../http/errors.ts';

/*
 * Package metadata, read from the bytes where the format defines where it lives:
 *   deb  the `control` file inside the `control.tar[.gz|.xz|.zst]` member of the ar archive
 *        (deb(5)): Package, Version, Architecture;
 *   npm  `package/package.json` inside the gzipped tarball (`npm pack`): name, version, and
 *        architecture `all` (npm packages are not built per architecture);
 *   rpm  the main header after the lead and the signature header (RPM v3/v4 file format):
 *        NAME, EPOCH, VERSION, RELEASE, ARCH.
 * Every read is bounded: the file is untrusted input.
 */
type Fields = Partial<Pick<PackageInfo, 'name' | 'version' | 'architecture'>>;

/** Largest control.tar member, package.json, or RPM header we read (bytes). */
const maxMetadataBytes = 4 * 1024 * 1024;
/**
 * How far into an npm tarball (uncompressed) we look for package/package.json, counted while
 * inflating: npm puts it first, and a gzip of zeros inflates a thousandfold (a bomb).
 */
const maxTarScanBytes = 64 * 1024 * 1024;

const unreadable = (what: string, why: string) => new ApiError('invalid_request', `cannot read the ${what}: ${why}`);

/** Reads what the file says about itself; `{}` for formats that say nothing (generic). */
export async function readPackageFields(format: PackageInfo['format'], file: string): Promise<Fields> {
  switch (format) {
    case 'deb':
      return readDeb(file);
    case 'npm':
      return readNpm(file);
    case 'rpm':
      return readRpm(file);
    case 'generic':
      return {};
  }
}

/**
 * Merges what the file says with what the user said. The file wins where it speaks; a user
 * value that contradicts it is refused, since the signed manifest would then lie.
 */
export function resolvePackage(input: PackageInput, fromFile: Fields): PackageInfo {
  const merged: Record<string, string | undefined> = { format: input.format };
  for (const field of ['name', 'version', 'architecture'] as const) {
    const given = input[field];
    const read = fromFile[field];
    if (given !== undefined && read !== undefined && given !== read) {
      throw new ApiError('invalid_request', `package ${field} "${given}" contradicts the ${input.format} metadata in the file ("${read}")`);
    }
    merged[field] = read ?? given;
  }
  const missing = (['name', 'version', 'architecture'] as const).filter((field) => merged[field] === undefined);
  if (missing.length > 0) {
    throw new ApiError('invalid_request', `package ${missing.join(', ')} missing: a ${input.format} file does not say, give ${missing.map((m) => `package.${m}`).join(', ')}`);
  }
  const parsed = packageInfo.safeParse(merged);
  if (!parsed.success) throw new ApiError('invalid_request', `the package metadata is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

// ---- deb -------------------------------------------------------------------------------------

async function readDeb(file: string): Promise<Fields> {
  const handle = await fs.open(file, 'r');
  try {
    const magic = Buffer.alloc(8);
    await handle.read(magic, 0, 8, 0);
    if (magic.toString('latin1') !== '!<arch>\n') throw unreadable('.deb', 'not an ar archive');
    const { size: fileSize } = await handle.stat();
    let offset = 8;
    while (offset + 60 <= fileSize) {
      const header = Buffer.alloc(60);
      await handle.read(header, 0, 60, offset);
      if (header.toString('latin1', 58, 60) !== '`\n') throw unreadable('.deb', 'corrupt ar member header');
      const name = header.toString('latin1', 0, 16).trim().replace(/\/$/, '');
      const size = Number(header.toString('latin1', 48, 58).trim());
      if (!Number.isSafeInteger(size) || size < 0 || offset + 60 + size > fileSize) throw unreadable('.deb', 'ar member size out of bounds');
      if (name.startsWith('control.tar')) {
        if (size > maxMetadataBytes) throw unreadable('.deb', 'control member too large');
        const member = Buffer.alloc(size);
        await handle.read(member, 0, size, offset + 60);
        const tar = await decompress(member, name.slice('control.tar'.length));
        const control = await findInTar(chunksOf(tar), (path) => path === './control' || path === 'control', maxMetadataBytes);
        if (!control) throw unreadable('.deb', 'no control file in control.tar');
        return parseControl(control.toString('utf8'));
      }
      offset += 60 + size + (size % 2); // members are padded to an even offset
    }
    throw unreadable('.deb', 'no control.tar member');
  } finally {
    await handle.close();
  }
}

async function decompress(bytes: Buffer, suffix: string): Promise<Buffer> {
  switch (suffix) {
    case '':
      return bytes;
    case '.gz':
      try {
        return gunzipSync(bytes, { maxOutputLength: maxMetadataBytes });
      } catch {
        throw unreadable('.deb', 'control.tar.gz does not decompress (or exceeds 4 MiB)');
      }
    // Node has no xz or zstd; Debian's own tools do (xz-utils is part of every Debian system).
    case '.xz':
      return decompressWith('xz', bytes);
    case '.zst':
      return decompressWith('zstd', bytes);
    default:
      throw unreadable('.deb', `unknown control compression "${suffix}"`);
  }
}

function decompressWith(tool: string, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    let size = 0;
    let failed: ApiError | undefined;
    child.on('error', () => reject(unreadable('.deb', `control.tar needs "${tool}", which is not installed; give the package fields instead`)));
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxMetadataBytes) {
        failed = unreadable('.deb', 'control.tar exceeds 4 MiB');
        child.kill();
      } else out.push(chunk);
    });
    child.on('close', (code) => {
      if (failed) reject(failed);
      else if (code !== 0) reject(unreadable('.deb', `control.tar does not decompress with ${tool}`));
      else resolve(Buffer.concat(out));
    });
    child.stdin.on('error', () => undefined); // the tool may exit before reading everything
    child.stdin.end(input);
  });
}

/** deb-control(5): "Field: value" lines; continuation lines start with a space or tab. */
export function parseControl(text: string): Fields {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
    if (match) fields.set(match[1]!.toLowerCase(), match[2]!.trim());
  }
  const result: Fields = {};
  if (fields.get('package')) result.name = fields.get('package')!;
  if (fields.get('version')) result.version = fields.get('version')!;
  if (fields.get('architecture')) result.architecture = fields.get('architecture')!;
  return result;
}

// ---- npm -------------------------------------------------------------------------------------

async function readNpm(file: string): Promise<Fields> {
  const gunzip = createGunzip();
  const source = createReadStream(file).pipe(gunzip);
  let json: Buffer | undefined;
  try {
    json = await findInTar(source, (path) => path === 'package/package.json', 1024 * 1024, maxTarScanBytes);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw unreadable('npm tarball', 'not a gzipped tar archive');
  } finally {
    source.destroy();
  }
  if (!json) throw unreadable('npm tarball', 'no package/package.json');
  let manifest: { name?: unknown; version?: unknown };
  try {
    manifest = JSON.parse(json.toString('utf8')) as typeof manifest;
  } catch {
    throw unreadable('npm tarball', 'package.json is not JSON');
  }
  const result: Fields = { architecture: 'all' };
  if (typeof manifest.name === 'string') result.name = manifest.name;
  if (typeof manifest.version === 'string') result.version = manifest.version;
  return result;
}

// ---- rpm -------------------------------------------------------------------------------------

const rpmTags = { name: 1000, version: 1001, release: 1002, epoch: 1003, arch: 1022 } as const;

async function readRpm(file: string): Promise<Fields> {
  const handle = await fs.open(file, 'r');
  try {
    const lead = Buffer.alloc(96);
    await handle.read(lead, 0, 96, 0);
    if (lead.readUInt32BE(0) !== 0xedabeedb) throw unreadable('.rpm', 'no RPM lead');
    const signature = await readRpmHeader(handle, 96);
    // The signature header is padded to a multiple of 8 bytes; the main header follows.
    const mainOffset = 96 + signature.length + ((8 - (signature.length % 8)) % 8);
    const main = await readRpmHeader(handle, mainOffset);
    const name = main.strings.get(rpmTags.name);
    const ver = main.strings.get(rpmTags.version);
    const release = main.strings.get(rpmTags.release);
    const epoch = main.ints.get(rpmTags.epoch);
    const result: Fields = {};
    if (name) result.name = name;
    if (ver) result.version = `${epoch !== undefined ? `${epoch}:` : ''}${ver}${release ? `-${release}` : ''}`;
    const arch = main.strings.get(rpmTags.arch);
    if (arch) result.architecture = arch;
    return result;
  } finally {
    await handle.close();
  }
}

async function readRpmHeader(handle: fs.FileHandle, offset: number): Promise<{ length: number; strings: Map<number, string>; ints: Map<number, number> }> {
  const intro = Buffer.alloc(16);
  const { bytesRead } = await handle.read(intro, 0, 16, offset);
  if (bytesRead < 16 || intro.readUIntBE(0, 3) !== 0x8eade8) throw unreadable('.rpm', 'corrupt header');
  const count = intro.readUInt32BE(8);
  const dataSize = intro.readUInt32BE(12);
  const length = 16 + count * 16 + dataSize;
  if (count > 100_000 || length > maxMetadataBytes) throw unreadable('.rpm', 'header too large');
  const header = Buffer.alloc(length - 16);
  if ((await handle.read(header, 0, header.length, offset + 16)).bytesRead < header.length) throw unreadable('.rpm', 'truncated header');
  const data = header.subarray(count * 16);
  const strings = new Map<number, string>();
  const ints = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const tag = header.readUInt32BE(i * 16);
    const type = header.readUInt32BE(i * 16 + 4);
    const at = header.readUInt32BE(i * 16 + 8);
    if (at >= data.length) continue;
    if (type === 6 || type === 8 || type === 9) {
      // STRING, STRING_ARRAY, I18NSTRING: NUL-terminated; the first one is the value.
      const end = data.indexOf(0, at);
      strings.set(tag, data.toString('utf8', at, end === -1 ? data.length : end));
    } else if (type === 4 && at + 4 <= data.length) {
      ints.set(tag, data.readUInt32BE(at));
    }
  }
  return { length, strings, ints };
}

// ---- tar -------------------------------------------------------------------------------------

async function* chunksOf(bytes: Buffer): AsyncIterable<Buffer> {
  yield bytes;
}

/**
 * Streams through a tar archive (POSIX ustar, with GNU long names and pax `path`) and returns
 * the first regular file whose path matches, without holding the rest of the archive.
 */
export async function findInTar(source: AsyncIterable<Buffer>, matches: (path: string) => boolean, maxEntryBytes: number, maxScanBytes = Number.MAX_SAFE_INTEGER): Promise<Buffer | undefined> {
  // The limit holds inside an entry too: a reader past it stops pulling (and inflating) bytes.
  const reader = new ByteReader(source[Symbol.asyncIterator](), maxScanBytes);
  let longName: string | undefined;
  for (;;) {
    const header = await reader.read(512);
    if (!header || header.every((b) => b === 0)) return undefined;
    const read = readTarHeader(header);
    if (!read) throw unreadable('tar archive', 'corrupt entry size');
    const { type, size, padded } = read;
    const path = longName ?? read.path;
    longName = undefined;
    if (type === 'L' || type === 'x') {
      if (size > 64 * 1024) throw unreadable('tar archive', 'extended header too large');
      const data = await reader.read(padded);
      if (!data) return undefined;
      const text = data.toString('utf8', 0, size);
      longName = type === 'L' ? cString(data.subarray(0, size)) : paxRecord(text, 'path');
      continue;
    }
    if ((type === '0' || type === '\0') && matches(path)) {
      if (size > maxEntryBytes) throw unreadable('tar archive', `${path} is larger than ${maxEntryBytes} bytes`);
      const data = await reader.read(size);
      return data;
    }
    if (!(await reader.skip(padded))) return undefined;
  }
}


class ByteReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #done = false;
  consumed = 0;
  constructor(
    private readonly source: AsyncIterator<Buffer>,
    private readonly limit = Number.MAX_SAFE_INTEGER,
  ) {}

  async #fill(n: number): Promise<void> {
    while (this.#buffered < n && !this.#done) {
      if (this.consumed + this.#buffered > this.limit) throw unreadable('tar archive', `the file looked for is not within the first ${this.limit} bytes`);
      const next = await this.source.next();
      if (next.done) this.#done = true;
      else {
        this.#chunks.push(next.value);
        this.#buffered += next.value.length;
      }
    }
  }

  async read(n: number): Promise<Buffer | undefined> {
    await this.#fill(n);
    if (this.#buffered < n) return undefined;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = [all.subarray(n)];
    this.#buffered -= n;
    this.consumed += n;
    return all.subarray(0, n);
  }

  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.#buffered === 0) {
        if (this.consumed > this.limit) throw unreadable('tar archive', `the file looked for is not within the first ${this.limit} bytes`);
        await this.#fill(1);
        if (this.#buffered === 0) return false;
      }
      const take = Math.min(n, this.#buffered);
      const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
      this.#chunks = [all.subarray(take)];
      this.#buffered -= take;
      this.consumed += take;
      n -= take;
    }
    return true;
  }
}
