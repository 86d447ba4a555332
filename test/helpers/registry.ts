import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir } from './server.ts';

/*
 * A real CNCF distribution registry (Debian's `docker-registry`) on an ephemeral loopback port,
 * with HTTP Basic (htpasswd) so credentials are exercised. Ended by its pid.
 */

export interface TestRegistry {
  url: string;
  host: string;
  username: string;
  password: string;
  dir: string;
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** bcrypt for htpasswd (distribution accepts only bcrypt; Python's crypt module makes one), at the lowest cost (4): the registry checks it on every request, and cost 12 takes ~0.5 s here. */
async function bcrypt(password: string): Promise<string> {
  const { stdout } = await run('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))', password]);
  return stdout.trim();
}

export async function startRegistry(options: { username?: string; password?: string; port?: number } = {}): Promise<TestRegistry> {
  const dir = await makeTempDir('convoy-registry-');
  const username = options.username ?? 'site';
  const password = options.password ?? `pw-${Math.random().toString(36).slice(2)}`;
  await fs.writeFile(path.join(dir, 'htpasswd'), `${username}:${await bcrypt(password)}\n`);
  await fs.writeFile(
    path.join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: info}',
      `storage: {filesystem: {rootdirectory: ${path.join(dir, 'data')}}, delete: {enabled: true}}`,
      `http: {addr: "127.0.0.1:${options.port ?? 0}"}`,
      `auth: {htpasswd: {realm: convoy-test, path: ${path.join(dir, 'htpasswd')}}}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start: ${seen.slice(-500)}`)), 15_000);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`docker-registry exited with ${code}: ${seen.slice(-500)}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    username,
    password,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
