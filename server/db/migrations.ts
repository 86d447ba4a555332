import type { Knex } from 'knex';

/*
 * Migrations live in code (not a directory scanned at run time) so they work the same under tsx,
 * in tests and in a bundled build. Append only: a shipped migration is never edited.
 */
interface Migration {
  name: string;
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
}

const initial: Migration = {
  name: '0001_initial',
  async up(db) {
    await db.schema.createTable('users', (t) => {
      t.increments('id').primary();
      t.string('name', 64).notNullable().unique();
      t.boolean('is_admin').notNullable().defaultTo(false);
      t.string('created_at', 32).notNullable();
    });
    await db.schema.createTable('devices', (t) => {
      t.string('id', 64).primary();
      t.string('group_name', 64).notNullable().index();
      t.string('state', 16);
      t.string('installed_bundle', 64);
      t.string('installed_version', 128);
      t.string('target_bundle', 64);
      t.string('target_version', 128);
      t.string('error_code', 64);
      t.string('error_message', 1000);
      t.string('last_seen_at', 32);
      t.string('created_at', 32).notNullable();
    });
    // A token belongs to a user or to a device. Only its SHA-256 is stored.
    await db.schema.createTable('tokens', (t) => {
      t.increments('id').primary();
      t.string('hash', 64).notNullable().unique();
      t.integer('user_id').references('users.id').onDelete('CASCADE');
      t.string('device_id', 64).references('devices.id').onDelete('CASCADE');
      t.string('name', 128).notNullable();
      t.string('created_at', 32).notNullable();
      t.string('expires_at', 32);
      t.string('revoked_at', 32);
      t.string('last_used_at', 32);
    });
    await db.schema.createTable('bundles', (t) => {
      t.string('name', 64).primary();
      t.string('description', 1000).notNullable().defaultTo('');
      t.string('created_at', 32).notNullable();
    });
    await db.schema.createTable('versions', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable().references('bundles.name').onDelete('CASCADE');
      t.string('version', 128).notNullable();
      t.string('status', 16).notNullable();
      t.string('created_at', 32).notNullable();
      t.string('approved_at', 32);
      t.string('manifest_digest', 71);
      t.bigInteger('manifest_size');
      t.unique(['bundle', 'version']);
    });
    await db.schema.createTable('artifacts', (t) => {
      t.integer('version_id').notNullable().references('versions.id').onDelete('CASCADE');
      t.string('name', 128).notNullable();
      t.string('type', 16).notNullable();
      t.string('digest', 71).notNullable().index();
      t.bigInteger('size').notNullable();
      t.string('updated_at', 32).notNullable();
      t.primary(['version_id', 'name']);
    });
    await db.schema.createTable('deployments', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable();
      t.string('version', 128).notNullable();
      t.string('group_name', 64).notNullable().index();
      t.string('created_by', 64).notNullable();
      t.string('created_at', 32).notNullable();
    });
  },
  async down(db) {
    for (const table of ['deployments', 'artifacts', 'versions', 'bundles', 'tokens', 'devices', 'users']) {
      await db.schema.dropTableIfExists(table);
    }
  },
};

/** Packages as first-class artifacts: what the package says it is, filterable. */
const bundles: Migration = {
  name: '0005_bundles',
  async up(db) {
    await db.schema.alterTable('artifacts', (t) => {
      t.string('package_format', 16);
      t.string('package_name', 214);
      t.string('package_version', 128);
      t.string('package_arch', 32);
      t.index(['package_name']);
    });
  },
  async down(db) {
    await db.schema.alterTable('artifacts', (t) => {
      t.dropIndex(['package_name']);
      t.dropColumns('package_format', 'package_name', 'package_version', 'package_arch');
    });
  },
};

export const migrations: readonly Migration[] = [initial, bundles];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (migration) => migration.name,
  getMigration: async (migration) => ({ up: (db) => migration.up(db), down: (db) => migration.down(db) }),
};
