import path from 'node:path';
import { createCrl, crlFileName, type RevokedCertificate } from '../../certs/crl.ts';
import type { KeyPair } from '../../certs/pki.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import type { Logger } from '../../protocol/log.ts';

/**
 * Keeps the fleet CA's revocation list on disk for a standard broker (Mosquitto's `crlfile`):
 * written at start and after every revocation, atomically (a broker reloading at that moment
 * reads the old list or the new one, never half of one). Mosquitto reads it at start and on
 * SIGHUP; the embedded broker needs none of this (it asks the database at each connection).
 * Writes are serialised, and one asked for while another runs is done once after it.
 */
export function createCrlWriter(deps: {
  dir: string;
  issuer: () => Promise<{ issuer: KeyPair }>;
  revoked: (now: Date) => Promise<RevokedCertificate[]>;
  now: () => Date;
  log: Logger;
}): { file: string; write(): Promise<void> } {
  const file = path.join(deps.dir, crlFileName);
  let running: Promise<void> | undefined;
  let again = false;
  async function writeOnce(): Promise<void> {
    const now = deps.now();
    const [{ issuer }, revoked] = await Promise.all([deps.issuer(), deps.revoked(now)]);
    await writeFileAtomic(file, createCrl({ issuer, revoked, now }));
    deps.log.info('wrote the certificate revocation list', { file, revoked: revoked.length });
  }
  return {
    file,
    write() {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await writeOnce();
          } while (again);
        } finally {
          running = undefined;
        }
      })();
      return running;
    },
  };
}
