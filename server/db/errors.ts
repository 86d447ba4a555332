/**
 * What a failed query means, told apart the same way on both engines, so every store answers a
 * duplicate with `already_exists` instead of a 500. PostgreSQL reports SQLSTATE codes (Appendix A
 * of its manual: 23505 unique_violation, 23503 foreign_key_violation, 40001
 * serialization_failure); node-sqlite3 reports `SQLITE_CONSTRAINT` with the kind in the message.
 */
interface DbError {
  code?: unknown;
  message?: unknown;
}

function sqliteConstraint(error: unknown, kind: RegExp): boolean {
  const e = error as DbError;
  return e !== null && typeof e === 'object' && e.code === 'SQLITE_CONSTRAINT' && kind.test(String(e.message ?? ''));
}

function pgCode(error: unknown, code: string): boolean {
  const e = error as DbError;
  return e !== null && typeof e === 'object' && e.code === code;
}

/** A row with this key (primary or unique) already exists. */
export function isUniqueViolation(error: unknown): boolean {
  return pgCode(error, '23505') || sqliteConstraint(error, /UNIQUE|PRIMARY KEY/);
}

/** The row names a parent that does not exist (or a parent still has children). */
export function isForeignKeyViolation(error: unknown): boolean {
  return pgCode(error, '23503') || sqliteConstraint(error, /FOREIGN KEY/);
}

/** PostgreSQL gave up one of two conflicting transactions; running it again may succeed. */
export function isSerializationFailure(error: unknown): boolean {
  return pgCode(error, '40001') || pgCode(error, '40P01');
}
