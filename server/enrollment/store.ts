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
  revoked_at?: string | null;
  revoked_by?: string | null;
}

export interface DeviceCertificateRow {
  serial: string;
  device_id: string;
  fingerprint: string | null;
  not_after: string;
  issued_at: string;
  revoked_at: string | null;
}

export function createEnrollmentStore(db: Db) {
  return {
    db,
    async insertToken(row: Omit<EnrollmentTokenRow, 'id'>): Promise<number> {
      const [inserted] = await db('enrollment_tokens').insert(row).returning<{ id: number }[]>('id');
      return inserted!.id;
    },

    /** The token with this hash, live or not (the service says why one is refused). */
    async findToken(hash: string, trx: Db = db): Promise<EnrollmentTokenRow | undefined> {
      return trx('enrollment_tokens').where({ hash }).first<EnrollmentTokenRow | undefined>();
    },

    async findTokenById(id: number): Promise<EnrollmentTokenRow | undefined> {
      return db('enrollment_tokens').where({ id }).first<EnrollmentTokenRow | undefined>();
    },

    /** Live tokens (a use left, not expired, not revoked), newest first. */
    async listLiveTokens(now: string, filter: { group?: string | undefined } = {}): Promise<EnrollmentTokenRow[]> {
      const query = db('enrollment_tokens').where('uses_left', '>', 0).andWhere('expires_at', '>', now).whereNull('revoked_at').orderBy('id', 'desc');
      if (filter.group !== undefined) query.andWhere({ group_name: filter.group });
      return query.select<EnrollmentTokenRow[]>();
    },

    /** Marks the token revoked once (a second revoke changes nothing and answers false). */
    async revokeToken(id: number, now: string, by: string): Promise<boolean> {
      return (await db('enrollment_tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: now, revoked_by: by })) === 1;
    },

    /**
     * Takes one use, if one is left and the token is live: a conditional update, so two devices
     * racing for the last use cannot both win (the database serialises the two updates).
     */
    async takeUse(id: number, now: string, trx: Db): Promise<boolean> {
      const updated = await trx('enrollment_tokens').where({ id }).andWhere('uses_left', '>', 0).andWhere('expires_at', '>', now).whereNull('revoked_at').update({ uses_left: trx.raw('uses_left - 1') });
      return updated === 1;
    },

    async recordCertificate(row: { serial: string; device_id: string; fingerprint: string; not_after: string; issued_at: string }, trx: Db = db): Promise<void> {
      await trx('device_certificates').insert(row);
    },

    async revokeCertificates(deviceId: string, now: string): Promise<number> {
      return db('device_certificates').where({ device_id: deviceId }).whereNull('revoked_at').update({ revoked_at: now });
    },

    /** Every certificate issued to the device, newest first. */
    async listCertificates(deviceId: string): Promise<DeviceCertificateRow[]> {
      return db('device_certificates').where({ device_id: deviceId }).orderBy([{ column: 'issued_at', order: 'desc' }, { column: 'serial', order: 'desc' }]).select<DeviceCertificateRow[]>('serial', 'device_id', 'fingerprint', 'not_after', 'issued_at', 'revoked_at');
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
