import type { Db } from '../db/knex.ts';

/** knex queries for enrollment tokens and issued device certificates. No rules here: the service decides. */

export interface EnrollmentTokenRow {
  id: number;
  hash: string;
  group_name: string | null;
  device_id: string | null;
  uses: number;
  uses_left: number;
  expires_at: string;
  created_by: string;
  created_at: string;
}

export function createEnrollmentStore(db: Db) {
  return {
    db,
    async insertToken(row: Omit<EnrollmentTokenRow, 'id'>): Promise<number> {
      const [inserted] = await db('enrollment_tokens').insert(row).returning<{ id: number }[]>('id');
      return inserted!.id;
    },

    async findLiveToken(hash: string, now: string, trx: Db = db): Promise<EnrollmentTokenRow | undefined> {
      return trx('enrollment_tokens').where({ hash }).andWhere('uses_left', '>', 0).andWhere('expires_at', '>', now).first<EnrollmentTokenRow | undefined>();
    },

    /**
     * Takes one use, if one is left and the token is live: a conditional update, so two devices
     * racing for the last use cannot both win (the database serialises the two updates).
     */
    async takeUse(id: number, now: string, trx: Db): Promise<boolean> {
      const updated = await trx('enrollment_tokens').where({ id }).andWhere('uses_left', '>', 0).andWhere('expires_at', '>', now).update({ uses_left: trx.raw('uses_left - 1') });
      return updated === 1;
    },

    async recordCertificate(row: { serial: string; device_id: string; not_after: string; issued_at: string }, trx: Db = db): Promise<void> {
      await trx('device_certificates').insert(row);
    },

    async revokeCertificates(deviceId: string, now: string): Promise<number> {
      return db('device_certificates').where({ device_id: deviceId }).whereNull('revoked_at').update({ revoked_at: now });
    },

    /** Revoked certificates not yet expired: what the CRL lists (an expired one is refused anyway, RFC 5280 §3.3). */
    async revokedCertificates(now: string): Promise<{ serial: string; revoked_at: string }[]> {
      return db('device_certificates').whereNotNull('revoked_at').andWhere('not_after', '>', now).orderBy('serial').select('serial', 'revoked_at');
    },

    /** Many certificates in few statements (chunks of 400: SQLite's bound-parameter limit is far above). */
    async findCertificates(serials: readonly string[]): Promise<Map<string, { serial: string; device_id: string; revoked_at: string | null }>> {
      const found = new Map<string, { serial: string; device_id: string; revoked_at: string | null }>();
      for (let i = 0; i < serials.length; i += 400) {
        const rows = await db('device_certificates').whereIn('serial', serials.slice(i, i + 400)).select<{ serial: string; device_id: string; revoked_at: string | null }[]>('serial', 'device_id', 'revoked_at');
        for (const row of rows) found.set(row.serial, row);
      }
      return found;
    },

    async findCertificate(serial: string): Promise<{ serial: string; device_id: string; revoked_at: string | null } | undefined> {
      return db('device_certificates').where({ serial }).first();
    },
  };
}

export type EnrollmentStore = ReturnType<typeof createEnrollmentStore>;
