import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** A real .deb, built by Debian's own dpkg-deb (control.tar compressed as asked). */
export async function makeDeb(dir: string, pkg: { name: string; version: string; architecture: string }, compression: 'xz' | 'gzip' | 'none' = 'xz'): Promise<string> {
  const root = path.join(dir, `${pkg.name}-root-${compression}`);
  await fs.mkdir(path.join(root, 'DEBIAN'), { recursive: true });
  await fs.mkdir(path.join(root, 'usr/share/doc', pkg.name), { recursive: true });
  await fs.writeFile(path.join(root, 'usr/share/doc', pkg.name, 'README'), `the ${pkg.name} package\n`);
  await fs.writeFile(
    path.join(root, 'DEBIAN/control'),
    `Package: ${pkg.name}\nVersion: ${pkg.version}\nArchitecture: ${pkg.architecture}\nMaintainer: Convoy Tests <tests@example.org>\nDescription: a test package\n with a continuation line\n`,
  );
  const out = path.join(dir, `${pkg.name}_${pkg.version}_${pkg.architecture}.${compression}.deb`);
  await exec('dpkg-deb', ['--root-owner-group', `-Z${compression}`, '--build', root, out]);
  return out;
}

/** A real npm tarball, made by `npm pack`. */
export async function makeNpmTarball(dir: string, pkg: { name: string; version: string }): Promise<string> {
  const root = path.join(dir, `npm-${pkg.name.replace(/[@/]/g, '_')}`);
  await fs.mkdir(root, { recursive: true });
  await fs.writeFile(path.join(root, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, main: 'index.js' }));
  await fs.writeFile(path.join(root, 'index.js'), 'module.exports = 42;\n');
  const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root });
  return path.join(dir, (JSON.parse(stdout) as { filename: string }[])[0]!.filename);
}

/**
 * An RPM file (v3 lead, empty signature header, main header with NAME, VERSION, RELEASE, ARCH
 * and EPOCH), laid out byte for byte as the RPM file format describes; no payload is needed to
 * read the metadata.
 */
export function makeRpm(pkg: { name: string; version: string; release: string; arch: string; epoch?: number }): Buffer {
  const lead = Buffer.alloc(96);
  lead.writeUInt32BE(0xedabeedb, 0);
  lead.writeUInt8(3, 4);
  lead.write(`${pkg.name}-${pkg.version}-${pkg.release}`.slice(0, 65), 10, 'latin1');
  const header = (entries: { tag: number; type: number; data: Buffer }[]) => {
    const index = Buffer.alloc(entries.length * 16);
    const store: Buffer[] = [];
    let offset = 0;
    entries.forEach((entry, i) => {
      index.writeUInt32BE(entry.tag, i * 16);
      index.writeUInt32BE(entry.type, i * 16 + 4);
      index.writeUInt32BE(offset, i * 16 + 8);
      index.writeUInt32BE(1, i * 16 + 12);
      store.push(entry.data);
      offset += entry.data.length;
    });
    const intro = Buffer.alloc(16);
    intro.writeUInt32BE(0x8eade801, 0);
    intro.writeUInt32BE(entries.length, 8);
    intro.writeUInt32BE(offset, 12);
    return Buffer.concat([intro, index, ...store]);
  };
  const str = (text: string) => Buffer.from(`${text}\0`);
  const int = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const signature = header([]);
  const entries = [
    ...(pkg.epoch !== undefined ? [{ tag: 1003, type: 4, data: int(pkg.epoch) }] : []),
    { tag: 1000, type: 6, data: str(pkg.name) },
    { tag: 1001, type: 6, data: str(pkg.version) },
    { tag: 1002, type: 6, data: str(pkg.release) },
    { tag: 1022, type: 6, data: str(pkg.arch) },
  ];
  const pad = Buffer.alloc((8 - (signature.length % 8)) % 8);
  return Buffer.concat([lead, signature, pad, header(entries), Buffer.from('payload would follow')]);
}
