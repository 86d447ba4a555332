import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { createLogger } from '../../protocol/log.ts';
import { UpdateError } from '../../device/errors.ts';
import { archiveModule } from '../../device/modules.ts';
import { makeTempDir } from '../helpers/server.ts';

/*
 * Issue #14 item 10: the archive module (convoyd runs as root) extracts only regular files,
 * directories and links that stay inside the slot. Device nodes, fifos, setuid/setgid bits,
 * absolute or escaping links are refused with a clear, fatal install error, before anything is
 * extracted. Archives are built here byte by byte (ustar), extracted by the real GNU tar.
 */
interface Member {
  name: string;
  type?: string;
  mode?: number;
  data?: Buffer;
  link?: string;
  major?: number;
  minor?: number;
}

function header(m: Member): Buffer {
  const h = Buffer.alloc(512);
  const octalField = (value: number, offset: number, length: number) => h.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, 'latin1');
  h.write(m.name, 0, 'utf8');
  octalField(m.mode ?? 0o644, 100, 8);
  octalField(0, 108, 8);
  octalField(0, 116, 8);
  octalField(m.data?.length ?? 0, 124, 12);
  octalField(1_700_000_000, 136, 12);
  h.write(m.type ?? '0', 156, 'latin1');
  if (m.link) h.write(m.link, 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  octalField(m.major ?? 0, 329, 8);
  octalField(m.minor ?? 0, 337, 8);
  h.fill(0x20, 148, 156); // checksum computed over spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function tar(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(header(m));
    if (m.data?.length) parts.push(m.data, Buffer.alloc((512 - (m.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const log = createLogger({ namespace: 'test', level: 'error', write: () => {} });
const artifact = { name: 'ui', type: 'archive' as const, length: 0, sha256: 'a'.repeat(64) };

async function stage(bytes: Buffer) {
  const dir = await makeTempDir('convoy-archive-');
  const source = path.join(dir, 'source.tar');
  await fs.writeFile(source, bytes);
  const stageDir = path.join(dir, 'stage');
  await fs.mkdir(stageDir);
  const run = archiveModule({ timeoutMs: 30_000 }).stage({ artifact, source, stageDir, slot: 'pos@1.0.0-abcdef', release: { bundle: 'pos', version: '1.0.0' }, blobPath: () => '', log });
  return { dir, stageDir, run };
}

const good: Member[] = [
  { name: 'www/', type: '5', mode: 0o755 },
  { name: 'www/index.html', data: Buffer.from('<h1>till</h1>\n') },
  { name: 'www/run.sh', mode: 0o755, data: Buffer.from('#!/bin/sh\n') },
  { name: 'www/current.html', type: '2', link: 'index.html' },
  { name: 'www/sub/', type: '5', mode: 0o755 },
  { name: 'www/sub/up.html', type: '2', link: '../index.html' },
  { name: 'www/copy.html', type: '1', link: 'www/index.html' },
];

test('regular files, directories and links that stay inside are extracted', async (t) => {
  const { dir, stageDir, run } = await stage(tar(good));
  try {
    await run;
    const root = path.join(stageDir, 'ui', 'www');
    t.is(await fs.readFile(path.join(root, 'index.html'), 'utf8'), '<h1>till</h1>\n');
    t.is(await fs.readlink(path.join(root, 'current.html')), 'index.html');
    t.is(await fs.readFile(path.join(root, 'sub', 'up.html'), 'utf8'), '<h1>till</h1>\n');
    t.is(await fs.readFile(path.join(root, 'copy.html'), 'utf8'), '<h1>till</h1>\n');
    t.is((await fs.stat(path.join(root, 'run.sh'))).mode & 0o777, 0o755);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

const refused: [string, Member, RegExp][] = [
  ['a character device', { name: 'dev/mem', type: '3', mode: 0o666, major: 1, minor: 1 }, /"dev\/mem" is a character device/],
  ['a block device', { name: 'disk', type: '4', mode: 0o660, major: 8, minor: 0 }, /"disk" is a block device/],
  ['a fifo', { name: 'pipe', type: '6', mode: 0o644 }, /"pipe" is a fifo/],
  ['a setuid file', { name: 'su', mode: 0o4755, data: Buffer.from('#!/bin/sh\n') }, /"su" has the setuid bit/],
  ['a setgid file', { name: 'sg', mode: 0o2755, data: Buffer.from('#!/bin/sh\n') }, /"sg" has the setgid bit/],
  ['an absolute symlink', { name: 'passwd', type: '2', link: '/etc/passwd' }, /symlink "passwd" points to the absolute path "\/etc\/passwd"/],
  ['an escaping symlink', { name: 'www/up', type: '2', link: '../../../etc' }, /symlink "www\/up" points out of the archive's directory/],
  ['an escaping hard link', { name: 'shadow', type: '1', link: '../../etc/shadow' }, /hard link "shadow" names "..\/..\/etc\/shadow"/],
  ['an absolute name', { name: '/etc/cron.d/x', data: Buffer.from('x') }, /"\/etc\/cron.d\/x" is an absolute path/],
];

for (const [what, member, message] of refused) {
  for (const compressed of [false, true]) {
    test(`${what} refuses the archive${compressed ? ' (gzip)' : ''}, before anything is extracted`, async (t) => {
      const bytes = tar([...good.slice(0, 2), member, ...good.slice(2)]);
      const { dir, stageDir, run } = await stage(compressed ? gzipSync(bytes) : bytes);
      try {
        const error = await t.throwsAsync(run, { instanceOf: UpdateError });
        t.is(error?.code, 'install_failed');
        t.false(error?.transient, 'fatal: the same archive fails the same way');
        t.regex(error!.message, message);
        t.regex(error!.message, /only regular files, directories and links that stay inside the slot/);
        t.deepEqual(await fs.readdir(stageDir), [], 'nothing was extracted');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  }
}
