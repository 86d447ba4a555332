import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { convoyBin } from '../helpers/device.ts';
import { adminToken, makeTempDir, waitFor, withServer } from '../helpers/server.ts';

// #9 §2.8: a big push cut short (the CLI killed mid-way) resumes where the server has it.

test('an interrupted artifact push resumes from the bytes the server holds, and the artifact is whole', async (t) => {
  await withServer(t, async (server) => {
    const work = await makeTempDir();
    try {
      await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
      const bytes = randomBytes(4 * 1024 * 1024);
      const file = path.join(work, 'big.bin');
      await fs.writeFile(file, bytes);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const stateHome = path.join(work, 'state');
      // Small chunks, so the push is many requests and a kill lands between them.
      const env = { CONVOY_UPLOAD_CHUNK_BYTES: '65536', XDG_STATE_HOME: stateHome };
      const args = ['artifact', 'push', file, '--bundle', 'pos', '--version', '1.0.0'];

      const first = spawn(process.execPath, [convoyBin, ...args], { env: { ...process.env, CONVOY_URL: server.url, CONVOY_TOKEN: adminToken, ...env }, stdio: 'ignore' });
      const exited = new Promise((resolve) => first.once('exit', resolve));
      const stateDir = path.join(stateHome, 'convoy', 'uploads');
      const location = await waitFor('the push to record its session', async () => {
        const [name] = await fs.readdir(stateDir).catch(() => []);
        return name ? (JSON.parse(await fs.readFile(path.join(stateDir, name), 'utf8')) as { location: string }).location : undefined;
      });
      await waitFor('a quarter of the file on the server', async () => {
        const status = await fetch(`${server.url}${location}`, { headers: { authorization: `Bearer ${adminToken}` } });
        const held = Number(/^0-(\d+)$/.exec(status.headers.get('range') ?? '')?.[1] ?? 0);
        return held >= bytes.length / 4 ? true : undefined;
      }, 60_000, 20);
      first.kill('SIGKILL');
      await exited;
      t.is((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts/big.bin')).status, 404, 'the cut push added nothing');

      const resumed = await convoy(server.url, args, { env });
      t.is(resumed.code, 0, resumed.stderr);
      const at = Number(/resuming at byte (\d+) of 4194304/.exec(resumed.stderr)?.[1]);
      t.true(at >= bytes.length / 4 && at % 65536 === 0, resumed.stderr);
      t.is(resumed.stdout, 'added file big.bin to pos@1.0.0\n');
      t.like((await server.api('GET', '/api/v1/bundles/pos/versions/1.0.0/artifacts/big.bin')).body, { digest, size: bytes.length });
      t.true((await server.api('GET', `/api/v1/blobs/${digest}`)).raw.equals(bytes));
      t.deepEqual(await fs.readdir(stateDir), [], 'the finished session is forgotten');

      // The same bytes again: the server has them, nothing is sent, the artifact is replaced.
      const again = await convoy(server.url, args, { env });
      t.is(again.stdout, 'replaced file big.bin in pos@1.0.0\n', again.stderr);
      t.notRegex(again.stderr, /resuming/);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
