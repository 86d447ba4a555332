import { createHash } from 'node:crypto';
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

/** Roles per bundle, token scopes, approvals (for release notices) and the audit log. */
const access: Migration = {
  name: '0002_access',
  async up(db) {
    // Comma-separated scopes; tokens made before scopes existed (the first admin's) keep all.
    await db.schema.alterTable('tokens', (t) => {
      t.string('scopes', 64);
    });
    await db('tokens').whereNotNull('user_id').update({ scopes: 'read,write,approve,deploy,admin' });
    await db.schema.createTable('members', (t) => {
      t.string('bundle', 64).notNullable().references('bundles.name').onDelete('CASCADE');
      t.integer('user_id').notNullable().references('users.id').onDelete('CASCADE').index();
      t.string('role', 16).notNullable();
      t.string('created_at', 32).notNullable();
      t.primary(['bundle', 'user_id']);
    });
    await db.schema.createTable('approvals', (t) => {
      t.increments('id').primary();
      t.integer('version_id').notNullable().references('versions.id').onDelete('CASCADE').index();
      t.string('user_name', 64).notNullable();
      t.string('approved_at', 32).notNullable();
    });
    await db.schema.createTable('audit_events', (t) => {
      t.increments('id').primary();
      t.string('at', 32).notNullable().index();
      t.string('actor', 80).index();
      t.string('action', 64).notNullable();
      t.string('method', 8).notNullable();
      t.string('target', 1000).notNullable();
      t.string('bundle', 64).index();
      t.string('outcome', 16).notNullable();
      t.integer('status').notNullable();
      t.string('error', 64);
      t.string('request_id', 64).notNullable();
    });
    // Append-only, enforced by the database itself: no code path (or mistaken query) may rewrite
    // or erase history. Both engines refuse UPDATE and DELETE on the table.
    if (db.client.config.client === 'pg') {
      await db.raw(`CREATE FUNCTION convoy_audit_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql`);
      await db.raw('CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION convoy_audit_append_only()');
    } else {
      for (const op of ['UPDATE', 'DELETE']) {
        await db.raw(`CREATE TRIGGER audit_events_no_${op.toLowerCase()} BEFORE ${op} ON audit_events BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`);
      }
    }
  },
  async down(db) {
    await db.schema.dropTableIfExists('audit_events');
    if (db.client.config.client === 'pg') await db.raw('DROP FUNCTION IF EXISTS convoy_audit_append_only()');
    for (const table of ['approvals', 'members']) await db.schema.dropTableIfExists(table);
    await db.schema.alterTable('tokens', (t) => {
      t.dropColumn('scopes');
    });
  },
};

/*
 * OCI distribution (server/oci/): manifests pushed per repository `<bundle>/<image>`, what each
 * manifest references (for pulls, referrers and the blob garbage collector), which blobs a
 * repository holds (so a pull or a mount never reveals another bundle's blobs) and upload
 * sessions in flight. Manifest and blob bytes live in the blob store.
 */
const oci: Migration = {
  name: '0004_oci',
  async up(db) {
    await db.schema.createTable('oci_manifests', (t) => {
      t.string('repository', 200).notNullable();
      t.string('digest', 71).notNullable().index();
      t.string('media_type', 255).notNullable();
      t.bigInteger('size').notNullable();
      t.string('subject', 71).index();
      t.string('artifact_type', 255);
      t.text('annotations');
      t.string('created_at', 32).notNullable();
      t.primary(['repository', 'digest']);
    });
    // Content-addressed, so keyed by the manifest digest alone: the same bytes reference the
    // same things in every repository.
    await db.schema.createTable('oci_manifest_refs', (t) => {
      t.string('manifest', 71).notNullable();
      t.string('ref', 71).notNullable().index();
      t.string('kind', 16).notNullable(); // 'blob' (config, layer) or 'manifest' (index child)
      t.primary(['manifest', 'ref']);
    });
    await db.schema.createTable('oci_repository_blobs', (t) => {
      t.string('repository', 200).notNullable();
      t.string('digest', 71).notNullable().index();
      t.string('created_at', 32).notNullable();
      t.primary(['repository', 'digest']);
    });
    await db.schema.createTable('oci_uploads', (t) => {
      t.string('id', 36).primary();
      t.string('repository', 200).notNullable();
      t.string('created_by', 64).notNullable();
      t.string('created_at', 32).notNullable().index();
    });
  },
  async down(db) {
    for (const table of ['oci_uploads', 'oci_repository_blobs', 'oci_manifest_refs', 'oci_manifests']) {
      await db.schema.dropTableIfExists(table);
    }
  },
};


