import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type Db } from '../../server/db/knex.ts';

/**
 * With CONVOY_DATABASE_URL set (as `.ci/run` does on its second pass), every test server gets a
 * database of its own on that PostgreSQL server, dropped afterwards; otherwise SQLite in its
 * temp data dir.
 */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const base = process.env.CONVOY_DATABASE_URL;
  if (!base) return undefined;
  const name = `convoy_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/**
 * A migrated database of the test's own (PostgreSQL when CONVOY_DATABASE_URL is set, else SQLite)
 * in a fresh temp data dir, destroyed and removed after `run`, whatever it did.
 */
export async function withDatabase<T>(run: (db: Db, dataDir: string) => Promise<T>, prefix = 'convoy-db-'): Promise<T> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const database = await createTestDatabase();
  const db = await openDatabase({ databaseUrl: database?.url, dataDir });
  try {
    return await run(db, dataDir);
  } finally {
    await db.destroy();
    await database?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}
