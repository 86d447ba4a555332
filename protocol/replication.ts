import semver from 'semver';
import * as z from 'zod';
import { pageQueryFields } from './api.ts';
import { parseCron } from './cron.ts';
import { artifactName, artifactType, bundleName, idPattern, version } from './names.ts';

/*
 * Replication (issue #12): edges (Convoy nodes in edge mode that mirror approved versions and
 * serve devices), registry endpoints (OCI registries a version's images are pushed to), policies
 * per bundle that say what goes where and when, and runs with one task per blob and metadata
 * file. The server validates requests with these schemas and the CLI validates answers with them.
 */

const timestamp = z.iso.datetime();

/** Edge and registry endpoint names share one namespace: a policy names its destinations by it. */
export const destinationName = z.string().regex(idPattern, 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
export const policyName = destinationName;

/**
 * Where an edge listens, for push mode (the origin opens the connections): http(s), a host, an
 * optional port and path prefix; no credentials, query or fragment (the origin signs in with the
 * edge's token as a bearer token).
 */
export const edgeUrl = z
  .string()
  .max(2048)
  .refine((text) => {
    try {
      const url = new URL(text);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.search === '' && url.hash === '';
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL of the edge (e.g. https://shop-eu.example.com:8443), without credentials, query or fragment');

export const createEdgeRequest = z.strictObject({ name: destinationName, description: z.string().max(1000).optional(), url: edgeUrl.optional() });
/**
 * `PATCH /api/v1/edges/:edge`: a new advertised URL (null: none, the edge pulls). The origin keeps
 * only the hash of a token made before the edge had a URL, so giving one for the first time needs
 * the edge's token again (`token`, checked against that hash, then sealed).
 */
export const updateEdgeRequest = z.strictObject({ url: edgeUrl.nullable().optional(), description: z.string().max(1000).optional(), token: z.string().min(1).max(4096).optional() });
export const edge = z.strictObject({
  name: destinationName,
  description: z.string(),
  /** Where the origin pushes to (push mode); null: the edge pulls everything. */
  url: z.string().nullable(),
  createdAt: timestamp,
  /** When the edge last spoke to the origin with its token, or took a push from it (null: never). */
  lastSeenAt: timestamp.nullable(),
});
export type Edge = z.infer<typeof edge>;
/** Answer of `POST /api/v1/edges`: the edge's token is shown this once and never stored in clear. */
export const createdEdge = z.strictObject({ edge, token: z.string() });

/** An OCI registry URL: http(s), a host, an optional port; no path, query, fragment or user info. */
export const registryUrl = z
  .string()
  .max(2048)
  .refine((text) => {
    try {
      const url = new URL(text);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && (url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === '';
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL of a registry host (e.g. https://registry.example.com:5000), without a path or credentials');

/** A repository prefix at the destination (`site/convoy` → `site/convoy/<bundle>/<image>`). */
export const registryNamespace = z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/, 'must be lowercase path components (OCI repository name grammar)').max(128);

export const createRegistryRequest = z
  .strictObject({
    name: destinationName,
    url: registryUrl,
    namespace: registryNamespace.optional(),
    username: z.string().min(1).max(256).optional(),
    password: z.string().min(1).max(4096).optional(),
  })
  .refine((r) => (r.username === undefined) === (r.password === undefined), 'give both username and password, or neither');

/** A registry endpoint as the API shows it: whether it holds credentials, never what they are. */
export const registryEndpoint = z.strictObject({
  name: destinationName,
  url: z.string(),
  namespace: z.string().nullable(),
  credentials: z.boolean(),
  createdAt: timestamp,
});
export type RegistryEndpoint = z.infer<typeof registryEndpoint>;

export const semverRange = z
  .string()
  .min(1)
  .max(256)
  .refine((text) => semver.validRange(text) !== null, 'must be a semver range such as ">=2.0.0" or "^1.4"');

export const replicationFilter = z.strictObject({
  /** Versions the policy replicates (semver range; pre-releases only when the range names one). */
  versions: semverRange.optional(),
  /** Artifact types replicated (all when absent). */
  types: z.array(artifactType).min(1).max(10).optional(),
  /** Artifact names replicated (all when absent). */
  names: z.array(artifactName).min(1).max(1000).optional(),
});
export type ReplicationFilter = z.infer<typeof replicationFilter>;

export const replicationModes = ['push', 'pull'] as const;
export const replicationTrigger = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('manual') }),
  z.strictObject({ type: z.literal('approval') }),
  /** Five-field cron (minute hour day month weekday), evaluated in UTC. */
  z.strictObject({ type: z.literal('schedule'), cron: z.string().max(200).refine((text) => parseCron(text) !== undefined, 'must be five cron fields (minute hour day month weekday, UTC), e.g. "0 3 * * *"') }),
]);
export type ReplicationTrigger = z.infer<typeof replicationTrigger>;

const destinations = z.array(destinationName).min(1).max(100).refine((list) => new Set(list).size === list.length, 'must not repeat a destination');
/** Bytes per second, at least 1 KiB/s. */
const bandwidth = z.number().int().min(1024).max(Number.MAX_SAFE_INTEGER);

export const createPolicyRequest = z.strictObject({
  name: policyName,
  destinations,
  mode: z.enum(replicationModes).optional(),
  trigger: replicationTrigger.optional(),
  filter: replicationFilter.optional(),
  bandwidth: bandwidth.nullable().optional(),
  /** Whether revoking a version withdraws it from the destinations too. */
  propagateRevocations: z.boolean().optional(),
  enabled: z.boolean().optional(),
});
export const updatePolicyRequest = z
  .strictObject({
    destinations: destinations.optional(),
    mode: z.enum(replicationModes).optional(),
    trigger: replicationTrigger.optional(),
    filter: replicationFilter.optional(),
    bandwidth: bandwidth.nullable().optional(),
    propagateRevocations: z.boolean().optional(),
    enabled: z.boolean().optional(),
  })
  .refine((patch) => Object.keys(patch).length > 0, 'give at least one field to change');

export const destinationRef = z.strictObject({ type: z.enum(['edge', 'registry']), name: destinationName });
export type DestinationRef = z.infer<typeof destinationRef>;

export const replicationPolicy = z.strictObject({
  name: policyName,
  bundle: bundleName,
  destinations: z.array(destinationRef),
  mode: z.enum(replicationModes),
  trigger: replicationTrigger,
  filter: replicationFilter,
  bandwidth: z.number().int().nullable(),
  propagateRevocations: z.boolean(),
  enabled: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type ReplicationPolicy = z.infer<typeof replicationPolicy>;

export const runStatuses = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export const taskStatuses = ['pending', 'running', 'succeeded', 'failed', 'skipped'] as const;
/** What a task moves: a blob by digest, a signed metadata file by name, an image manifest by tag; `delete` withdraws a revoked version's tag. */
export const taskKinds = ['blob', 'metadata', 'manifest', 'delete'] as const;

export const replicationTask = z.strictObject({
  id: z.number().int().positive(),
  destination: destinationRef,
  kind: z.enum(taskKinds),
  /** The digest (blob), the file name (metadata) or `<repository>:<tag>` / `<repository>@<digest>` (manifest). */
  ref: z.string(),
  version,
  status: z.enum(taskStatuses),
  bytes: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative().nullable(),
  attempts: z.number().int().nonnegative(),
  error: z.string().nullable(),
});
export type ReplicationTask = z.infer<typeof replicationTask>;

export const replicationRun = z.strictObject({
  id: z.number().int().positive(),
  bundle: bundleName,
  policy: policyName,
  trigger: z.enum(['manual', 'approval', 'schedule', 'revocation']),
  versions: z.array(version),
  status: z.enum(runStatuses),
  startedAt: timestamp,
  finishedAt: timestamp.nullable(),
  by: z.string(),
  tasks: z.strictObject({ total: z.number().int(), succeeded: z.number().int(), failed: z.number().int(), skipped: z.number().int(), pending: z.number().int() }),
  /** Bytes sent so far over all tasks. */
  bytes: z.number().int().nonnegative(),
});
export type ReplicationRun = z.infer<typeof replicationRun>;
export const replicationRunDetail = z.strictObject({ run: replicationRun, tasks: z.array(replicationTask) });

/** `POST …/runs`: one version, or (without) every approved version the filter matches. */
export const startRunRequest = z.strictObject({ version: version.optional() });

export const edgePath = z.strictObject({ edge: destinationName });
export const registryPath = z.strictObject({ registry: destinationName });
export const policyPath = z.strictObject({ name: bundleName, policy: policyName });
export const runPath = z.strictObject({ name: bundleName, run: z.string().regex(/^[1-9]\d{0,15}$/, 'must be a run id').transform(Number) });
export const runListQuery = z.strictObject({ ...pageQueryFields, policy: policyName.optional() });

