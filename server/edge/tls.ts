import fs from 'node:fs/promises';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type Koa from 'koa';
import { createServerCsr, describeCertificate, generateKeyPem, renewalTime } from '../../certs/pki.ts';
import type { DeviceCredential } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import { ensurePrivateDir, writeFileAtomic } from '../../lib/files.ts';
import type { Upstream } from './upstream.ts';

/*
 * The edge's HTTPS for enrolled devices (issues 11 and 12). Enrolled devices hold only a
 * certificate from the fleet CA and trust only servers that chain to the fleet root, so:
 *  - the edge makes its key here (it never leaves dataDir/tls) and has the origin's fleet CA sign
 *    a serverAuth certificate for the names its devices dial (POST /api/v1/edge/certificate,
 *    signed in with the edge token); renewed at two thirds of its life, as devices renew theirs;
 *  - its listener asks for a client certificate chaining to the fleet root the origin returned
 *    (requestCert, rejectUnauthorized false, as the origin's HTTPS listener: a request without
 *    one gets a typed 401), and a verified certificate is the device it names once the origin
 *    says that serial is still good (credentials.ts, same cache and offline rule as tokens).
 *
 * Files: tls/edge.key (0600), tls/edge.pem (certificate then chain), tls/ca.pem (the fleet root),
 * tls/names.json (what the certificate was asked for: a change of names asks again).
 */

export interface EdgeTlsMaterial {
  /** The certificate, then the chain up to the root. */
  cert: string;
  key: string;
  /** The fleet root: client certificates must chain to it. */
  ca: string;
  notAfter: Date;
}

export interface EdgeTlsOptions {
  dataDir: string;
  names: { dns: string[]; ip: string[] };
  upstream: Pick<Upstream, 'signCertificate'>;
  now: () => Date;
  log: Logger;
}

const fileNames = { key: 'edge.key', cert: 'edge.pem', ca: 'ca.pem', names: 'names.json' } as const;

/** Whether the certificate on disk must be asked for again: none, names changed, or due for renewal. */
export function needsCertificate(state: { certPem?: string | undefined; names?: string | undefined }, wanted: { dns: string[]; ip: string[] }, now: Date): boolean {
  if (!state.certPem || state.names !== JSON.stringify(wanted)) return true;
  return now.getTime() >= renewalTime(state.certPem).getTime();
}

/**
 * The edge's TLS material: read from disk, asked of the origin when missing, renamed or due.
 * An origin out of reach is not fatal while the certificate on disk is still valid (the edge
 * serves its devices through a link drop); with none usable, the start fails with the reason.
 */
export async function loadEdgeTls(options: EdgeTlsOptions): Promise<EdgeTlsMaterial> {
  const dir = path.join(options.dataDir, 'tls');
  await ensurePrivateDir(dir);
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
  let key = await read(fileNames.key);
  if (!key) {
    key = generateKeyPem();
    await writeFileAtomic(path.join(dir, fileNames.key), key, 0o600);
  }
  const [certPem, ca, names] = await Promise.all([read(fileNames.cert), read(fileNames.ca), read(fileNames.names)]);
  const now = options.now();
  if (certPem && ca && !needsCertificate({ certPem, names }, options.names, now)) return { cert: certPem, key, ca, notAfter: describeCertificate(certPem).notAfter };
  const first = options.names.dns[0] ?? options.names.ip[0]!;
  try {
    const signed = await options.upstream.signCertificate({ csr: createServerCsr({ name: first, keyPem: key }), dns: options.names.dns, ip: options.names.ip });
    const cert = signed.certificate + signed.chain;
    // The certificate last but one, the names last: a crash between leaves a state that asks again.
    await writeFileAtomic(path.join(dir, fileNames.ca), signed.ca);
    await writeFileAtomic(path.join(dir, fileNames.cert), cert);
    await writeFileAtomic(path.join(dir, fileNames.names), JSON.stringify(options.names));
    const notAfter = describeCertificate(signed.certificate).notAfter;
    options.log.info('the origin signed this edge certificate', { dns: options.names.dns, ip: options.names.ip, notAfter: notAfter.toISOString() });
    return { cert, key, ca: signed.ca, notAfter };
  } catch (error) {
    const usable = certPem && ca && names === JSON.stringify(options.names) && describeCertificate(certPem).notAfter.getTime() > now.getTime();
    if (!usable) throw new Error(`edge TLS: no usable certificate and the origin did not sign one (${(error as Error).message})`, { cause: error });
    options.log.warn('edge certificate renewal failed; serving with the current one', { notAfter: describeCertificate(certPem).notAfter.toISOString(), error: (error as Error).message });
    return { cert: certPem, key, ca, notAfter: describeCertificate(certPem).notAfter };
  }
}

/** The certificate a device presented on the edge's HTTPS listener, when the TLS layer verified its chain. */
export function certificateOf(koa: Koa.Context): DeviceCredential | undefined {
  const socket = koa.req.socket as Partial<TLSSocket>;
  if (!socket.authorized || !socket.getPeerCertificate) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert.serialNumber) return undefined;
  return { certificate: { commonName: String(cert.subject?.CN ?? ''), serial: cert.serialNumber } };
}
