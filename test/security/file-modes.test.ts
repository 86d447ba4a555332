import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { makeTempDir, sha256Digest, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Issue #14 item 16: the database, blobs and uploads are private to the server's user: files
 * 0600, directories 0700; the data dir is created 0700, and an existing one (from an older
 * version, or made by hand with a loose umask) is tightened at start (its directories and the
 * database; the blob files inside are out of reach once their directories are 0700).
 */
const modeOf = async (p: string) => (await fs.stat(p)).mode & 0o777;
const octal = (m: number) => `0${m.toString(8)}`;

async function modes(server: TestServer, digest: string, dataDir = server.dataDir): Promise<Record<string, string>> {
  const hex = digest.slice('sha256:'.length);
  const entries: Record<string, string> = {
    '.': octal(await modeOf(dataDir)),
    blobs: octal(await modeOf(path.join(dataDir, 'blobs'))),
    'blobs/sha256': octal(await modeOf(path.join(dataDir, 'blobs', 'sha256'))),
    'blobs/sha256/<xx>': octal(await modeOf(path.join(dataDir, 'blobs', 'sha256', hex.slice(0, 2)))),
    'blobs/sha256/<xx>/<blob>': octal(await modeOf(path.join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex))),
    'blobs/uploads': octal(await modeOf(path.join(dataDir, 'blobs', 'uploads'))),
    'oci-uploads': octal(await modeOf(path.join(dataDir, 'oci-uploads'))),
  };
  if (!server.databaseUrl) entries['convoy.sqlite'] = octal(await modeOf(path.join(dataDir, 'convoy.sqlite')));
  return entries;
}

const privateModes = (server: TestServer) => ({
  '.': '0700', blobs: '0700', 'blobs/sha256': '0700', 'blobs/sha256/<xx>': '0700', 'blobs/sha256/<xx>/<blob>': '0600', 'blobs/uploads': '0700', 'oci-uploads': '0700',
  ...(server.databaseUrl ? {} : { 'convoy.sqlite': '0600' }),
});

test('a new data dir, its database, blobs and uploads are private (0700 dirs, 0600 files)', async (t) => {
  const parent = await makeTempDir('convoy-modes-');
  const previous = process.umask(0o022); // the usual umask, whatever the test runner has
  try {
    await withServer(
      t,
      async (server) => {
        const dataDir = path.join(parent, 'data');
        const bytes = Buffer.from('secret firmware\n');
        const digest = sha256Digest(bytes);
        t.is((await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
        // An OCI upload session's temp file, too.
        t.is((await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } })).status, 201);
        const started = await server.api('POST', '/v2/pos/app/blobs/uploads/');
        t.is(started.status, 202);
        const sessions = await fs.readdir(path.join(dataDir, 'oci-uploads'));
        t.true(sessions.length > 0);
        for (const name of sessions) t.is(octal(await modeOf(path.join(dataDir, 'oci-uploads', name))), '0600', `oci-uploads/${name}`);
        t.deepEqual(await modes(server, digest, dataDir), privateModes(server));
        if (!server.databaseUrl) {
          for (const name of (await fs.readdir(dataDir)).filter((n) => n.startsWith('convoy.sqlite-'))) t.is(octal(await modeOf(path.join(dataDir, name))), '0600', name);
        }
      },
      { dataDir: path.join(parent, 'data') },
    );
  } finally {
    process.umask(previous);
    await fs.rm(parent, { recursive: true, force: true });
  }
});

test('an existing data dir with loose modes is tightened at start', async (t) => {
  const previous = process.umask(0o022);
  try {
    await withServer(t, async (server) => {
      const bytes = Buffer.from('older blob\n');
      const digest = sha256Digest(bytes);
      t.is((await server.api('PUT', `/api/v1/blobs/${digest}`, { body: bytes, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
      const hex = digest.slice(7);
      // As an older version (or a hand-made directory under umask 022) left them.
      for (const dir of ['.', 'blobs', 'blobs/sha256', `blobs/sha256/${hex.slice(0, 2)}`, 'blobs/uploads', 'oci-uploads']) await fs.chmod(path.join(server.dataDir, dir), 0o755);
      if (!server.databaseUrl) await fs.chmod(path.join(server.dataDir, 'convoy.sqlite'), 0o644);
      await server.restart();
      t.deepEqual(await modes(server, digest), privateModes(server));
    });
  } finally {
    process.umask(previous);
  }
});
