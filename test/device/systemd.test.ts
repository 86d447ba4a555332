import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { provisionDevice, readJournalFile, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer } from '../helpers/server.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const unitFile = path.join(repoRoot, 'device/systemd/convoyd.service');

test('the unit passes systemd-analyze verify (installed under /opt/convoy, here the checkout)', async (t) => {
  const dir = await makeTempDir('convoy-unit-');
  try {
    // The unit names /opt/convoy, where the install guide puts the program; verify checks that
    // ExecStart exists, so it is pointed at this checkout and nothing else is changed.
    const text = (await fs.readFile(unitFile, 'utf8')).replaceAll('/opt/convoy', repoRoot);
    await fs.writeFile(path.join(dir, 'convoyd.service'), text);
    const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', path.join(dir, 'convoyd.service')]);
    t.is(`${stdout}${stderr}`.trim(), '', 'no warnings');
    t.regex(text, /^Type=notify$/m);
    t.regex(text, /^WatchdogSec=/m);
    t.regex(text, /^Restart=on-failure$/m);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

interface Datagram {
  message: Buffer;
}

// The unit tunes V8 with flags of its own (docs/device-install.md). node refuses to start on a
// flag it does not know (exit 9, "bad option"), so a Node upgrade that dropped one would leave
// the device without its daemon: the node that runs the tests must accept every one of them.
test("the node in use accepts the unit's ExecStart flags", async (t) => {
  const unit = await fs.readFile(unitFile, 'utf8');
  const flags = /^ExecStart=\S*node((?: --\S+)*) \S*bin\/convoyd\.js/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
  t.true(flags.includes('--expose-gc'), `flags read from ExecStart: ${flags.join(' ')}`);
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, '-e', 'process.stdout.write(String(typeof gc))'], { env: { ...process.env, NODE_OPTIONS: '' } });
  t.is(stdout, 'function');
});

test('convoyd speaks sd_notify: READY, STATUS on each step, WATCHDOG pings, STOPPING', async (t) => {
  const unix = createRequire(import.meta.url)('unix-dgram') as {
    createSocket(type: 'unix_dgram', listener: (message: Buffer) => void): { bind(path: string): void; close(): void; on(e: 'error', l: (e: Error) => void): void };
  };
  const socketDir = await makeTempDir('convoy-notify-');
  const socketPath = path.join(socketDir, 'notify.sock');
  const received: Datagram[] = [];
  const socket = unix.createSocket('unix_dgram', (message) => received.push({ message }));
  socket.on('error', (error) => t.log(`notify socket: ${error.message}`));
  socket.bind(socketPath);
  const texts = () => received.map((d) => d.message.toString('utf8'));
  try {
    await withServer(t, async (server) => {
      await publishRelease(server, 'pos-app', '1.0.0', [{ name: 'app.bin', type: 'file', bytes: randomBytes(64 * 1024) }]);
      const dir = await provisionDevice(server, 'till-1', 'shop');
      // As systemd starts it: NOTIFY_SOCKET, and WATCHDOG_USEC for WatchdogSec=0.4s.
      const daemon = runDaemon('till-1', dir, { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '400000' });
      try {
        const ready = await waitFor('READY=1', () => texts().find((m) => m.split('\n').includes('READY=1')));
        t.regex(ready, /^STATUS=idle; running nothing$/m);
        t.regex(ready, new RegExp(`^MAINPID=${daemon.process.pid}$`, 'm'));
        await deploy(server, 'pos-app', '1.0.0', 'shop');
        await waitFor('the update to commit', async () => ((await readJournalFile(dir))?.update?.state === 'committed' ? true : undefined));
        await waitFor('a STATUS for the commit', () => texts().find((m) => m.startsWith('STATUS=committed')));
        t.truthy(texts().find((m) => m === 'STATUS=downloading pos-app@1.0.0'));
        const pings = texts().filter((m) => m === 'WATCHDOG=1').length;
        await new Promise((resolve) => setTimeout(resolve, 600));
        t.true(texts().filter((m) => m === 'WATCHDOG=1').length > pings, 'pings keep coming');
        await daemon.stop();
        t.truthy(texts().find((m) => m === 'STOPPING=1'));
      } finally {
        await daemon.stop();
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  } finally {
    socket.close();
    await fs.rm(socketDir, { recursive: true, force: true });
  }
});
