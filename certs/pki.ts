import { constants, generateKeyPairSync, privateEncrypt, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/*
 * The fleet's X.509 PKI as functions over PEM text: a root CA, an optional intermediate that
 * signs day to day (so the root's key can stay offline), the server's TLS certificate, and device
 * certificates issued from CSRs. No file I/O here: `convoy ca init` (cli/commands/ca.ts) and the
 * enrollment service do the disk work around it. The clock is a parameter (`now`), so a test can
 * issue certificates that are not yet valid or already expired.
 *
 * Keys are RSA 2048 made by node's native crypto (node-forge generates RSA in JavaScript, about a
 * second per key on a small CPU); node-forge builds and signs the certificates, because node
 * itself can read X.509 but not write it. RFC 5280 is the reference for every extension below.
 */

export type PkiErrorCode = 'bad_csr' | 'bad_name' | 'bad_key' | 'not_a_ca' | 'bad_serial';

/** A PKI input that cannot be used, with a stable code callers branch on. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  certPem: string;
  keyPem: string;
}

/** Lifetimes in days (RFC 5280 §4.1.2.5: notBefore/notAfter). */
export const defaultValidityDays = {
  root: 3650,
  intermediate: 1825,
  /** 397 days: the longest lifetime browsers accept for a TLS server certificate (CA/B BR 6.3.2). */
  server: 397,
  /** Short: a stolen key is useful for weeks at most; the device renews at two thirds of it. */
  device: 30,
  /** An edge's TLS certificate (issue 12): short like a device's, so a removed edge's one dies soon; renewed at two thirds. */
  edge: 30,
} as const;

/** Backdated by this much, so a device whose clock runs a little behind accepts a fresh certificate. */
const clockSkewMs = 5 * 60 * 1000;
const dayMs = 24 * 60 * 60 * 1000;

/** A new RSA 2048 private key, PKCS#8 PEM. */
export function generateKeyPem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function privateKeyOf(keyPem: string): forge.pki.rsa.PrivateKey {
  try {
    return forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  } catch (error) {
    throw new PkiError('bad_key', 'the private key is not an RSA key in PEM form', { cause: error });
  }
}

/**
 * Signs with node's native RSA instead of node-forge's JavaScript bignums (tens of times faster
 * on a small CPU): forge hands `sign` the finished SHA-256 digest, and RSASSA-PKCS1-v1_5
 * (RFC 8017 §8.2.1, §9.2) is the private-key operation over the DER DigestInfo of that digest.
 */
const sha256DigestInfo = Buffer.from('3031300d060960864801650304020105000420', 'hex');
function nativeSigner(keyPem: string): { sign(md: forge.md.MessageDigest): string } {
  return {
    sign(md) {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      return privateEncrypt({ key: keyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([sha256DigestInfo, digest])).toString('binary');
    },
  };
}

function publicKeyOf(key: forge.pki.rsa.PrivateKey): forge.pki.rsa.PublicKey {
  return forge.pki.setRsaPublicKey(key.n, key.e);
}

/** RFC 5280 §4.1.2.2: a positive integer of at most 20 octets, unpredictable (CA/B BR 7.1). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive in DER
  return bytes.toString('hex');
}

function keyIdOf(key: forge.pki.PublicKey): string {
  return forge.pki.getPublicKeyFingerprint(key, { type: 'RSAPublicKey', md: forge.md.sha1.create(), encoding: 'binary' }) as unknown as string;
}

function certificate(options: {
  subject: forge.pki.CertificateField[];
  publicKey: forge.pki.PublicKey;
  issuer: { cert: forge.pki.Certificate; keyPem: string } | { self: string };
  now: Date;
  days: number;
  extensions: object[];
}): string {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = serialNumber();
  cert.publicKey = options.publicKey;
  cert.validity.notBefore = new Date(options.now.getTime() - clockSkewMs);
  cert.validity.notAfter = new Date(options.now.getTime() + options.days * dayMs);
  cert.setSubject(options.subject);
  const selfSigned = 'self' in options.issuer;
  const issuerCert = 'cert' in options.issuer ? options.issuer.cert : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : options.subject);
  cert.setExtensions([
    ...options.extensions,
    { name: 'subjectKeyIdentifier' },
    // §4.2.1.1: the issuer's key id, so a verifier picks the right CA among several.
    { name: 'authorityKeyIdentifier', keyIdentifier: selfSigned ? true : keyIdOf(issuerCert!.publicKey) },
  ]);
  cert.sign(nativeSigner('self' in options.issuer ? options.issuer.self : options.issuer.keyPem) as never, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

function readCa(ca: KeyPair): { cert: forge.pki.Certificate; keyPem: string } {
  const cert = forge.pki.certificateFromPem(ca.certPem);
  const constraints = cert.getExtension('basicConstraints') as { cA?: boolean } | undefined;
  if (!constraints?.cA) throw new PkiError('not_a_ca', 'the issuing certificate is not a CA certificate');
  const key = privateKeyOf(ca.keyPem);
  const pub = cert.publicKey as forge.pki.rsa.PublicKey;
  if (pub.n.compareTo(key.n) !== 0) throw new PkiError('bad_key', 'the CA key does not belong to the CA certificate');
  return { cert, keyPem: ca.keyPem };
}

function commonName(name: string, what: string): forge.pki.CertificateField[] {
  // One printable line: the name lands in logs, Mosquitto's ACL user name and file names.
  if (!/^[\x20-\x7e]{1,64}$/.test(name)) throw new PkiError('bad_name', `${what} must be 1-64 printable ASCII characters`);
  return [{ name: 'commonName', value: name }];
}

/** The fleet's root CA: self-signed, may sign CAs below it. Keep its key offline once an intermediate exists. */
export function createRootCa(options: { name: string; now: Date; days?: number; keyPem?: string }): KeyPair {
  const keyPem = options.keyPem ?? generateKeyPem();
  const key = privateKeyOf(keyPem);
  const certPem = certificate({
    subject: commonName(options.name, 'the CA name'),
    publicKey: publicKeyOf(key),
    issuer: { self: keyPem },
    now: options.now,
    days: options.days ?? defaultValidityDays.root,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem, keyPem };
}

/** An intermediate CA signed by the root; pathLen 0: it signs end-entity certificates only (§4.2.1.9). */
export function createIntermediateCa(options: { issuer: KeyPair; name: string; now: Date; days?: number; keyPem?: string }): KeyPair {
  const issuer = readCa(options.issuer);
  const keyPem = options.keyPem ?? generateKeyPem();
  const certPem = certificate({
    subject: commonName(options.name, 'the CA name'),
    publicKey: publicKeyOf(privateKeyOf(keyPem)),
    issuer,
    now: options.now,
    days: options.days ?? defaultValidityDays.intermediate,
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem, keyPem };
}

/**
 * The server's TLS certificate: its names are what devices dial (RFC 6125: clients match the
 * subjectAltName, not the CN). At least one DNS name or IP address is required.
 */
export function createServerCertificate(options: { issuer: KeyPair; dns: readonly string[]; ip: readonly string[]; now: Date; days?: number; keyPem?: string }): KeyPair {
  checkServerNames(options.dns, options.ip);
  const issuer = readCa(options.issuer);
  const keyPem = options.keyPem ?? generateKeyPem();
  const certPem = serverCertificate({ issuer, publicKey: publicKeyOf(privateKeyOf(keyPem)), dns: options.dns, ip: options.ip, now: options.now, days: options.days ?? defaultValidityDays.server });
  return { certPem, keyPem };
}

function checkServerNames(dns: readonly string[], ip: readonly string[]): void {
  if (dns.length + ip.length === 0) throw new PkiError('bad_name', 'the server certificate needs at least one DNS name or IP address');
  for (const name of dns) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(name) || name.length > 253) {
      throw new PkiError('bad_name', `"${name}" is not a DNS name`);
    }
  }
  for (const address of ip) if (isIP(address) === 0) throw new PkiError('bad_name', `"${address}" is not an IP address`);
}

/** A TLS server's certificate: serverAuth only (never a client's), its names in the subjectAltName. */
function serverCertificate(options: { issuer: { cert: forge.pki.Certificate; keyPem: string }; publicKey: forge.pki.PublicKey; dns: readonly string[]; ip: readonly string[]; now: Date; days: number }): string {
  return certificate({
    subject: commonName(options.dns[0] ?? options.ip[0]!, 'the server name'),
    publicKey: options.publicKey,
    issuer: options.issuer,
    now: options.now,
    days: options.days,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [...options.dns.map((value) => ({ type: 2, value })), ...options.ip.map((ip) => ({ type: 7, ip }))] },
    ],
  });
}