/**
 * Trust (issue #3): who approved what and when, the approvals each bundle requires, revocations,
 * signed rollbacks, and the targets proposals approvers sign offline.
 */
const trust: Migration = {
  name: '0003_trust',
  async up(db) {
    await db.schema.createTable('trust_policies', (t) => {
      t.string('bundle', 64).primary().references('bundles.name').onDelete('CASCADE');
      t.integer('required_approvals').notNullable().defaultTo(1);
      t.string('updated_by', 128).notNullable();
      t.string('updated_at', 32).notNullable();
    });
    // Targets metadata approvers sign offline: the exact bytes they sign, and the version of the
    // draft's content it was made from (a later edit makes it stale).
    await db.schema.createTable('trust_proposals', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable();
      t.string('version', 128).notNullable();
      t.string('content_digest', 71).notNullable();
      t.string('manifest_digest', 71);
      t.bigInteger('manifest_size');
      t.integer('targets_version').notNullable();
      t.text('targets_signed').notNullable();
      t.string('state', 16).notNullable(); // open | published | stale
      t.string('created_at', 32).notNullable();
      t.index(['bundle', 'version']);
    });
    await db.schema.createTable('trust_approvals', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable();
      t.string('version', 128).notNullable();
      t.string('principal', 128).notNullable();
      t.string('content_digest', 71).notNullable();
      t.integer('proposal_id').references('trust_proposals.id').onDelete('CASCADE');
      t.string('key_id', 64);
      t.string('signature', 256);
      t.string('approved_at', 32).notNullable();
      t.index(['bundle', 'version']);
    });
    await db.schema.createTable('trust_revocations', (t) => {
      t.string('bundle', 64).notNullable();
      t.string('version', 128).notNullable();
      t.string('reason', 1000).notNullable();
      t.string('revoked_by', 128).notNullable();
      t.string('revoked_at', 32).notNullable();
      t.primary(['bundle', 'version']);
    });
    await db.schema.createTable('trust_rollbacks', (t) => {
      t.string('bundle', 64).notNullable();
      t.string('version', 128).notNullable();
      t.string('allowed_by', 128).notNullable();
      t.string('allowed_at', 32).notNullable();
      t.primary(['bundle', 'version']);
    });
  },
  async down(db) {
    for (const table of ['trust_rollbacks', 'trust_revocations', 'trust_approvals', 'trust_proposals', 'trust_policies']) await db.schema.dropTableIfExists(table);
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

/** Audit entries name the version and the device group acted on (deployments, new drafts). */
const auditReleases: Migration = {
  name: '0006_audit_releases',
  async up(db) {
    await db.schema.alterTable('audit_events', (t) => {
      t.string('version', 256);
      t.string('group_name', 64);
    });
  },
  async down(db) {
    await db.schema.alterTable('audit_events', (t) => {
      t.dropColumns('version', 'group_name');
    });
  },
};

/**
 * One approvals table (issue #9). Release notices kept their own `approvals` (the user whose
 * approval completed a version) beside trust's `trust_approvals` (every approval and offline
 * signature, tied to the content it saw). Trust keeps `trust_approvals`; a row of `approvals` it
 * does not already hold moves over; `approvals` goes. The content fingerprint now covers package
 * metadata too (everything the manifest signs), so approvals tied to a version's current content
 * under the old fingerprint are moved to the new one. Both fingerprints are copied here, frozen:
 * a migration must mean the same thing forever, whatever the code later calls a fingerprint.
 */
interface FrozenArtifact {
  name: string;
  type: string;
  digest: string;
  size: number | string;
  package_format: string | null;
  package_name: string | null;
  package_version: string | null;
  package_arch: string | null;
}
const byName = (a: FrozenArtifact, b: FrozenArtifact) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const sha256Text = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
/** The fingerprint before 0007: names, types, digests and sizes only. */
const fingerprintBefore0007 = (artifacts: FrozenArtifact[]) =>
  sha256Text(JSON.stringify([...artifacts].sort(byName).map((a) => [a.name, a.type, a.digest, Number(a.size)])));
/** The fingerprint from 0007: the manifest's artifact list, package metadata included. */
const fingerprint0007 = (artifacts: FrozenArtifact[]) =>
  sha256Text(
    JSON.stringify(
      [...artifacts].sort(byName).map((a) => ({
        name: a.name,
        type: a.type,
        digest: a.digest,
        size: Number(a.size),
        ...(a.package_format ? { package: { format: a.package_format, name: a.package_name, version: a.package_version, architecture: a.package_arch } } : {}),
      })),
    ),
  );

const oneApprovalsTable: Migration = {
  name: '0007_one_approvals_table',
  async up(db) {
    const versions = await db('versions').select<{ id: number; bundle: string; version: string; status: string }[]>('id', 'bundle', 'version', 'status');
    for (const v of versions) {
      const artifacts = await db('artifacts').where({ version_id: v.id }).select<FrozenArtifact[]>('*');
      const before = fingerprintBefore0007(artifacts);
      const after = fingerprint0007(artifacts);
      const frozen = v.status !== 'draft';
      if (before !== after) {
        // A draft's offline signatures were given over a proposal whose manifest lacked package
        // metadata: they stay with that (now stale) proposal. Plain approvals move.
        const moved = db('trust_approvals').where({ bundle: v.bundle, version: v.version, content_digest: before });
        if (!frozen) moved.whereNull('proposal_id');
        await moved.update({ content_digest: after });
      }
      if (!frozen) continue;
      const legacy = await db('approvals').where({ version_id: v.id }).orderBy('id').select<{ user_name: string; approved_at: string }[]>('user_name', 'approved_at');
      for (const row of legacy) {
        const known = await db('trust_approvals').where({ bundle: v.bundle, version: v.version, principal: row.user_name }).first();
        if (!known) await db('trust_approvals').insert({ bundle: v.bundle, version: v.version, principal: row.user_name, content_digest: after, approved_at: row.approved_at });
      }
    }
    await db.schema.dropTable('approvals');
  },
  async down(db) {
    await db.schema.createTable('approvals', (t) => {
      t.increments('id').primary();
      t.integer('version_id').notNullable().references('versions.id').onDelete('CASCADE').index();
      t.string('user_name', 64).notNullable();
      t.string('approved_at', 32).notNullable();
    });
    const rows = await db('trust_approvals')
      .join('versions', function () {
        this.on('versions.bundle', '=', 'trust_approvals.bundle').andOn('versions.version', '=', 'trust_approvals.version');
      })
      .whereNot('versions.status', 'draft')
      .orderBy('trust_approvals.id')
      .select<{ version_id: number; user_name: string; approved_at: string }[]>('versions.id as version_id', 'trust_approvals.principal as user_name', 'trust_approvals.approved_at');
    for (const row of rows) await db('approvals').insert(row);
  },
};

/**
 * Rollouts (issue #10, #14 items 2 and 4): device groups as owned resources (static or dynamic by
 * a filter over inventory), device inventory, online state, report sequence numbers, state
 * history, decommissioning; deployments with a lifecycle, phases and a retry policy, and each
 * targeted device's progress with its phase chosen once and stored.
 */
const rollouts: Migration = {
  name: '0008_rollouts',
  async up(db) {
    await db.schema.createTable('device_groups', (t) => {
      t.string('name', 64).primary();
      t.string('kind', 16).notNullable(); // static | dynamic
      t.string('description', 1000).notNullable().defaultTo('');
      t.string('filter', 1000);
      t.string('created_by', 128).notNullable();
      t.string('created_at', 32).notNullable();
    });
    await db.schema.createTable('group_members', (t) => {
      t.string('group_name', 64).notNullable().references('device_groups.name').onDelete('CASCADE');
      t.integer('user_id').notNullable().references('users.id').onDelete('CASCADE').index();
      t.string('role', 16).notNullable();
      t.string('created_at', 32).notNullable();
      t.primary(['group_name', 'user_id']);
    });
    await db.schema.alterTable('devices', (t) => {
      t.text('inventory');
      t.boolean('online').notNullable().defaultTo(false);
      t.bigInteger('last_seq');
      t.string('decommissioned_at', 32);
    });
    await db.schema.createTable('device_events', (t) => {
      t.increments('id').primary();
      t.string('device_id', 64).notNullable().index();
      t.integer('deployment_id');
      t.string('state', 32).notNullable();
      t.string('detail', 1000);
      t.string('at', 32).notNullable();
    });
    await db.schema.alterTable('deployments', (t) => {
      t.string('state', 16).notNullable().defaultTo('completed');
      t.text('phases');
      t.integer('phase').notNullable().defaultTo(0);
      t.string('phase_started_at', 32);
      t.bigInteger('soak_ms').notNullable().defaultTo(0);
      t.string('max_failures', 64);
      t.string('retry', 200);
      t.boolean('rollback').notNullable().defaultTo(false);
      t.string('reason', 1000);
      t.string('start_at', 32);
      t.string('updated_at', 32);
      // Failures the operator accepted by resuming: the threshold counts only those beyond.
      t.integer('failures_accepted').notNullable().defaultTo(0);
    });
    await db.schema.createTable('deployment_devices', (t) => {
      t.integer('deployment_id').notNullable().references('deployments.id').onDelete('CASCADE');
      t.string('device_id', 64).notNullable().index();
      t.integer('phase').notNullable();
      t.string('state', 16).notNullable();
      t.integer('attempt').notNullable().defaultTo(0);
      t.string('error_code', 64);
      t.string('error_message', 1000);
      // When the device was last sent this deployment's notice (null: not yet, still pending).
      t.string('notified_at', 32);
      t.string('updated_at', 32).notNullable();
      t.primary(['deployment_id', 'device_id']);
      t.index(['deployment_id', 'state']);
    });
    await db.schema.createTable('deployment_events', (t) => {
      t.increments('id').primary();
      t.integer('deployment_id').notNullable().references('deployments.id').onDelete('CASCADE');
      t.string('device_id', 64);
      t.string('state', 32).notNullable();
      t.string('detail', 1000);
      t.string('at', 32).notNullable();
      t.index(['deployment_id', 'device_id']);
    });
    // Groups that devices or deployments already name become static groups, owned by admins.
    const names = new Set<string>([
      ...(await db('devices').distinct('group_name')).map((r: { group_name: string }) => r.group_name),
      ...(await db('deployments').distinct('group_name')).map((r: { group_name: string }) => r.group_name),
    ]);
    const now = new Date().toISOString();
    for (const name of names) await db('device_groups').insert({ name, kind: 'static', description: '', created_by: 'migration', created_at: now });
  },
  async down(db) {
    for (const table of ['deployment_events', 'deployment_devices', 'device_events', 'group_members', 'device_groups']) await db.schema.dropTableIfExists(table);
    await db.schema.alterTable('deployments', (t) => {
      t.dropColumns('state', 'phases', 'phase', 'phase_started_at', 'soak_ms', 'max_failures', 'retry', 'rollback', 'reason', 'start_at', 'updated_at', 'failures_accepted');
    });
    await db.schema.alterTable('devices', (t) => {
      t.dropColumns('inventory', 'online', 'last_seq', 'decommissioned_at');
    });
  },
};

/*
 * Replication (server/replication/ owns these tables): edges, registry endpoints (credentials
 * sealed with AES-256-GCM), policies per bundle, runs, their tasks, and what each destination
 * is known to hold (so a blob already there is never sent again).
 */
const replication: Migration = {
  name: '0009_replication',
  async up(db) {
    await db.schema.createTable('replication_edges', (t) => {
      t.string('name', 64).primary();
      t.string('description', 1000).notNullable().defaultTo('');
      t.string('token_hash', 64).notNullable().unique();
      t.string('created_at', 32).notNullable();
      t.string('last_seen_at', 32);
    });
    await db.schema.createTable('replication_registries', (t) => {
      t.string('name', 64).primary();
      t.string('url', 2048).notNullable();
      t.string('namespace', 128);
      t.text('sealed_username');
      t.text('sealed_password');
      t.string('created_at', 32).notNullable();
    });
    await db.schema.createTable('replication_policies', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable();
      t.string('name', 64).notNullable();
      t.text('destinations').notNullable();
      t.string('mode', 8).notNullable();
      t.text('trigger').notNullable();
      t.text('filter').notNullable();
      t.bigInteger('bandwidth');
      t.boolean('propagate_revocations').notNullable();
      t.boolean('enabled').notNullable();
      t.string('created_at', 32).notNullable();
      t.string('updated_at', 32).notNullable();
      t.unique(['bundle', 'name']);
    });
    await db.schema.createTable('replication_runs', (t) => {
      t.increments('id').primary();
      t.string('bundle', 64).notNullable();
      t.string('policy', 64).notNullable();
      t.string('trigger', 16).notNullable();
      t.text('versions').notNullable();
      t.string('status', 16).notNullable();
      t.string('by', 128).notNullable();
      t.string('started_at', 32).notNullable();
      t.string('finished_at', 32);
      t.index(['bundle', 'policy']);
    });
    await db.schema.createTable('replication_tasks', (t) => {
      t.increments('id').primary();
      t.integer('run_id').notNullable().references('replication_runs.id').onDelete('CASCADE').index();
      t.string('destination_type', 16).notNullable();
      t.string('destination', 64).notNullable();
      t.string('kind', 16).notNullable();
      t.string('ref', 512).notNullable();
      t.string('version', 128).notNullable();
      t.string('digest', 71);
      t.string('media_type', 255);
      t.bigInteger('size').notNullable();
      t.string('status', 16).notNullable();
      t.bigInteger('bytes').notNullable().defaultTo(0);
      t.integer('duration_ms');
      t.integer('attempts').notNullable().defaultTo(0);
      t.string('error', 1000);
    });
    await db.schema.createTable('replication_held', (t) => {
      t.string('destination_type', 16).notNullable();
      t.string('destination', 64).notNullable();
      t.string('repository', 256).notNullable().defaultTo('');
      t.string('digest', 71).notNullable();
      t.string('recorded_at', 32).notNullable();
      t.primary(['destination_type', 'destination', 'repository', 'digest']);
    });
  },
  async down(db) {
    for (const table of ['replication_held', 'replication_tasks', 'replication_runs', 'replication_policies', 'replication_registries', 'replication_edges']) await db.schema.dropTableIfExists(table);
  },
};

