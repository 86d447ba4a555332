import { spawn } from 'node:child_process';
import test from 'ava';
import mqtt from 'mqtt';
import { bundleReleaseNotice, bundleReleasesTopic } from '../../protocol/messages.ts';
import { parseWith } from '../../protocol/parse.ts';
import { adminToken, pushArtifact, waitFor, withServer, type TestServer } from '../helpers/server.ts';

/*
 * Release notices over MQTT, heard with Debian's stock `mosquitto_sub` (mosquitto-clients), the
 * way a CI job or a dashboard would: user name plus access token, one topic per bundle.
 */

interface Sub {
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  /** Ends the client if still running (by its own pid). */
  stop(): void;
}

function mosquittoSub(port: number, user: string, password: string, topic: string, extra: string[] = []): Sub {
  const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-t', topic, '-q', '1', '-i', `${user}:sub-${Date.now()}`, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sub: Sub = {
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
  child.stdout.on('data', (chunk: Buffer) => (sub.stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (sub.stderr += chunk.toString('utf8')));
  return sub;
}

async function userWithToken(server: TestServer, name: string, scopes: string[], bundle?: { name: string; role: string }): Promise<string> {
  await server.api('POST', '/api/v1/users', { json: { name } });
  if (bundle) await server.api('POST', `/api/v1/bundles/${bundle.name}/members`, { json: { user: name, role: bundle.role } });
  const created = await server.api('POST', '/api/v1/tokens', { json: { name: 'mqtt', scopes, user: name } });
  return created.body.token;
}

test('approving publishes a retained notice that mosquitto_sub hears, only for users who may read the bundle', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    await server.api('POST', '/api/v1/bundles', { json: { name: 'secret-app' } });
    const reporter = await userWithToken(server, 'dashboard', ['read'], { name: 'pos-app', role: 'reporter' });
    const guest = await userWithToken(server, 'follower', ['read'], { name: 'pos-app', role: 'guest' });
    const approver = await userWithToken(server, 'release-manager', ['read', 'approve'], { name: 'pos-app', role: 'maintainer' });
    const outsider = await userWithToken(server, 'outsider', ['read']);
    const topic = bundleReleasesTopic('pos-app');
    const subs: Sub[] = [];
    try {
      // Wrong password: the broker refuses the connection and mosquitto_sub says so.
      const refused = mosquittoSub(server.mqttPort, 'dashboard', 'cvy_not-the-right-token-at-all', topic, ['-C', '1', '-W', '10']);
      subs.push(refused);
      t.not(await refused.exited, 0);
      t.regex(refused.stderr, /not authori[sz]ed|bad user name or password|refused/i);

      // Live subscribers: the reporter on the bundle's topic, an outsider on every bundle's.
      const live = mosquittoSub(server.mqttPort, 'dashboard', reporter, topic, ['-C', '1', '-W', '60']);
      const wildcard = mosquittoSub(server.mqttPort, 'outsider', outsider, bundleReleasesTopic('+'), ['-v', '-W', '60']);
      subs.push(live, wildcard);
      await new Promise((resolve) => setTimeout(resolve, 1000)); // let both subscribe

      await pushArtifact(server, 'pos-app', '1.2.0', 'app.txt', Buffer.from('release\n'));
      await pushArtifact(server, 'secret-app', '0.1.0', 'x.txt', Buffer.from('secret\n'));
      const approved = await server.api('POST', '/api/v1/bundles/pos-app/versions/1.2.0/approve', { token: approver });
      t.is(approved.status, 200);
      t.is((await server.api('POST', '/api/v1/bundles/secret-app/versions/0.1.0/approve')).status, 200);

      t.is(await live.exited, 0, live.stderr);
      const notice = parseWith(bundleReleaseNotice, JSON.parse(live.stdout.trim()), 'notice');
      t.like(notice, { type: 'approved', bundle: 'pos-app', version: '1.2.0', manifestDigest: approved.body.manifestDigest, approvers: ['release-manager'], at: approved.body.approvedAt });

      // Retained: a guest who connects later still hears it at once.
      const late = mosquittoSub(server.mqttPort, 'follower', guest, topic, ['-C', '1', '-W', '20']);
      subs.push(late);
      t.is(await late.exited, 0, late.stderr);
      t.is(JSON.parse(late.stdout.trim()).version, '1.2.0');

      // The outsider's wildcard subscription delivered nothing: neither bundle is theirs.
      await new Promise((resolve) => setTimeout(resolve, 500));
      t.is(wildcard.stdout, '', 'no notice reached a user who may not read the bundle');

      // Subscribing to a bundle one cannot read is refused (SUBACK failure) and nothing arrives.
      const denied = mosquittoSub(server.mqttPort, 'outsider', outsider, bundleReleasesTopic('secret-app'), ['-C', '1', '-W', '3', '-d']);
      subs.push(denied);
      await denied.exited;
      t.is(denied.stdout.includes('"secret-app"'), false);
      t.regex(denied.stdout, /Subscribed \(mid: 1\): 128/, 'SUBACK 0x80: failure (MQTT 3.1.1 §3.9.3)');
      t.regex(denied.stderr, /subscription requests were denied/);
    } finally {
      for (const sub of subs) sub.stop();
    }
  });
});

