import fs from 'node:fs/promises';
import path from 'node:path';
import { createDeviceCsr, generateKeyPem, renewalTime } from '../certs/pki.ts';
import type { IncomingMessage } from 'node:http';
import { deviceConfig, deviceConfigSchemaId, type DeviceConfig, type DeviceConfigInput } from '../protocol/device-config.ts';
import { enrollment, renewal, type Enrollment } from '../protocol/enrollment.ts';
import type { Logger } from '../protocol/log.ts';
import { errorResponse } from '../protocol/api.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { writeFileAtomic } from '../lib/files.ts';
import { httpRequest, PinMismatchError, readText } from '../lib/http.ts';
import { needsToken, readIdentity } from './identity.ts';
import { createServerPool, type ServerPool } from './servers.ts';

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

/** How the enrollment request reaches the server: its URL and what its TLS must prove. */
export interface EnrollTransport {
  /** The fleet root (PEM) the server's chain must lead to: `--ca FILE`. */
  ca?: string | undefined;
  /** Or a SHA-256 fingerprint of a certificate the server presents (its own, or a CA's in its chain): `--ca-fingerprint`. */
  caFingerprint?: string | undefined;
}

/**
 * What the operator should know about how the token travels, or undefined when it is pinned:
 * over plain http anyone on the path reads it; over https without a pin the system's trust store
 * decides who the server is.
 */
export function transportNotice(serverUrl: string, pin: EnrollTransport): string | undefined {
  if (serverUrl.startsWith('http:')) return `warning: ${serverUrl} is plain http: the enrollment token travels in clear (use https:// with --ca FILE or --ca-fingerprint SHA256)`;
  if (!pin.ca && !pin.caFingerprint) return `note: no --ca or --ca-fingerprint: the server's certificate is checked against the system's trust store`;
  return undefined;
}

type Poster = (urlPath: string, body: string, timeoutMs: number) => Promise<IncomingMessage>;

async function post<T>(send: Poster, urlPath: string, what: string, body: unknown, parse: (value: unknown) => T, timeoutMs: number): Promise<T> {
  let response: IncomingMessage;
  try {
    response = await send(urlPath, JSON.stringify(body), timeoutMs);
  } catch (error) {
    if (error instanceof PinMismatchError) throw new EnrollError(`refusing to send the token to ${what}: ${error.message}`, 'pin_mismatch');
    const cause = (error as Error & { cause?: NodeJS.ErrnoException }).cause;
    if (cause?.code && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(cause.code)) {
      throw new EnrollError(`refusing to send the token to ${what}: its TLS certificate is not trusted (${cause.code}: ${cause.message})`, 'untrusted_server');
    }
    throw new EnrollError(`cannot reach ${what}: ${(error as Error).message}`);
  }
  const text = await readText(response, 1024 * 1024);
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) {
    const parsed = errorResponse.safeParse((() => { try { return JSON.parse(text); } catch { return undefined; } })());
    throw new EnrollError(parsed.success ? `${parsed.data.error.message} (${parsed.data.error.code})` : `the server answered ${status}`, parsed.success ? parsed.data.error.code : undefined);
  }
  return parse(parseJson(text, 'server answer'));
}

/**
 * Enrolls this device: makes a key (or keeps the one in `dir`, when enrolling again), sends a
 * CSR with the enrollment token, and writes what the daemon needs into `dir`.
 */
