import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { createRootCa, createServerCertificate, splitPem, type KeyPair } from '../../certs/pki.ts';
import type { Logger } from '../../protocol/log.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import { ConfigError } from '../config.ts';

/**
 * The fleet CA as the server holds it: the issuing CA (certificate and key) that signs device
 * certificates, the chain between it and the root, and the root certificate devices pin.
 *
 * With CONVOY_PKI_DIR (the `server/` folder of `convoy ca init`) the files are read at start and a
 * missing one fails the start. Without it, a CA of its own is made in dataDir/pki at the first
 * enrollment (zero setup, as with SQLite and aedes; its root key then lives on the server: see
 * docs/device-install.md for the offline-root way). Made lazily: key generation costs seconds on
 * a small CPU, and most servers never enroll a device.
 */
export interface FleetPki {
  issuer(): Promise<{ issuer: KeyPair; chain: string; ca: string }>;
  /** The server's TLS certificate (with its chain), key and the root that verifies devices: for the mTLS listeners. */
  tls(): Promise<{ certPem: string; keyPem: string; ca: string }>;
}

async function readLayout(dir: string): Promise<{ issuer: KeyPair; chain: string; ca: string }> {
  const read = async (name: string) => {
    try {
      return await fs.readFile(path.join(dir, name), 'utf8');
    } catch (error) {
      throw new ConfigError(`CONVOY_PKI_DIR: cannot read ${path.join(dir, name)} (${(error as NodeJS.ErrnoException).code ?? 'error'}); point it at the server/ folder made by convoy ca init`);
    }
  };
  const [ca, issuerPem, issuerKey] = await Promise.all([read('ca.pem'), read('issuer.pem'), read('issuer.key')]);
  const issuerCert = splitPem(issuerPem)[0];
  if (!issuerCert) throw new ConfigError(`CONVOY_PKI_DIR: ${path.join(dir, 'issuer.pem')} holds no certificate`);
  // The root itself signs when there is no intermediate: then no chain goes with the certificate.
  const chain = issuerCert.trim() === splitPem(ca)[0]?.trim() ? '' : issuerCert;
  return { issuer: { certPem: issuerCert, keyPem: issuerKey }, chain, ca };
}

export async function openFleetPki(options: { pkiDir?: string | undefined; dataDir: string; now: () => Date; log: Logger }): Promise<FleetPki> {
  if (options.pkiDir) {
    const loaded = await readLayout(options.pkiDir);
    const tls = await readTls(options.pkiDir, loaded.ca);
    return { issuer: async () => loaded, tls: async () => tls };
  }
  const dir = path.join(options.dataDir, 'pki');
  let pending: Promise<{ issuer: KeyPair; chain: string; ca: string }> | undefined;
  async function loadOrCreate() {
    const exists = await fs.stat(path.join(dir, 'issuer.key')).then(() => true, () => false);
    if (!exists) {
      const root = createRootCa({ name: 'Convoy fleet CA', now: options.now() });
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      // The key last: its presence marks a complete CA (a crash before it starts over).
      await writeFileAtomic(path.join(dir, 'ca.pem'), root.certPem);
      await writeFileAtomic(path.join(dir, 'issuer.pem'), root.certPem);
      await writeFileAtomic(path.join(dir, 'issuer.key'), root.keyPem, 0o600);
      options.log.info('created a fleet CA for enrollment', { dir });
    }
    return readLayout(dir);
  }
  const issuer = () => {
    pending ??= loadOrCreate().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
  let pendingTls: Promise<{ certPem: string; keyPem: string; ca: string }> | undefined;
  async function loadOrCreateTls() {
    const loaded = await issuer();
    if (!(await fs.stat(path.join(dir, 'tls.key')).then(() => true, () => false))) {
      // Names a device on this machine or the local network may dial; `convoy ca init` names real ones.
      const server = createServerCertificate({ issuer: loaded.issuer, dns: ['localhost', ...(/^[A-Za-z0-9-]{1,63}$/.test(os.hostname()) ? [os.hostname()] : [])], ip: ['127.0.0.1', '::1'], now: options.now() });
      await writeFileAtomic(path.join(dir, 'tls.pem'), server.certPem + loaded.chain);
      await writeFileAtomic(path.join(dir, 'tls.key'), server.keyPem, 0o600);
    }
    return readTls(dir, loaded.ca);
  }
  return {
    issuer,
    tls() {
      pendingTls ??= loadOrCreateTls().catch((error: unknown) => {
        pendingTls = undefined;
        throw error;
      });
      return pendingTls;
    },
  };
}

/** The server's client identity for an external broker (`convoy ca init` writes it). */
export async function readMqttClientIdentity(pkiDir: string): Promise<{ cert: string; key: string; ca: string }> {
  const read = (name: string) =>
    fs.readFile(path.join(pkiDir, name), 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new ConfigError(`CONVOY_MQTT_URL: cannot read ${path.join(pkiDir, name)} (${error.code ?? 'error'}); convoy ca init writes it`);
    });
  return { cert: await read('mqtt-client.pem'), key: await read('mqtt-client.key'), ca: await read('ca.pem') };
}

async function readTls(dir: string, ca: string): Promise<{ certPem: string; keyPem: string; ca: string }> {
  const read = (name: string) =>
    fs.readFile(path.join(dir, name), 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new ConfigError(`cannot read the server's TLS ${name} in ${dir} (${error.code ?? 'error'})`);
    });
  return { certPem: await read('tls.pem'), keyPem: await read('tls.key'), ca };
}