test('a connection ends when its token expires', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/users', { json: { name: 'short' } });
    // The token must still be valid when the connection is made: a loaded CI machine took over
    // 2 s for the token request and the MQTT sign-in, so the lifetime leaves room for that.
    const expiresAt = new Date(Date.now() + 6_000).toISOString();
    const token = (await server.api('POST', '/api/v1/tokens', { json: { name: 'brief', scopes: ['read'], user: 'short', expiresAt } })).body.token;
    const client = mqtt.connect(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'short', password: token, reconnectPeriod: 0, clientId: 'short:notices' });
    // Listened for before the sign-in completes, so a close however early is never missed.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const connected = await new Promise<boolean>((resolve) => {
      client.once('connect', () => resolve(true));
      client.once('error', () => resolve(false));
      client.once('close', () => resolve(false));
    });
    t.true(connected, `signed in before the token expired (at ${expiresAt}, now ${new Date().toISOString()})`);
    await closed;
    t.true(Date.now() >= Date.parse(expiresAt) - 50, 'closed at expiry, not before');
    await client.endAsync(true);
  });
});

test('notices survive a restart (announced again) and a revoked token is disconnected', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    await pushArtifact(server, 'pos-app', '2.0.0', 'app.txt', Buffer.from('two\n'));
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/2.0.0/approve')).status, 200);
    const token = await userWithToken(server, 'ci', ['read'], { name: 'pos-app', role: 'reporter' });
    await server.restart();

    const after = mosquittoSub(server.mqttPort, 'ci', token, bundleReleasesTopic('pos-app'), ['-C', '1', '-W', '20']);
    try {
      t.is(await after.exited, 0, after.stderr);
      t.like(JSON.parse(after.stdout.trim()), { version: '2.0.0', approvers: ['admin'] });
    } finally {
      after.stop();
    }

    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'ci', password: token, reconnectPeriod: 0, clientId: 'ci:notices' });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const list = await server.api('GET', '/api/v1/tokens?user=ci');
    t.is((await server.api('DELETE', `/api/v1/tokens/${list.body[0].id}`)).status, 200);
    await closed;
    await client.endAsync(true);
    await waitFor('the revoked token to be refused', async () => {
      try {
        const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'ci', password: token, reconnectPeriod: 0, clientId: 'ci:notices' });
        await again.endAsync(true);
        return undefined;
      } catch {
        return true;
      }
    });
    t.pass();
  });
});

/**
 * What a subscriber connecting now hears on a topic: the retained message, if any (sent right
 * after SUBACK), and anything published while it listens for `ms`.
 */
async function listen(server: TestServer, topic: string, ms: number, during?: () => Promise<void>): Promise<{ payload: string; retain: boolean }[]> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.mqttPort}`, { username: 'admin', password: adminToken, reconnectPeriod: 0, clean: true, clientId: `admin:listen-${Math.random().toString(36).slice(2, 10)}` });
  const heard: { payload: string; retain: boolean }[] = [];
  client.on('message', (_topic, payload, packet) => heard.push({ payload: payload.toString('utf8'), retain: packet.retain }));
  try {
    await client.subscribeAsync(topic, { qos: 1 });
    await during?.();
    await new Promise((resolve) => setTimeout(resolve, ms));
  } finally {
    await client.endAsync(true);
  }
  return heard;
}

const notices = (heard: { payload: string }[]) => heard.map((m) => parseWith(bundleReleaseNotice, JSON.parse(m.payload), 'notice'));

test('revoking withdraws the release notice: live subscribers hear it, later ones and those after a restart never hear the revoked version as approved', async (t) => {
  await withServer(t, async (server) => {
    const topic = bundleReleasesTopic('pos-app');
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos-app' } });
    for (const version of ['1.0.0', '1.1.0']) {
      await pushArtifact(server, 'pos-app', version, 'app.txt', Buffer.from(`${version}\n`));
      t.is((await server.api('POST', `/api/v1/bundles/pos-app/versions/${version}/approve`)).status, 200);
    }
    t.like(notices(await listen(server, topic, 300)), [{ type: 'approved', version: '1.1.0' }]);

    // Revoking the newest: a live subscriber hears it withdrawn, then the release that is newest now.
    const live = await listen(server, topic, 500, async () => {
      t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.1.0/revoke', { json: { reason: 'crashes at start' } })).status, 200);
    });
    t.deepEqual(live.map((m) => m.retain), [true, false, false]);
    t.deepEqual(notices(live).map((n) => [n.type, n.version]), [['approved', '1.1.0'], ['withdrawn', '1.1.0'], ['approved', '1.0.0']]);
    const retainedNow = async () => notices((await listen(server, topic, 300)).filter((m) => m.retain));
    t.like(await retainedNow(), [{ type: 'approved', version: '1.0.0', approvers: ['admin'] }]);
    await server.restart();
    t.like(await retainedNow(), [{ type: 'approved', version: '1.0.0' }], 'the start-up announcement skips the revoked version');

    // Revoking the last release clears the retained notice (an empty retained payload, MQTT 3.1.1 §3.3.1.3).
    t.is((await server.api('POST', '/api/v1/bundles/pos-app/versions/1.0.0/revoke', { json: { reason: 'superseded by a fix' } })).status, 200);
    t.deepEqual(await listen(server, topic, 300), [], 'no retained notice is left');
    await server.restart();
    t.deepEqual(await listen(server, topic, 300), [], 'and none is announced again at start');
  });
});
