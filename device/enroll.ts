import fs from 'node:fs/promises';
import path from 'node:path';
import { createDeviceCsr, generateKeyPem, renewalTime } from '../certs/pki.ts';
import { deviceConfigSchemaId, type DeviceConfig, type DeviceConfigInput } from '../protocol/device-config.ts';
import { enrollment, renewal, type Enrollment } from '../protocol/enrollment.ts';
import type { Logger } from '../protocol/log.ts';
import { errorResponse } from '../protocol/api.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { writeFileAtomic } from '../lib/files.ts';

/*
 * `convoyd enroll` and certificate renewal. The key is made here and never leaves the device:
 * only a CSR (the public key, signed with the private one) goes to the server. Files written
 * into the device directory (names kept stable: device.json points at them):
 *   device.key   the private key, 0600          device.pem  the certificate, then the CA chain
 *   ca.pem       the fleet's root certificate    root.json   the pinned TUF root
 *   device.token a device access token, 0600    device.json the daemon's configuration
 */

export class EnrollError extends Error {
  override readonly name = 'EnrollError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

async function post<T>(url: string, body: unknown, parse: (value: unknown) => T, timeoutMs: number): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new EnrollError(`cannot reach ${url}: ${(error as Error).message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    const parsed = errorResponse.safeParse((() => { try { return JSON.parse(text); } catch { return undefined; } })());
    throw new EnrollError(parsed.success ? `${parsed.data.error.message} (${parsed.data.error.code})` : `the server answered ${response.status}`, parsed.success ? parsed.data.error.code : undefined);
  }
  return parse(parseJson(text, 'server answer'));
}

/**
 * Enrolls this device: makes a key (or keeps the one in `dir`, when enrolling again), sends a
 * CSR with the enrollment token, and writes what the daemon needs into `dir`.
 */
export async function enrollDevice(options: { serverUrl: string; token: string; dir: string; deviceId: string; mqttUrl?: string; timeoutMs?: number; log: Logger }): Promise<Enrollment> {
  const dir = path.resolve(options.dir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'device.key');
  // Enrolling again (after an expiry) keeps the key: it never left the device, so it is still good.
  let keyPem = await fs.readFile(keyFile, 'utf8').catch(() => undefined);
  if (!keyPem) {
    keyPem = generateKeyPem();
    await writeFileAtomic(keyFile, keyPem, 0o600);
  }
  const csr = createDeviceCsr({ deviceId: options.deviceId, keyPem });
  const serverUrl = options.serverUrl.replace(/\/+$/, '');
  const result = await post(`${serverUrl}/api/v1/enroll`, { token: options.token, csr }, (value) => parseWith(enrollment, value, 'enrollment'), options.timeoutMs ?? 60_000);
  const mqttUrl = options.mqttUrl ?? `mqtt://${new URL(serverUrl).hostname}:${result.mqtt.port}`;
  const config: DeviceConfigInput = {
    schema: deviceConfigSchemaId,
    id: result.device.id,
    group: result.device.group,
    serverUrl,
    mqttUrl,
    tokenFile: 'device.token',
    rootFile: 'root.json',
    certFile: 'device.pem',
    keyFile: 'device.key',
    caFile: 'ca.pem',
    dataDir: '.',
  };
  await writeFileAtomic(path.join(dir, 'device.pem'), result.certificate + result.chain);
  await writeFileAtomic(path.join(dir, 'ca.pem'), result.ca);
  await writeFileAtomic(path.join(dir, 'device.token'), result.token + '\n', 0o600);
  // A device enrolling again keeps the TUF root it already trusts (it may have rotated since).
  if (!(await fs.stat(path.join(dir, 'root.json')).catch(() => undefined))) await writeFileAtomic(path.join(dir, 'root.json'), JSON.stringify(result.root, null, 2) + '\n');
  const configFile = path.join(dir, 'device.json');
  const previous = await fs.readFile(configFile, 'utf8').then((text) => JSON.parse(text) as Record<string, unknown>, () => ({}));
  // Keep the operator's settings (update policy, timeouts) when enrolling again.
  await writeFileAtomic(configFile, JSON.stringify({ ...previous, ...config }, null, 2) + '\n');
  options.log.info('enrolled', { device: result.device.id, group: result.device.group, dir });
  return result;
}

/**
 * Renews the certificate once two thirds of its lifetime have passed (else does nothing), with
 * a CSR of the same key. Returns the new expiry, or undefined when it was not due.
 */
export async function renewIfDue(options: { config: DeviceConfig; configDir: string; now: Date; timeoutMs?: number; log: Logger; force?: boolean }): Promise<Date | undefined> {
  const { config } = options;
  if (!config.certFile || !config.keyFile) return undefined;
  const certFile = path.resolve(options.configDir, config.certFile);
  const bundle = await fs.readFile(certFile, 'utf8');
  if (!options.force && options.now < renewalTime(bundle)) return undefined;
  const keyPem = await fs.readFile(path.resolve(options.configDir, config.keyFile), 'utf8');
  const leaf = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/)?.[0] ?? bundle;
  const csr = createDeviceCsr({ deviceId: config.id, keyPem });
  const result = await post(`${config.serverUrl.replace(/\/+$/, '')}/api/v1/enroll/renew`, { certificate: leaf, csr }, (value) => parseWith(renewal, value, 'renewal'), options.timeoutMs ?? 60_000);
  await writeFileAtomic(certFile, result.certificate + result.chain);
  options.log.info('renewed the device certificate', { device: config.id, notAfter: result.notAfter });
  return new Date(result.notAfter);
}