/**
 * Device identity (issue 11): enrollment tokens (only their SHA-256 stored; a token lets `uses`
 * devices join a group, or one device enroll again) and the certificates issued to devices,
 * by serial, so a renewal can be checked against what was issued and a device revoked.
 */
const enrollment: Migration = {
  name: '0010_enrollment',
  async up(db) {
    await db.schema.createTable('enrollment_tokens', (t) => {
      t.increments('id').primary();
      t.string('hash', 64).notNullable().unique();
      t.string('group_name', 64);
      t.string('device_id', 64);
      t.integer('uses').notNullable();
      t.integer('uses_left').notNullable();
      t.string('expires_at', 32).notNullable();
      t.string('created_by', 64).notNullable();
      t.string('created_at', 32).notNullable();
    });
    await db.schema.createTable('device_certificates', (t) => {
      t.string('serial', 64).primary();
      t.string('device_id', 64).notNullable().references('devices.id').onDelete('CASCADE').index();
      t.string('not_after', 32).notNullable();
      t.string('issued_at', 32).notNullable();
      t.string('revoked_at', 32);
    });
  },
  async down(db) {
    await db.schema.dropTable('device_certificates');
    await db.schema.dropTable('enrollment_tokens');
  },
};

/**
 * Per-bundle TUF roles: an offline approver signs every document a change needs (the bundle's
 * role, and top-level targets when a delegation is added or removed); `signature` keeps the one
 * over the bundle's role, `more_signatures` the others as JSON `{ "<role>": "<hex>" }`.
 */