export async function enrollDevice(options: { serverUrl: string; token: string; dir: string; deviceId: string; mqttUrl?: string; timeoutMs?: number; log: Logger } & EnrollTransport): Promise<Enrollment> {
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
  // The pin holds for this request itself: the token goes out only on a connection whose
  // certificate chain passed it (lib/http.ts checks before writing a byte).
  const tls = options.ca ? { ca: options.ca } : options.caFingerprint ? { pinSha256: [options.caFingerprint] } : undefined;
  const send: Poster = (urlPath, body, timeoutMs) => httpRequest(`${serverUrl}${urlPath}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, timeoutMs, tls });
  const result = await post(send, '/api/v1/enroll', serverUrl, { token: options.token, csr }, (value) => parseWith(enrollment, value, 'enrollment'), options.timeoutMs ?? 60_000);
  const host = new URL(serverUrl).host.replace(/:\d+$/, '');
  // The device API on the server's mutual-TLS listener when it has one: the device is then its
  // certificate there, and needs no token (daemon.ts needsToken).
  const deviceUrl = result.https ? `https://${host}:${result.https.port}` : serverUrl;
  const mqttUrl = options.mqttUrl ?? (result.mqtts ? `mqtts://${host}:${result.mqtts.port}` : `mqtt://${host}:${result.mqtt.port}`);
  const configFile = path.join(dir, 'device.json');
  const previous = await fs.readFile(configFile, 'utf8').then((text) => JSON.parse(text) as Record<string, unknown>, () => ({}) as Record<string, unknown>);
  const config: DeviceConfigInput = {
    schema: deviceConfigSchemaId,
    id: result.device.id,
    group: result.device.group,
    // A device that lists several servers keeps its list when it enrolls again.
    ...(previous.servers ? {} : { serverUrl: deviceUrl, mqttUrl }),
    tokenFile: 'device.token',
    rootFile: 'root.json',
    certFile: 'device.pem',
    keyFile: 'device.key',
    caFile: 'ca.pem',
    dataDir: '.',
  };
  await writeFileAtomic(path.join(dir, 'device.pem'), result.certificate + result.chain);
  await writeFileAtomic(path.join(dir, 'ca.pem'), result.ca);
  // A token at rest is a secret to lose: written only when some server or broker needs it.
  // (A config that does not parse yet, say an operator's half-edited one, keeps the token: the safe side.)
  const merged = deviceConfig.safeParse({ ...previous, ...config });
  if (!merged.success || needsToken(merged.data, true)) await writeFileAtomic(path.join(dir, 'device.token'), result.token + '\n', 0o600);
  // A device enrolling again keeps the TUF root it already trusts (it may have rotated since).
  if (!(await fs.stat(path.join(dir, 'root.json')).catch(() => undefined))) await writeFileAtomic(path.join(dir, 'root.json'), JSON.stringify(result.root, null, 2) + '\n');
  // Keep the operator's settings (update policy, timeouts) when enrolling again.
  await writeFileAtomic(configFile, JSON.stringify({ ...previous, ...config }, null, 2) + '\n');
  options.log.info('enrolled', { device: result.device.id, group: result.device.group, dir });
  return result;
}

/**
 * Renews the certificate once two thirds of its lifetime have passed (else does nothing), with
 * a CSR of the same key. Returns the new expiry, or undefined when it was not due.
 */
export async function renewIfDue(options: { config: DeviceConfig; configDir: string; now: Date; timeoutMs?: number; log: Logger; force?: boolean; pool?: ServerPool }): Promise<Date | undefined> {
  const { config } = options;
  if (!config.certFile || !config.keyFile) return undefined;
  const certFile = path.resolve(options.configDir, config.certFile);
  const bundle = await fs.readFile(certFile, 'utf8');
  if (!options.force && options.now < renewalTime(bundle)) return undefined;
  const keyPem = await fs.readFile(path.resolve(options.configDir, config.keyFile), 'utf8');
  const leaf = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/)?.[0] ?? bundle;
  const csr = createDeviceCsr({ deviceId: config.id, keyPem });
  // Through the device's servers (the one that answers), over HTTPS with the current certificate.
  const pool = options.pool ?? createServerPool({ servers: config.servers, identity: await readIdentity(config, options.configDir), token: await fs.readFile(path.resolve(options.configDir, config.tokenFile), 'utf8').then((t) => t.trim(), () => undefined), failbackMs: config.failbackSeconds * 1000, log: options.log });
  const send: Poster = (urlPath, body, timeoutMs) => pool.request(urlPath, { method: 'POST', headers: { 'content-type': 'application/json' }, body, answerTimeoutMs: timeoutMs }).then((answer) => answer.response);
  const result = await post(send, '/api/v1/enroll/renew', 'the server', { certificate: leaf, csr }, (value) => parseWith(renewal, value, 'renewal'), options.timeoutMs ?? 60_000);
  await writeFileAtomic(certFile, result.certificate + result.chain);
  options.log.info('renewed the device certificate', { device: config.id, notAfter: result.notAfter });
  return new Date(result.notAfter);
}
