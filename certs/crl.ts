import { createSign } from 'node:crypto';
import forge from 'node-forge';
import { normalSerial, PkiError, type KeyPair } from './pki.ts';

/*
 * A certificate revocation list (RFC 5280 §5) of the fleet's issuing CA, as PEM: what a standard
 * broker (Mosquitto's `crlfile`) checks a device certificate against during the TLS handshake.
 * node-forge writes certificates but not CRLs, so the DER is assembled here with its ASN.1
 * helpers and signed with node's native RSA. Pure: the clock and the list are parameters.
 */

/** Its file name in the PKI folder (CONVOY_PKI_DIR): the server writes it, `convoy broker config mosquitto` names it as `crlfile`. */
export const crlFileName = 'crl.pem';

export interface RevokedCertificate {
  /** Hex, as the enrollment store keeps it (any case, leading zero octets or not). */
  serial: string;
  revokedAt: Date;
}

const { asn1 } = forge;
const { Class, Type } = asn1;
const sha256WithRsa = '1.2.840.113549.1.1.11';
const crlNumberOid = '2.5.29.20';

/** §4.1.2.5.1: UTCTime through 2049, GeneralizedTime from 2050 on. */
function time(date: Date): forge.asn1.Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/** A positive DER INTEGER from hex (a zero octet in front when the high bit is set). */
function integerFromHex(hex: string): forge.asn1.Asn1 {
  let body = normalSerial(hex);
  if (!/^[0-9a-f]+$/.test(body)) throw new PkiError('bad_serial', `"${hex}" is not a hexadecimal serial number`);
  if (body.length % 2) body = `0${body}`;
  if (Number.parseInt(body.slice(0, 2), 16) >= 0x80) body = `00${body}`;
  return asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(body));
}

const algorithm = () => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(sha256WithRsa).getBytes()), asn1.create(Class.UNIVERSAL, Type.NULL, false, '')]);

/**
 * The CRL signed by `issuer` (the CA that signs device certificates: with an intermediate, the
 * intermediate). `nextUpdate` is the issuer's own expiry: OpenSSL refuses every certificate once
 * a loaded CRL is past its nextUpdate, and Mosquitto rereads the file only when told (SIGHUP), so
 * a short one would lock the whole fleet out of a broker nobody reloaded. The CRL number
 * (§5.2.3) grows with `now`, so a newer list always has the larger number.
 */
export function createCrl(options: { issuer: KeyPair; revoked: readonly RevokedCertificate[]; now: Date }): string {
  const issuerCert = forge.pki.certificateFromPem(options.issuer.certPem);
  const entries = options.revoked.map((r) => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [integerFromHex(r.serial), time(r.revokedAt)]));
  const crlNumber = asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(integerHex(Math.floor(options.now.getTime() / 1000))));
  const extensions = asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [
    asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
        asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(crlNumberOid).getBytes()),
        asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(crlNumber).getBytes()),
      ]),
    ]),
  ]);
  const tbs = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, String.fromCharCode(1)), // v2 (§5.1.2.1)
    algorithm(),
    forge.pki.distinguishedNameToAsn1(issuerCert.subject),
    time(options.now),
    time(issuerCert.validity.notAfter),
    ...(entries.length > 0 ? [asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, entries)] : []), // §5.1.2.6: absent when empty
    extensions,
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = createSign('sha256').update(tbsDer).sign(options.issuer.keyPem);
  const list = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    tbs,
    algorithm(),
    asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, String.fromCharCode(0) + signature.toString('binary')),
  ]);
  const der = Buffer.from(asn1.toDer(list).getBytes(), 'binary').toString('base64');
  return `-----BEGIN X509 CRL-----\n${der.match(/.{1,64}/g)!.join('\n')}\n-----END X509 CRL-----\n`;
}

function integerHex(value: number): string {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Number.parseInt(hex.slice(0, 2), 16) >= 0x80 ? `00${hex}` : hex;
}
