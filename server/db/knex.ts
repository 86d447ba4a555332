import fs from 'node:fs/promises';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { migrationSource } from './migrations.ts';

export type Db = Knex;

/**
 * Opens the database (SQLite in the data dir unless a PostgreSQL URL is given) and brings its
 * schema up to date. The same knex queries run on both engines.
 */
export async function openDatabase(options: { databaseUrl: string | undefined; dataDir: string }): Promise<Db> {
  // The SQLite file is made (or tightened) 0600 before SQLite opens it; SQLite gives its -wal and
  // -shm files the database file's permissions.
  if (!options.databaseUrl) await makePrivateFile(path.join(options.dataDir, 'convoy.sqlite'));
  const db = options.databaseUrl
    ? knex({ client: 'pg', connection: options.databaseUrl, pool: { min: 0, max: 10 } })
    : knex({
        client: 'sqlite3',
        connection: { filename: path.join(options.dataDir, 'convoy.sqlite') },
        useNullAsDefault: true,
        // One connection: SQLite serialises writers anyway, and a single connection makes
        // transactions and PRAGMAs behave predictably.
        pool: {
          min: 1,
          max: 1,
          afterCreate: (conn: { run: (sql: string, cb: (err: Error | null) => void) => void }, done: (err: Error | null, conn: unknown) => void) => {
            conn.run('PRAGMA foreign_keys = ON', (err) => {
              if (err) return done(err, conn);
              conn.run('PRAGMA journal_mode = WAL', (err2) => done(err2, conn));
            });
          },
        },
      });
  try {
    await db.migrate.latest({ migrationSource });
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return db;
}

async function makePrivateFile(file: string): Promise<void> {
  await (await fs.open(file, 'a', 0o600)).close();
  await fs.chmod(file, 0o600);
}

/** ISO-8601 text timestamps: identical on SQLite and PostgreSQL, sortable as strings. */
export function isoNow(now: () => Date): string {
  return now().toISOString();
}
