import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { convoy } from '../helpers/cli.ts';
import { convoydBin } from '../helpers/device.ts';
import { makeTempDir, withServer, type TestServer } from '../helpers/server.ts';

/*
 * An operator who leaked a batch enrollment token lists the live ones and revokes it; a device
 * holding it is then refused with a reason. And `convoy device show` says when a device's
 * certificate expires. Real processes (convoy, convoyd enroll), real HTTP, SQLite or PostgreSQL.
 */

const exec = promisify(execFile);

async function enroll(server: TestServer, token: string, dir: string, id: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [convoydBin, 'enroll', '--server', server.url, '--token', token, '--dir', dir, '--id', id]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function makeToken(server: TestServer, args: string[]): Promise<{ id: number; token: string }> {
  const made = await convoy(server.url, ['device', 'token', ...args, '--json']);
  if (made.code !== 0) throw new Error(`convoy device token failed: ${made.stderr}`);
  return JSON.parse(made.stdout);
}

async function liveTokens(server: TestServer, args: string[] = []): Promise<Array<{ id: number; group: string | null; device: string | null; uses: number; usesLeft: number; expiresAt: string; createdBy: string }>> {
  const listed = await convoy(server.url, ['device', 'token', 'list', ...args, '--json']);
  if (listed.code !== 0) throw new Error(`convoy device token list failed: ${listed.stderr}`);
  return JSON.parse(listed.stdout);
}

test('live enrollment tokens are listed with uses left, expiry and maker, never the secret; a revoked one is refused by name', async (t) => {
  await withServer(t, async (server) => {
    const batch = await makeToken(server, ['--group', 'tills', '--ttl', '1h', '--uses', '3']);
    const other = await makeToken(server, ['--group', 'pumps', '--ttl', '2h']);

    const listed = await convoy(server.url, ['device', 'token', 'list']);
    t.is(listed.code, 0, listed.stderr);
    t.regex(listed.stdout, new RegExp(`^${batch.id}\\s+group tills\\s+3/3\\s+\\S+\\s+admin at `, 'm'));
    t.regex(listed.stdout, new RegExp(`^${other.id}\\s+group pumps\\s+1/1`, 'm'));
    // The secret is only shown once, at creation: neither the table, the JSON nor the API echo it.
    const asJson = await convoy(server.url, ['device', 'token', 'list', '--json']);
    const api = await server.api('GET', '/api/v1/enrollment-tokens');
    for (const text of [listed.stdout, asJson.stdout, api.raw.toString()]) {
      t.false(text.includes(batch.token), 'the batch token is not shown');
      t.false(text.includes(other.token), 'the other token is not shown');
    }
    t.deepEqual((await liveTokens(server, ['--group', 'tills'])).map((row) => row.id), [batch.id], '--group narrows the list');

    // One device enrolls: a use is gone.
    const base = await makeTempDir('convoy-enroll-tokens-');
    t.is((await enroll(server, batch.token, path.join(base, 'a'), 'till-1')).code, 0);
    t.like((await liveTokens(server)).find((row) => row.id === batch.id), { usesLeft: 2, uses: 3, group: 'tills', createdBy: 'admin' });

    // Leaked: the operator revokes it; the list drops it and the next device is told why.
    const revoked = await convoy(server.url, ['device', 'token', 'revoke', String(batch.id)]);
    t.is(revoked.code, 0, revoked.stderr);
    t.regex(revoked.stdout, new RegExp(`revoked enrollment token ${batch.id} .*nobody enrolls with it`));
    t.deepEqual((await liveTokens(server)).map((row) => row.id), [other.id]);
    const refused = await enroll(server, batch.token, path.join(base, 'b'), 'till-2');
    t.is(refused.code, 1);
    t.regex(refused.stderr, /enrollment token was revoked at .*\(unauthenticated\)/);
    const answer = await server.api('GET', '/api/v1/devices/till-2');
    t.is(answer.status, 404, 'nothing was registered');

    // Revoking again changes nothing and says when; an unknown id is a typed 404.
    const again = await server.api('DELETE', `/api/v1/enrollment-tokens/${batch.id}`);
    t.is(again.status, 200);
    t.regex(again.body.revokedAt, /^\d{4}-/);
    const unknown = await server.api('DELETE', '/api/v1/enrollment-tokens/999999');
    t.is(unknown.status, 404);
    t.is(unknown.body.error.code, 'not_found');
    const usage = await convoy(server.url, ['device', 'token', 'revoke']);
    t.is(usage.code, 2);

    // A token used up drops out of the live list too.
    t.is((await enroll(server, other.token, path.join(base, 'c'), 'pump-1')).code, 0);
    t.deepEqual(await liveTokens(server), []);
    t.regex((await convoy(server.url, ['device', 'token', 'list'])).stdout, /\(none\)/);
  });
});

test("a device's certificates show serial, fingerprint and expiry, and that they were revoked", async (t) => {
  await withServer(t, async (server) => {
    const dir = path.join(await makeTempDir('convoy-enroll-certs-'), 'device');
    t.is((await enroll(server, (await makeToken(server, ['--group', 'field', '--ttl', '1h'])).token, dir, 'meter-4')).code, 0);
    const cert = new X509Certificate(await fs.readFile(path.join(dir, 'device.pem')));
    const notAfter = new Date(cert.validTo).toISOString();

    const shown = await convoy(server.url, ['device', 'show', 'meter-4']);
    t.is(shown.code, 0, shown.stderr);
    t.regex(shown.stdout, new RegExp(`serial ${cert.serialNumber.toLowerCase().replace(/^(00)+/, '')}: not after ${notAfter}, valid, issued .*SHA-256 ${cert.fingerprint256}`));

    const listed = await server.api('GET', '/api/v1/devices/meter-4/certificates');
    t.is(listed.status, 200);
    t.is(listed.body.certificates.length, 1);
    t.like(listed.body.certificates[0], { fingerprint: cert.fingerprint256, notAfter, revokedAt: null });

    t.is((await convoy(server.url, ['device', 'revoke', 'meter-4'])).code, 0);
    const json = JSON.parse((await convoy(server.url, ['device', 'show', 'meter-4', '--json'])).stdout);
    t.regex(json.certificates[0].revokedAt, /^\d{4}-/, 'a revoked device still shows its certificate, revoked');
    t.regex((await convoy(server.url, ['device', 'show', 'meter-4'])).stdout, /not after .*, revoked \d{4}-/);

    const registered = await server.api('POST', '/api/v1/devices', { json: { id: 'plain-1', group: 'field' } });
    t.is(registered.status, 201);
    t.deepEqual((await server.api('GET', '/api/v1/devices/plain-1/certificates')).body, { device: 'plain-1', certificates: [] });
    t.regex((await convoy(server.url, ['device', 'show', 'plain-1'])).stdout, /certificates:\n {2}none/);
    t.is((await server.api('GET', '/api/v1/devices/nobody/certificates')).status, 404);
  });
});