/** A PKCS#10 request for a server certificate (an edge's): CN = its first name; the names themselves travel beside it. */
export function createServerCsr(options: { name: string; keyPem: string }): string {
  return createCsr(options.keyPem, commonName(options.name, 'the server name'));
}

/**
 * A server certificate from a CSR (an edge's, issue 12): the names are checked as for
 * createServerCertificate, the CSR's CN must be the first of them, its signature must verify
 * (the sender holds the key), and the certificate is serverAuth only: it can never sign a
 * device in. A server's lifetime, renewed by the edge as devices renew theirs.
 */
export function signServerCsr(options: { issuer: KeyPair; csrPem: string; dns: readonly string[]; ip: readonly string[]; now: Date; days?: number }): string {
  checkServerNames(options.dns, options.ip);
  const requested = readCsr(options.csrPem);
  const first = options.dns[0] ?? options.ip[0]!;
  if (requested.commonName !== first) throw new PkiError('bad_csr', `the CSR names "${requested.commonName}", not the first name asked for ("${first}")`);
  const issuer = readCa(options.issuer);
  return serverCertificate({ issuer, publicKey: forge.pki.publicKeyFromPem(requested.publicKeyPem), dns: options.dns, ip: options.ip, now: options.now, days: options.days ?? defaultValidityDays.server });
}

