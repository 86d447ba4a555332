import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { withServer } from '../helpers/server.ts';

/**
 * A token's last use is recorded to the minute: every request wrote it before, one more commit
 * (and disk sync on SQLite) per API call, device polls included.
 */
test("a token's lastUsedAt is set on first use and written at most once a minute after that", async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/users', { json: { name: 'dev' } });
    const token = (await server.api('POST', '/api/v1/tokens', { json: { name: 'dev token', scopes: ['read'], user: 'dev' } })).body.token as string;
    const lastUsed = async () => ((await server.api('GET', '/api/v1/tokens', { token })).body as { lastUsedAt: string | null }[])[0]!.lastUsedAt;
    const first = await lastUsed();
    t.truthy(first, 'the first request records its use');
    await sleep(30);
    for (let i = 0; i < 3; i++) await server.api('GET', '/api/v1/user', { token });
    t.is(await lastUsed(), first, 'uses within the minute keep the recorded time');
  });
});