const bundleRoles: Migration = {
  name: '0011_bundle_roles',
  async up(db) {
    await db.schema.alterTable('trust_approvals', (t) => {
      t.text('more_signatures');
    });
  },
  async down(db) {
    await db.schema.alterTable('trust_approvals', (t) => {
      t.dropColumn('more_signatures');
    });
  },
};

/**
 * Enrollment tokens can be revoked (a leaked batch token stops at once, and enrolling with it says
 * so), and each issued certificate keeps its SHA-256 fingerprint so operators can match it with
 * what a device holds (`openssl x509 -fingerprint -sha256`). Old certificates keep a null one.
 */
const enrollmentRevocation: Migration = {
  name: '0012_enrollment_revocation',
  async up(db) {
    await db.schema.alterTable('enrollment_tokens', (t) => {
      t.string('revoked_at', 32);
      t.string('revoked_by', 64);
    });
    await db.schema.alterTable('device_certificates', (t) => {
      t.string('fingerprint', 95);
    });
  },
  async down(db) {
    await db.schema.alterTable('device_certificates', (t) => t.dropColumn('fingerprint'));
    await db.schema.alterTable('enrollment_tokens', (t) => {
      t.dropColumn('revoked_by');
      t.dropColumn('revoked_at');
    });
  },
};

/**
 * Push mode to edges (issue #12): an edge may advertise a URL the origin opens connections to;
 * then the origin keeps the edge's token sealed (AES-256-GCM under CONVOY_SECRET_KEY, as registry
 * credentials) to sign in at the edge. Edges without a URL keep a null pair and pull.
 */
const edgePush: Migration = {
  name: '0013_edge_push',
  async up(db) {
    await db.schema.alterTable('replication_edges', (t) => {
      t.string('url', 2048);
      t.text('sealed_token');
    });
  },
  async down(db) {
    await db.schema.alterTable('replication_edges', (t) => {
      t.dropColumn('sealed_token');
      t.dropColumn('url');
    });
  },
};

export const migrations: readonly Migration[] = [initial, access, trust, oci, bundles, auditReleases, oneApprovalsTable, rollouts, replication, enrollment, bundleRoles, enrollmentRevocation, edgePush];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (migration) => migration.name,
  getMigration: async (migration) => ({ up: (db) => migration.up(db), down: (db) => migration.down(db) }),
};
