import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { convoydBin, deviceRecord, runDaemon } from '../helpers/device.ts';
import { deploy, publishRelease } from '../helpers/release.ts';
import { makeTempDir, waitFor, withServer } from '../helpers/server.ts';
import { freePort } from '../helpers/ports.ts';

/*
 * CONVOY_MQTT_URL=mqtts://…: the server as a client of a real Mosquitto configured by `convoy
 * broker config mosquitto`, instead of the embedded aedes. An enrolled convoyd talks to Mosquitto
 * with its certificate; the release notice goes out and its status comes back through it.
 */

const exec = promisify(execFile);

test('with CONVOY_MQTT_URL the server uses Mosquitto: an enrolled device gets its notice and reports through it', async (t) => {
  const work = await makeTempDir('convoy-external-');
  const init = await convoy('http://127.0.0.1:9', ['ca', 'init', '--dir', path.join(work, 'ca'), '--name', 'External', '--dns', 'localhost', '--ip', '127.0.0.1'], { token: null });
  t.is(init.code, 0, init.stderr);
  const pki = path.join(work, 'ca', 'server');
  const port = await freePort();
  const configArgs = ['broker', 'config', 'mosquitto', '--pki', pki, '--acl-file', path.join(work, 'convoy.acl'), '--port', String(port), '--host', '127.0.0.1'];
  // The broker first (the server connects to it at start): its configuration names no device.
  const first = await convoy('http://127.0.0.1:9', configArgs, { token: null });
  t.is(first.code, 0, first.stderr);
  // As root, Mosquitto would drop to the `mosquitto` user, who cannot read these 0600 keys.
  await fs.writeFile(path.join(work, 'mosquitto.conf'), `${first.stdout}\nuser root\n`);
  const broker = spawn('mosquitto', ['-c', path.join(work, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const brokerLog: string[] = [];
  broker.stderr!.on('data', (c: Buffer) => brokerLog.push(c.toString()));
  try {
    await withServer(t, async (server) => {
      const token = await convoy(server.url, ['device', 'token', '--group', 'east', '--ttl', '10m', '--json']);
      const dir = path.join(work, 'dev-x');
      await exec(process.execPath, [convoydBin, 'enroll', '--server', server.url, '--token', JSON.parse(token.stdout).token, '--dir', dir, '--id', 'dev-x', '--mqtt-url', `mqtts://127.0.0.1:${port}`]);
      // A device joined: nothing to reconfigure (its notice comes on its own topic, test/identity/mosquitto-fleet.test.ts).

      await publishRelease(server, 'app', '1.0.0', [{ name: 'a.txt', type: 'file', bytes: Buffer.from('external\n') }]);
      const daemon = runDaemon('dev-x', dir);
      try {
        await deploy(server, 'app', '1.0.0', 'east');
        await waitFor('dev-x to report 1.0.0 installed through Mosquitto', async () => ((await deviceRecord(server, 'dev-x'))?.installed?.version === '1.0.0' ? true : undefined), 90_000);
        t.true(server.logs.some((l) => l.includes('connected to the external MQTT broker')));
      } finally {
        await daemon.stop();
      }
    }, { pkiDir: pki, mqttUrl: `mqtts://127.0.0.1:${port}` });
  } finally {
    broker.kill('SIGTERM');
  }
  t.log(brokerLog.join('').split('\n').filter((l) => /denied|error/i.test(l)).slice(0, 5).join('\n'));
});
