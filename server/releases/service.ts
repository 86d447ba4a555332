import type { BundleVersion } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { bundleReleasesTopic, type BundleReleaseNotice } from '../../protocol/messages.ts';

/** What the notices are made of, asked of the capabilities that own it (wired in app.ts). */
export interface ReleaseSources {
  /** Per bundle that ever had an approved version: its newest one not revoked, or null. */
  heads(bundle?: string): Promise<{ bundle: string; latest: BundleVersion | null }[]>;
  /** The distinct users whose approvals made a version approved. */
  approvers(bundle: string, version: string): Promise<string[]>;
}

/** Where notices go: the broker (embedded aedes, or an external one). */
export interface NoticePublisher {
  publish(topic: string, payload: string, retain: boolean): Promise<void>;
}

/**
 * Release notices for people and their tools (CI jobs, dashboards), fed by the approvals
 * capability's "approved" and "revoked" events. The bundle's topic `convoy/v1/bundles/<name>/releases`
 * holds one retained message: the newest release still approved, so a subscriber that connects
 * later learns what to use now, never a revoked version. A revocation is told live as a
 * `withdrawn` notice (not retained), then the retained message is replaced with the release that
 * is newest now, or cleared when none is left: an empty retained payload deletes the retained
 * message (MQTT 3.1.1 §3.3.1.3), which is why a subscriber ignores empty payloads.
 * Nothing is stored here: at start the notices are derived again from bundles and approvals
 * (the embedded broker keeps retained messages in memory only; an external one keeps them, so a
 * stale notice there is replaced or cleared too).
 */
export function createReleaseNotices(deps: { sources: ReleaseSources; publisher: () => NoticePublisher; now: () => Date; log: Logger }) {
  const publish = (bundle: string, payload: string, retain: boolean) => deps.publisher().publish(bundleReleasesTopic(bundle), payload, retain);

  async function approvedNotice(version: BundleVersion, approvers?: string[]): Promise<BundleReleaseNotice> {
    return {
      type: 'approved',
      bundle: version.bundle,
      version: version.version,
      manifestDigest: version.manifestDigest!,
      approvers: approvers ?? (await deps.sources.approvers(version.bundle, version.version)),
      at: version.approvedAt!,
    };
  }

  /** Sets the bundle's retained notice to its newest approved release, or clears it. */
  async function retainHead(bundle: string, latest: BundleVersion | null): Promise<void> {
    await publish(bundle, latest ? JSON.stringify(await approvedNotice(latest)) : '', true);
  }

  /** A broker failure never undoes an approval or a revocation: it is logged. */
  const logFailure = (what: string, version: { bundle: string; version: string }) => (error: unknown) =>
    deps.log.error(`could not publish a release notice (${what})`, { bundle: version.bundle, version: version.version, error });

  return {
    /** Event: a version became approved. It is the newest release now: retained. */
    async approved(version: BundleVersion, approvers: string[]): Promise<void> {
      if (!version.manifestDigest || !version.approvedAt) return;
      await publish(version.bundle, JSON.stringify(await approvedNotice(version, approvers)), true).catch(logFailure('approved', version));
    },

    /** Event: a version was revoked. Tell live subscribers, then fix what later ones will hear. */
    async revoked(version: BundleVersion): Promise<void> {
      if (!version.manifestDigest || !version.approvedAt) return;
      const withdrawn: BundleReleaseNotice = {
        type: 'withdrawn',
        bundle: version.bundle,
        version: version.version,
        manifestDigest: version.manifestDigest,
        approvers: await deps.sources.approvers(version.bundle, version.version),
        at: deps.now().toISOString(),
      };
      try {
        await publish(version.bundle, JSON.stringify(withdrawn), false);
        const [head] = await deps.sources.heads(version.bundle);
        const latest = head?.latest ?? null;
        // The retained notice named the revoked version only if no remaining release is newer.
        if (!latest || latest.approvedAt! <= version.approvedAt) await retainHead(version.bundle, latest);
      } catch (error) {
        logFailure('withdrawn', version)(error);
      }
    },

    /** At start: each bundle's retained notice set again from the database. */
    async announceLatest(): Promise<void> {
      for (const { bundle, latest } of await deps.sources.heads()) await retainHead(bundle, latest);
    },
  };
}

export type ReleaseNotices = ReturnType<typeof createReleaseNotices>;