/** A PKCS#10 request for `deviceId`, signed by the device's own key (which never leaves it). */
export function createDeviceCsr(options: { deviceId: string; keyPem: string }): string {
  return createCsr(options.keyPem, commonName(options.deviceId, 'the device id'));
}

/** A certification request for `subject`, self-signed by the key it asks a certificate for. */
function createCsr(keyPem: string, subject: ReturnType<typeof commonName>): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = publicKeyOf(privateKeyOf(keyPem));
  csr.setSubject(subject);
  csr.sign(nativeSigner(keyPem) as never, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** What a CSR asks for, after its self-signature is checked (proof that the sender holds the key). */
export function readCsr(csrPem: string): { commonName: string; publicKeyPem: string } {
  let csr: ReturnType<typeof forge.pki.certificationRequestFromPem>;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (error) {
    throw new PkiError('bad_csr', 'the CSR is not a PEM certificate request with an RSA key', { cause: error });
  }
  if (!csr.verify()) throw new PkiError('bad_csr', 'the CSR signature does not verify');
  const pub = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!pub || pub.n.bitLength() < 2048) throw new PkiError('bad_key', 'the CSR key must be RSA of at least 2048 bits');
  const cn = csr.subject.getField('CN') as { value?: unknown } | null;
  if (typeof cn?.value !== 'string') throw new PkiError('bad_csr', 'the CSR names no common name');
  return { commonName: cn.value, publicKeyPem: forge.pki.publicKeyToPem(pub) };
}

/**
 * A device certificate from its CSR: CN = the device id the server decided (never trusted from
 * the CSR alone), clientAuth only, a short lifetime. The CSR's signature must verify.
 */
export function signDeviceCsr(options: { issuer: KeyPair; csrPem: string; deviceId: string; now: Date; days?: number }): string {
  const requested = readCsr(options.csrPem);
  if (requested.commonName !== options.deviceId) {
    throw new PkiError('bad_csr', `the CSR names "${requested.commonName}", not the device id "${options.deviceId}"`);
  }
  const issuer = readCa(options.issuer);
  return certificate({
    subject: commonName(options.deviceId, 'the device id'),
    publicKey: forge.pki.publicKeyFromPem(requested.publicKeyPem),
    issuer,
    now: options.now,
    days: options.days ?? defaultValidityDays.device,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
}

/** The validity window and subject of a certificate, for renewal decisions and listings. */
export function describeCertificate(certPem: string): { commonName: string; notBefore: Date; notAfter: Date; serial: string } {
  const cert = forge.pki.certificateFromPem(certPem);
  const cn = cert.subject.getField('CN') as { value?: unknown } | null;
  return { commonName: String(cn?.value ?? ''), notBefore: cert.validity.notBefore, notAfter: cert.validity.notAfter, serial: normalSerial(cert.serialNumber) };
}

/** One spelling of a serial number: node's TLS peer certificate and node-forge print it differently (case, leading zero octets). */
export function normalSerial(serial: string): string {
  return serial.toLowerCase().replace(/^(00)+(?=.)/, '');
}

/**
 * When a certificate should be renewed: after two thirds of its lifetime, so a device that is
 * offline for a while still has a third of it left to try (for 30 days: 10 days of margin).
 */
export function renewalTime(certPem: string): Date {
  const { notBefore, notAfter } = describeCertificate(certPem);
  return new Date(notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3);
}

/** PEM blocks of a bundle (a chain file), in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((block) => block + '\n') ?? [];
}
