import type { Deployment } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { groupReleaseTopic, type ReleaseNotice } from '../../protocol/messages.ts';
import type { Broker } from '../broker/broker.ts';
import type { BundleService } from '../bundles/service.ts';
import type { Db } from '../db/knex.ts';

interface DeploymentRow {
  id: number;
  bundle: string;
  version: string;
  group_name: string;
  created_by: string;
  created_at: string;
}

function toDeployment(row: DeploymentRow): Deployment {
  return { id: row.id, bundle: row.bundle, version: row.version, group: row.group_name, createdAt: row.created_at, createdBy: row.created_by };
}

function noticeOf(deployment: Deployment): ReleaseNotice {
  return { type: 'release', deploymentId: deployment.id, group: deployment.group, bundle: deployment.bundle, version: deployment.version, issuedAt: deployment.createdAt };
}

/**
 * A deployment points a device group at one approved version. The database records it; the
 * retained MQTT notice tells the group's devices (and any device that connects later).
 */
export function createDeploymentService(deps: { db: Db; bundles: BundleService; broker: () => Broker; now: () => Date; log: Logger }) {
  const announce = (deployment: Deployment) => deps.broker().publish(groupReleaseTopic(deployment.group), JSON.stringify(noticeOf(deployment)), true);

  return {
    async create(input: { bundle: string; version: string; group: string }, createdBy: string): Promise<Deployment> {
      await deps.bundles.requireApproved(input.bundle, input.version);
      const [row] = await deps
        .db('deployments')
        .insert({ bundle: input.bundle, version: input.version, group_name: input.group, created_by: createdBy, created_at: deps.now().toISOString() })
        .returning<DeploymentRow[]>('*');
      const deployment = toDeployment(row!);
      await announce(deployment);
      deps.log.info('deployed', { id: deployment.id, bundle: deployment.bundle, version: deployment.version, group: deployment.group });
      return deployment;
    },

    /** The group's latest release, as its retained MQTT notice says it: what a polling device asks. */
    async latestFor(group: string): Promise<ReleaseNotice | undefined> {
      const row = await deps.db<DeploymentRow>('deployments').where('group_name', group).orderBy('id', 'desc').first();
      return row ? noticeOf(toDeployment(row)) : undefined;
    },

    /**
     * The bundles a group's devices may read: every bundle ever deployed to the group (a device
     * may still be fetching, or rolling back to, the one deployed before the latest).
     */
    async bundlesFor(group: string): Promise<string[]> {
      const rows = await deps.db('deployments').where('group_name', group).distinct('bundle');
      return rows.map((r: { bundle: string }) => r.bundle);
    },

    async list(): Promise<Deployment[]> {
      return (await deps.db<DeploymentRow>('deployments').orderBy('id', 'desc')).map(toDeployment);
    },

    /**
     * The embedded broker keeps retained messages in memory only; after a restart the latest
     * deployment of each group is announced again, so devices never miss a release.
     */
    async announceLatest(): Promise<void> {
      const latest = await deps
        .db<DeploymentRow>('deployments')
        .whereIn('id', deps.db('deployments').max('id').groupBy('group_name'));
      for (const row of latest) await announce(toDeployment(row));
    },
  };
}

export type DeploymentService = ReturnType<typeof createDeploymentService>;
