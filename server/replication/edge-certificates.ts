import { defaultValidityDays, describeCertificate, PkiError, signServerCsr } from '../../certs/pki.ts';
import type { EdgeCertificate, EdgeCertificateRequest } from '../../protocol/edge.ts';
import type { Logger } from '../../protocol/log.ts';
import type { FleetPki } from '../enrollment/pki.ts';
import { ApiError } from '../http/errors.ts';

/*
 * An edge's HTTPS certificate (issue 12): enrolled devices hold only a certificate from the fleet
 * CA and verify every server against the fleet root, so an edge that serves them needs a server
 * certificate from the same CA. The edge makes its key and sends a CSR for the names its devices
 * dial; signed in with its edge token, it gets a serverAuth-only certificate (it can never pass as
 * a device) with the chain and the root. Short-lived (defaultValidityDays.edge): the edge renews
 * it as devices renew theirs, so a removed edge's certificate soon ends.
 */
export async function signEdgeCertificate(deps: { pki: Pick<FleetPki, 'issuer'>; now: () => Date; log: Logger }, edge: string, request: EdgeCertificateRequest): Promise<EdgeCertificate> {
  const { issuer, chain, ca } = await deps.pki.issuer();
  let certificate: string;
  try {
    certificate = signServerCsr({ issuer, csrPem: request.csr, dns: request.dns, ip: request.ip, now: deps.now(), days: defaultValidityDays.edge });
  } catch (error) {
    if (error instanceof PkiError) throw new ApiError('invalid_request', `csr: ${error.message}`, { cause: error });
    throw error;
  }
  const described = describeCertificate(certificate);
  deps.log.info('signed an edge certificate', { edge, serial: described.serial, dns: request.dns, ip: request.ip, notAfter: described.notAfter.toISOString() });
  return { certificate, chain, ca, notAfter: described.notAfter.toISOString() };
}
