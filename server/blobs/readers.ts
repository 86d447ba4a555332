import { actsAsAdmin, isAllowedOnBundle, type Action, type Principal } from '../auth/policy.ts';

/**
 * Who may read a blob by its digest. A blob belongs to no bundle by itself (the store is
 * content-addressed and shared), so it may be read by whoever may read at least one bundle that
 * holds it: a version (draft or approved) naming it as an artifact or a manifest, an OCI
 * repository of the bundle holding it, an open offline proposal's manifest. Every table that
 * names blobs contributes its bundles, as it contributes its digests to the garbage collector.
 */
export type BundleSource = (digest: string) => Promise<readonly string[]>;

export interface BlobReaders {
  /** The bundles holding the digest, across every source. */
  bundlesOf(digest: string): Promise<Set<string>>;
  /**
   * Whether the principal may read the digest through `action`. False for a digest no bundle
   * holds (an upload not yet named by a draft): only instance admins see those, since nobody
   * else can be told apart from someone who merely guessed the digest.
   */
  mayRead(principal: Principal, action: Action, digest: string): Promise<boolean>;
  /**
   * Whether a writer of `bundle` may name a stored digest in its draft: a blob no bundle holds
   * yet (just uploaded), one the bundle holds already, or one the caller may read elsewhere.
   * Naming is a read in disguise: once named, the blob is readable through the bundle.
   */
  mayName(principal: Principal, digest: string, bundle: string): Promise<boolean>;
  /** Whether the principal may read a bundle's content through `action` (devices: their group's bundles). */
  mayReadBundle(principal: Principal, action: Action, bundle: string): Promise<boolean>;
}

export function createBlobReaders(deps: {
  sources: readonly BundleSource[];
  /** The bundles a device may run (those deployed to it or to its group). */
  deviceBundles: (device: { deviceId: string; group: string }) => Promise<readonly string[]>;
}): BlobReaders {
  const runsOf = async (principal: Principal): Promise<Set<string>> =>
    principal.type === 'device' ? new Set(await deps.deviceBundles(principal)) : new Set();
  const bundlesOf = async (digest: string): Promise<Set<string>> => {
    const found = new Set<string>();
    for (const source of deps.sources) for (const bundle of await source(digest)) found.add(bundle);
    return found;
  };
  return {
    bundlesOf,
    async mayRead(principal, action, digest) {
      const runs = await runsOf(principal);
      // Source by source, stopping at the first bundle that answers: the common read (an
      // artifact of one's own bundle) costs one query, not one per table.
      for (const source of deps.sources) {
        for (const bundle of await source(digest)) if (isAllowedOnBundle(principal, action, bundle, runs)) return true;
      }
      // An admin (acting as one) may read what no bundle holds yet, e.g. to inspect an upload.
      return principal.type === 'user' && actsAsAdmin(principal) && isAllowedOnBundle(principal, action, '', runs);
    },
    async mayName(principal, digest, bundle) {
      const holders = await bundlesOf(digest);
      if (holders.size === 0 || holders.has(bundle)) return true;
      const runs = await runsOf(principal);
      return [...holders].some((holder) => isAllowedOnBundle(principal, 'blob:read', holder, runs));
    },
    async mayReadBundle(principal, action, bundle) {
      return isAllowedOnBundle(principal, action, bundle, await runsOf(principal));
    },
  };
}
