import { hashToken } from '../../server/auth/tokens.ts';
import { openDatabase } from '../../server/db/knex.ts';
import type { TestServer } from '../helpers/server.ts';

/** Adds users straight into the server's database: the users API belongs to the permissions work. */
export async function addUsers(server: TestServer, names: string[], dataDir = server.dataDir): Promise<Record<string, string>> {
  // dataDir: the server's, when the test gave it one of its own (SQLite lives there).
  const db = await openDatabase({ databaseUrl: server.databaseUrl, dataDir });
  const tokens: Record<string, string> = {};
  try {
    // Token scopes arrive with the permissions work; give these users every scope when it is there.
    const scoped = await db.schema.hasColumn('tokens', 'scopes');
    for (const name of names) {
      const now = new Date().toISOString();
      const [row] = await db('users').insert({ name, is_admin: true, created_at: now }).returning<{ id: number }[]>('id');
      tokens[name] = `token-of-${name}-0123456789abcdef`;
      await db('tokens').insert({ hash: hashToken(tokens[name]), user_id: row!.id, name: `${name} token`, created_at: now, ...(scoped ? { scopes: 'read,write,approve,deploy,admin' } : {}) });
    }
  } finally {
    await db.destroy();
  }
  return tokens;
}

