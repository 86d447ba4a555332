import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { artifact, bundleVersion, packageFormat, patchArtifactRequest, type Artifact } from '../../protocol/api.ts';
import { artifactName, artifactType, bundleName } from '../../protocol/names.ts';
import { CliError, type RequestBody } from '../client.ts';
import { command, enc, hashFile, json, need, needText, packageOptions, packageQuery, release, versionFlag, versionPath, type Command } from '../command.ts';
import { print, printErr, printJsonOr, printList } from '../output.ts';
import { createProgress } from '../progress.ts';

/* `convoy artifact …`: the files, packages and images of a draft release. */

/** Files above this go chunk by chunk through a resumable session: CONVOY_UPLOAD_CHUNK_BYTES, default 64 MiB. */
function chunkSize(env: NodeJS.ProcessEnv): number {
  const raw = env.CONVOY_UPLOAD_CHUNK_BYTES;
  if (raw === undefined || raw === '') return 64 * 1024 * 1024;
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < 65_536) throw new CliError(`CONVOY_UPLOAD_CHUNK_BYTES must be a whole number of bytes, at least 65536, got "${raw}"`);
  return Number(raw);
}

export const commands: Record<string, Command> = {
  'artifact push': command({
    usage: 'convoy artifact push FILE --bundle NAME [--version V] [--name N] [--type image|package|file] [--format deb|rpm|npm|generic [--package-name N] [--package-version V] [--arch A]] [--json]',
    options: { bundle: { type: 'string' }, version: { type: 'string' }, name: { type: 'string' }, type: { type: 'string' }, ...packageOptions, ...json },
    async run({ positionals, flags, api, env }) {
      const file = needText(positionals[0], 'FILE', 'the file to push');
      const r = { bundle: need(bundleName, flags.bundle, '--bundle'), version: versionFlag(flags.version) };
      const name = need(artifactName, flags.name ?? path.basename(file), '--name');
      const type = need(artifactType, flags.type ?? (flags.format ? 'package' : 'file'), '--type');
      const pkg = packageQuery(flags, packageFormat);
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat?.isFile()) throw new CliError(`${file} is not a readable file`);
      const client = api();
      const { digest, size } = await hashFile(file);
      // One line for CI logs; the redrawn progress line only on a terminal; --json: stdout's JSON alone.
      if (flags.json !== true) printErr(`uploading ${file} (${size} bytes, ${digest})`);
      const progressOn = flags.json !== true && process.stderr.isTTY === true;
      const chunkBytes = chunkSize(env);
      let status: number;
      let added: Artifact;
      if (size <= chunkBytes) {
        // One request: the server streams the bytes, checks them against the digest computed here,
        // and adds or replaces the artifact in the draft (creating it if needed).
        const progress = createProgress({ total: size, enabled: progressOn });
        const query = new URLSearchParams({ type, digest, ...pkg });
        ({ status, data: added } = await client.exchange('PUT', `${versionPath(r)}/files/${enc(name)}?${query}`, {
          body: Readable.toWeb(createReadStream(file, { highWaterMark: 1 << 20 }).pipe(progress.meter())) as unknown as RequestBody,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
          schema: artifact,
        }));
        progress.done();
      } else {
        // A big file: chunk by chunk through an upload session, resumed where the server has it
        // if an earlier push was cut; then the artifact names the stored blob.
        const { uploadBlob, uploadStateDir } = await import('../upload.ts');
        await uploadBlob({
          client, bundle: r.bundle, file, digest, size, chunkBytes, stateDir: uploadStateDir(env),
          startProgress: (start) => createProgress({ total: size, start, enabled: progressOn }),
          note: (text) => flags.json !== true && printErr(text),
        });
        // The draft may not exist yet (the one-request route creates it; this one does not).
        await client.request('POST', `/api/v1/bundles/${enc(r.bundle)}/versions`, { json: { version: r.version }, schema: bundleVersion }).catch((error: CliError) => {
          if (error.status !== 409) throw error;
        });
        const packageInput = pkg.format ? { format: pkg.format, ...(pkg.package_name ? { name: pkg.package_name } : {}), ...(pkg.package_version ? { version: pkg.package_version } : {}), ...(pkg.architecture ? { architecture: pkg.architecture } : {}) } : undefined;
        ({ status, data: added } = await client.exchange('PUT', `${versionPath(r)}/artifacts/${enc(name)}`, {
          json: { type, digest, size, ...(packageInput ? { package: packageInput } : {}) },
          schema: artifact,
        }));
      }
      const pkgText = added.package ? ` (${added.package.format} ${added.package.name} ${added.package.version} ${added.package.architecture})` : '';
      printJsonOr(added, flags.json === true, status === 201 ? `added ${type} ${name} to ${r.bundle}@${r.version}${pkgText}` : `replaced ${type} ${name} in ${r.bundle}@${r.version}${pkgText}`);
    },
  }),
  'artifact pull': command({
    usage: 'convoy artifact pull NAME@VERSION ARTIFACT --out PATH [--json]   (a file, or an image as an OCI layout directory; then: convoy bundle verify)',
    options: { out: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      const out = needText(flags.out, '--out PATH', 'where to write the file, or the image layout directory');
      const client = api();
      const found = await client.request('GET', `${versionPath(r)}/artifacts/${enc(name)}`, { schema: artifact });
      const { pullFile, pullImage } = await import('../pull.ts');
      if (found.type === 'image') {
        if ((await fs.readdir(out).catch(() => [])).length > 0) throw new CliError(`${out} is not empty: an image is written as a new OCI layout directory`);
        const blobs = await pullImage(client, found, out, r.version);
        printJsonOr(found, flags.json === true, `pulled image ${name} of ${r.bundle}@${r.version} into ${out} (OCI layout, ${blobs} blobs, tag ${r.version})`);
      } else {
        await pullFile(client, found, out);
        printJsonOr(found, flags.json === true, `pulled ${found.type} ${name} of ${r.bundle}@${r.version} to ${out} (${found.size} bytes, ${found.digest})`);
      }
    },
  }),
  'artifact list': command({
    usage: 'convoy artifact list NAME@VERSION [--type T] [--name N] [--search TEXT] [--format F] [--arch A] [--package-name N] [--json]',
    options: { type: { type: 'string' }, name: { type: 'string' }, search: { type: 'string' }, format: { type: 'string' }, arch: { type: 'string' }, 'package-name': { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const filters = new URLSearchParams();
      for (const [flag, param] of [['type', 'type'], ['name', 'name'], ['search', 'search'], ['format', 'format'], ['arch', 'architecture'], ['package-name', 'package_name']] as const) {
        if (typeof flags[flag] === 'string') filters.set(param, flags[flag]);
      }
      const rows = await api().requestAll(`${versionPath(r)}/artifacts${filters.size ? `?${filters}` : ''}`, artifact);
      printList(rows, [
        { header: 'NAME', value: (a) => a.name },
        { header: 'TYPE', value: (a) => a.type },
        { header: 'PACKAGE', value: (a) => (a.package ? `${a.package.format} ${a.package.name} ${a.package.version} ${a.package.architecture}` : '-') },
        { header: 'SIZE', value: (a) => String(a.size) },
        { header: 'DIGEST', value: (a) => a.digest },
      ], flags.json === true);
    },
  }),
  'artifact show': command({
    usage: 'convoy artifact show NAME@VERSION ARTIFACT [--json]',
    options: json,
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      const found = await api().request('GET', `${versionPath(r)}/artifacts/${enc(name)}`, { schema: artifact });
      printList([found], [
        { header: 'NAME', value: (x) => x.name },
        { header: 'TYPE', value: (x) => x.type },
        { header: 'PACKAGE', value: (x) => (x.package ? `${x.package.format} ${x.package.name} ${x.package.version} ${x.package.architecture}` : '-') },
        { header: 'SIZE', value: (x) => String(x.size) },
        { header: 'DIGEST', value: (x) => x.digest },
      ], flags.json === true);
    },
  }),
  'artifact update': command({
    usage: 'convoy artifact update NAME@VERSION ARTIFACT [--type T] [--format F [--package-name N] [--package-version V] [--arch A]] [--json]   (new bytes: artifact push again)',
    options: { type: { type: 'string' }, format: { type: 'string' }, 'package-name': { type: 'string' }, 'package-version': { type: 'string' }, arch: { type: 'string' }, ...json },
    async run({ positionals, flags, api }) {
      const r = release(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      const pkg = packageQuery(flags, packageFormat);
      const patch = {
        ...(typeof flags.type === 'string' ? { type: need(artifactType, flags.type, '--type') } : {}),
        ...(pkg.format ? { package: { format: pkg.format, ...(pkg.package_name ? { name: pkg.package_name } : {}), ...(pkg.package_version ? { version: pkg.package_version } : {}), ...(pkg.architecture ? { architecture: pkg.architecture } : {}) } } : {}),
      };
      need(patchArtifactRequest, patch, 'update');
      const updated = await api().request('PATCH', `${versionPath(r)}/artifacts/${enc(name)}`, { json: patch, schema: artifact });
      printJsonOr(updated, flags.json === true, `updated ${name} in ${r.bundle}@${r.version}`);
    },
  }),
  'artifact delete': command({
    usage: 'convoy artifact delete NAME@VERSION ARTIFACT',
    options: {},
    async run({ positionals, api }) {
      const r = release(positionals[0]);
      const name = need(artifactName, positionals[1], 'artifact name');
      await api().send('DELETE', `${versionPath(r)}/artifacts/${enc(name)}`);
      print(`removed ${name} from ${r.bundle}@${r.version}`);
    },
  }),
};
