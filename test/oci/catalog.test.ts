import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createdToken } from '../../protocol/access.ts';
import { parseWith } from '../../protocol/parse.ts';
import { adminToken, makeTempDir, withServer, type TestServer } from '../helpers/server.ts';
import { layoutDigest, skopeo, writeLayout } from './layout.ts';

/*
 * GET /v2/_catalog as a replicating tool uses it: list the repositories, then copy each one's
 * tags with skopeo. A reader of one bundle sees only that bundle's repositories.
 */

async function makeUser(server: TestServer, name: string, bundle: string, role: string): Promise<string> {
  await server.api('POST', '/api/v1/users', { json: { name } });
  await server.api('POST', `/api/v1/bundles/${bundle}/members`, { json: { user: name, role } });
  const res = await server.api('POST', '/api/v1/tokens', { json: { name: `${name} token`, scopes: ['read'], user: name } });
  return parseWith(createdToken, res.body, 'token').token;
}

async function catalog(server: TestServer, user: string, token: string, query = '') {
  const response = await fetch(`${server.url}/v2/_catalog${query}`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}` } });
  return { status: response.status, link: response.headers.get('link'), body: (await response.json()) as any };
}

/** Follows the Link header from page to page, as distribution's clients do. */
async function wholeCatalog(server: TestServer, user: string, token: string, n: number): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let query: string | undefined = `?n=${n}`;
  let pages = 0;
  while (query !== undefined) {
    const page = await catalog(server, user, token, query);
    pages += 1;
    names.push(...page.body.repositories);
    query = page.link ? /^<\/v2\/_catalog(\?[^>]+)>; rel="next"$/.exec(page.link)?.[1] : undefined;
  }
  return { names, pages };
}

test('the catalog lists the repositories one may pull, paged with n/last and Link; skopeo copies each of them', async (t) => {
  const work = await makeTempDir('convoy-catalog-');
  try {
    await withServer(t, async (server) => {
      const registry = `127.0.0.1:${server.httpPort}`;
      for (const name of ['shop', 'lab']) t.is((await server.api('POST', '/api/v1/bundles', { json: { name } })).status, 201);
      const image = await writeLayout(path.join(work, 'src'), 'build', [4096]);
      const push = (repo: string, tag: string) => skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${adminToken}`, `oci:${image.dir}:build`, `docker://${registry}/${repo}:${tag}`]);
      for (const repo of ['shop/pos-app', 'shop/agent', 'shop/printer']) await push(repo, '1.0.0');
      await push('shop/pos-app', '1.1.0');
      await push('lab/secret', '0.1.0');

      // The admin sees every repository; pages of two follow one another through Link.
      const all = await catalog(server, 'admin', adminToken);
      t.is(all.status, 200);
      t.deepEqual(all.body, { repositories: ['lab/secret', 'shop/agent', 'shop/pos-app', 'shop/printer'] });
      t.is(all.link, null);
      const first = await catalog(server, 'admin', adminToken, '?n=2');
      t.deepEqual(first.body.repositories, ['lab/secret', 'shop/agent']);
      t.is(first.link, '</v2/_catalog?n=2&last=shop%2Fagent>; rel="next"');
      t.deepEqual(await wholeCatalog(server, 'admin', adminToken, 2), { names: all.body.repositories, pages: 2 });

      // A reporter of shop (who may pull) sees shop's three, never lab's, and pages count only what it may read.
      const reader = await makeUser(server, 'reader', 'shop', 'reporter');
      t.deepEqual((await catalog(server, 'reader', reader)).body.repositories, ['shop/agent', 'shop/pos-app', 'shop/printer']);
      const paged = await wholeCatalog(server, 'reader', reader, 1);
      t.deepEqual(paged.names, ['shop/agent', 'shop/pos-app', 'shop/printer']);
      t.is(paged.pages, 3);
      const outsider = await makeUser(server, 'outsider', 'lab', 'reporter');
      t.deepEqual((await catalog(server, 'outsider', outsider)).body.repositories, ['lab/secret']);
      t.is((await catalog(server, 'reader', reader, '?n=x')).status, 400);
      t.is((await catalog(server, 'reader', reader, '?page=2')).status, 400);

      // What a mirroring job does: for each repository in the catalog, every tag, with skopeo.
      const mirror = path.join(work, 'mirror');
      for (const repo of (await catalog(server, 'reader', reader)).body.repositories as string[]) {
        const tags = JSON.parse((await skopeo(['list-tags', '--tls-verify=false', '--creds', `reader:${reader}`, `docker://${registry}/${repo}`])).stdout);
        t.is(tags.Repository, `${registry}/${repo}`);
        await skopeo(['sync', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', '--src-creds', `reader:${reader}`, `${registry}/${repo}`, mirror]);
      }
      // Without --scoped, skopeo names each copy after the repository's last component and the tag.
      const copied = await fs.readdir(mirror);
      t.deepEqual(copied.sort(), ['agent:1.0.0', 'pos-app:1.0.0', 'pos-app:1.1.0', 'printer:1.0.0']);
      const manifest = await fs.readFile(path.join(mirror, 'pos-app:1.1.0', 'manifest.json'));
      t.true(manifest.equals(await fs.readFile(path.join(image.dir, 'blobs', 'sha256', (await layoutDigest(image.dir, 'build')).slice(7)))));
      // The outsider's token cannot sync shop's images either.
      await t.throwsAsync(skopeo(['sync', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', '--src-creds', `outsider:${outsider}`, `${registry}/shop/pos-app`, path.join(work, 'nope')]));
    });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
});
