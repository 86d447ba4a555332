import fs from 'node:fs/promises';
import path from 'node:path';
import { initCeremony, type CeremonyResult } from '../../certs/ceremony.ts';
import { toBytes } from '../../tuf/repository.ts';
import { deviceRecord, provisionDevice } from '../helpers/device.ts';
import { makeTempDir, pushArtifact, waitFor, type TestServer } from '../helpers/server.ts';

/** Runs the offline key ceremony and lays its server/ folder into a fresh data dir, as an operator would. */
export async function offlineRootDataDir(options: { targetsKeys?: Parameters<typeof initCeremony>[0]['targetsKeys']; targetsThreshold?: number } = {}): Promise<{ dataDir: string; ceremony: CeremonyResult }> {
  const dataDir = await makeTempDir('convoy-offline-root-');
  const ceremony = initCeremony({ rootKeys: 3, rootThreshold: 2, now: new Date(), ...options });
  await fs.mkdir(path.join(dataDir, 'keys'), { recursive: true, mode: 0o700 });
  await fs.mkdir(path.join(dataDir, 'tuf'), { recursive: true });
  for (const { role, key } of ceremony.online) await fs.writeFile(path.join(dataDir, 'keys', `${role}.pem`), key.privateKeyPem, { mode: 0o600 });
  await fs.writeFile(path.join(dataDir, 'tuf', '1.root.json'), toBytes(ceremony.root));
  await fs.writeFile(path.join(dataDir, 'tuf', 'root.json'), toBytes(ceremony.root));
  return { dataDir, ceremony };
}

/** Registers a device whose HTTP traffic goes through `serverUrl` (a mirror) and MQTT straight to the server. */
export function provisionThrough(server: TestServer, id: string, group: string, serverUrl: string, tuning: { timeoutSeconds: number; trustCheckSeconds: number }): Promise<string> {
  return provisionDevice(server, id, group, { serverUrl, tuning });
}

export async function publish(server: TestServer, bundle: string, version: string, files: Record<string, Buffer>, token?: string) {
  for (const [name, bytes] of Object.entries(files)) await pushArtifact(server, bundle, version, name, bytes);
  const approved = await server.api('POST', `/api/v1/bundles/${bundle}/versions/${version}/approve`, token ? { token } : {});
  if (approved.status !== 200) throw new Error(`approve answered ${approved.status}: ${approved.raw}`);
  return approved.body as { manifestDigest: string; status: string };
}

export async function deploy(server: TestServer, bundle: string, version: string, group: string): Promise<void> {
  // force: the attacks deploy downgrades on purpose, to show the device refuses them itself.
  const deployed = await server.api('POST', '/api/v1/deployments', { json: { bundle, version, group, force: true } });
  if (deployed.status !== 201) throw new Error(`deploy answered ${deployed.status}: ${deployed.raw}`);
}

export { deviceRecord };

/** Waits until the device reports `check` true about its record; returns the record. */
export function waitForDevice(server: TestServer, id: string, what: string, check: (record: any) => boolean, timeoutMs = 30_000) {
  return waitFor(what, async () => {
    const record = await deviceRecord(server, id);
    return record && check(record) ? record : undefined;
  }, timeoutMs);
}
