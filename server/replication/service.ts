import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BundleVersion } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { bundleManifest } from '../../protocol/manifest.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import type {
  DestinationRef,
  Edge,
  RegistryEndpoint,
  ReplicationPolicy,
  ReplicationRun,
  ReplicationTask,
  createPolicyRequest,
  createRegistryRequest,
  updatePolicyRequest,
} from '../../protocol/replication.ts';
import type { z } from 'zod';
import type { EdgeTask, EdgeTaskList, EdgeTaskReport } from '../../protocol/edge.ts';
import { cronMatches, parseCron } from '../../protocol/cron.ts';
import { ApiError } from '../http/errors.ts';
import { planVersion, planWithdrawal, registryRepository, type ImageGraph, type PlannedTask } from './planner.ts';
import { createRegistryClient, RegistryError, type RegistryClient, type RegistryTarget } from './registry-client.ts';
import { SecretKeyMissing, type Sealer } from './secrets.ts';
import { createEdgePusher, EdgePushError, type EdgePusher, type EdgeTarget } from './edge-pusher.ts';
import type { EdgeRow, NewTask, PolicyRecord, RegistryRow, ReplicationStore, RunRow, TaskCounts, TaskRow } from './store.ts';

/*
 * Replication's behaviour: edges and registry endpoints (the destinations), policies per bundle,
 * and runs. A run plans each matching approved version with the pure planner (planner.ts),
 * records one task per blob, metadata file and manifest, then works through the tasks of
 * registry destinations (push); an edge's tasks wait for the edge to fetch them (pull).
 */

export interface ReplicationServiceDeps {
  store: ReplicationStore;
  sealer: Sealer;
  bundles: {
    getBundle(name: string): Promise<unknown>;
    listVersions(bundle: string, filter: { status?: 'approved' }, window?: { offset: number; limit: number }): Promise<{ items: BundleVersion[]; total: number }>;
    getVersion(bundle: string, version: string): Promise<BundleVersion>;
  };
  blobs: { stat(digest: string): Promise<{ size: number } | undefined>; readBytes(digest: string): Promise<Buffer>; openRead(digest: string, range?: { start: number; end: number }): Readable };
  /** The image graph of an image artifact (the OCI capability's data), by manifest digest. */
  imageGraph(digest: string): Promise<{ mediaType: string; children: { digest: string; mediaType: string; size: number }[]; blobs: string[] } | undefined>;
  /** The TUF metadata files an edge needs for a bundle (top-level ones and the bundle's role), with their sizes. */
  metadataFiles(bundle?: string): Promise<{ name: string; size: number }[]>;
  registryClient?: (target: RegistryTarget) => RegistryClient;
  /** A TUF metadata file's current bytes by name (push mode sends them to edges). */
  readMetadata?(name: string): Promise<Buffer | undefined>;
  edgePusher?: (target: EdgeTarget) => EdgePusher;
  /** How long a push to an edge waits for an answer (not for a whole blob), in milliseconds. */
  edgeTimeoutMs?: number;
  /** Tries per task and the first backoff (doubled each try), for transient failures. */
  retry?: { attempts: number; baseDelayMs: number };
  now: () => Date;
  log: Logger;
}

const defaultRetry = { attempts: 4, baseDelayMs: 500 };

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function toEdge(row: EdgeRow): Edge {
  return { name: row.name, description: row.description, url: row.url ?? null, createdAt: row.created_at, lastSeenAt: row.last_seen_at };
}

function toRegistry(row: RegistryRow): RegistryEndpoint {
  return { name: row.name, url: row.url, namespace: row.namespace, credentials: row.sealed_password !== null, createdAt: row.created_at };
}

function toPolicy(p: PolicyRecord): ReplicationPolicy {
  return { ...p };
}

function toRun(row: RunRow, counts: TaskCounts | undefined): ReplicationRun {
  const c = counts ?? { total: 0, succeeded: 0, failed: 0, skipped: 0, pending: 0, bytes: 0 };
  return {
    id: Number(row.id),
    bundle: row.bundle,
    policy: row.policy,
    trigger: row.trigger as ReplicationRun['trigger'],
    versions: JSON.parse(row.versions) as string[],
    status: row.status as ReplicationRun['status'],
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    by: row.by,
    tasks: { total: c.total, succeeded: c.succeeded, failed: c.failed, skipped: c.skipped, pending: c.pending },
    bytes: c.bytes,
  };
}

function toTask(row: TaskRow): ReplicationTask {
  return {
    id: Number(row.id),
    destination: { type: row.destination_type, name: row.destination },
    kind: row.kind,
    ref: row.ref,
    version: row.version,
    status: row.status,
    bytes: Number(row.bytes),
    durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
    attempts: Number(row.attempts),
    error: row.error,
  };
}

/** How stale an edge's recorded lastSeenAt may get before a call writes it again, in milliseconds. */
const edgeSeenWriteMs = 5_000;

/** The most tasks one `GET /api/v1/edge/tasks` hands out (the edge asks again when done). */
const edgeTaskBatch = 500;

/** A task row as the edge sees it (protocol/edge.ts); undefined for a kind an edge never gets. */
function toEdgeTask(row: TaskRow & { bundle: string; bandwidth: number | string | null }): EdgeTask | undefined {
  const common = { id: Number(row.id), run: Number(row.run_id), bundle: row.bundle, version: row.version, size: Number(row.size), bandwidth: row.bandwidth === null ? null : Number(row.bandwidth) };
  if (row.kind === 'blob' && row.digest) return { ...common, kind: 'blob', digest: row.digest };
  if (row.kind === 'metadata') return { ...common, kind: 'metadata', file: row.ref };
  if (row.kind === 'delete' && row.digest) return { ...common, kind: 'withdraw', digest: row.digest };
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** How often a push of metadata held back for another run's blobs asks whether they arrived, in milliseconds. */
const edgeHoldPollMs = 200;

export function createReplicationService(deps: ReplicationServiceDeps) {
  const { store, log } = deps;
  const nowText = () => deps.now().toISOString();
  const retry = deps.retry ?? defaultRetry;
  const makeClient = deps.registryClient ?? ((target: RegistryTarget) => createRegistryClient(target));
  const makePusher = deps.edgePusher ?? ((target: EdgeTarget) => createEdgePusher(target));
  /** Runs being executed, so shutdown can wait for them (and tell them to stop between tasks). */
  const running = new Map<number, Promise<void>>();
  let closing = false;
  /** Edges holding a long poll for tasks (GET /api/v1/edge/tasks?wait=N): woken when a run gives them some. */
  const edgeWaiters = new Set<() => void>();
  const wakeEdges = () => {
    for (const wake of [...edgeWaiters]) wake();
  };
  /** The minute each scheduled policy last fired, so a tick repeated within a minute starts nothing. */
  const firedAt = new Map<string, string>();

  async function requireBundle(bundle: string): Promise<void> {
    await deps.bundles.getBundle(bundle);
  }

  async function requirePolicy(bundle: string, name: string): Promise<PolicyRecord> {
    await requireBundle(bundle);
    const found = await store.findPolicy(bundle, name);
    if (!found) throw new ApiError('not_found', `replication policy "${name}" does not exist in bundle "${bundle}"`);
    return found;
  }

  /** Policies name destinations by name; whether each is an edge or a registry is looked up here. */
  async function resolveDestinations(names: readonly string[]): Promise<DestinationRef[]> {
    const resolved: DestinationRef[] = [];
    for (const name of names) {
      if (await store.findEdge(name)) resolved.push({ type: 'edge', name });
      else if (await store.findRegistry(name)) resolved.push({ type: 'registry', name });
      else throw new ApiError('invalid_request', `destination "${name}" is neither an edge nor a registry endpoint (see convoy edge list, convoy registry list)`);
    }
    return resolved;
  }

  /** Pull means the destination fetches; a registry cannot, so only edges may be pulled to. */
  function checkMode(policy: PolicyRecord): void {
    const registries = policy.destinations.filter((d) => d.type === 'registry');
    if (policy.mode === 'pull' && registries.length > 0) throw new ApiError('invalid_request', `mode pull is for edges (they fetch); ${registries.map((d) => d.name).join(', ')} ${registries.length > 1 ? 'are registry endpoints' : 'is a registry endpoint'}, which only receive pushes`);
  }

  async function nameTaken(name: string): Promise<boolean> {
    return (await store.findEdge(name)) !== undefined || (await store.findRegistry(name)) !== undefined;
  }

  function seal(value: string, context: string): string {
    try {
      return deps.sealer.seal(value, context);
    } catch (error) {
      if (error instanceof SecretKeyMissing) throw new ApiError('invalid_request', `${error.message}; the endpoint was not stored`);
      throw error;
    }
  }

  /** The edge's token sealed with the edge's name as associated data (a copied value fails to open elsewhere). */
  function sealEdgeToken(name: string, token: string): string {
    try {
      return deps.sealer.seal(token, `edge:${name}:token`);
    } catch (error) {
      if (error instanceof SecretKeyMissing) throw new ApiError('invalid_request', `${error.message.replace('registry credentials are', "an edge's token for push mode is")}; the edge was not changed`);
      throw error;
    }
  }

  async function registryTarget(name: string, bandwidth: number | null): Promise<{ target: RegistryTarget; namespace: string | null }> {
    const row = await store.findRegistry(name);
    if (!row) throw new RegistryError(`registry endpoint "${name}" was removed`, false);
    const credentials =
      row.sealed_username !== null && row.sealed_password !== null
        ? { username: deps.sealer.open(row.sealed_username, `registry:${name}:username`), password: deps.sealer.open(row.sealed_password, `registry:${name}:password`) }
        : undefined;
    return { target: { url: row.url, credentials, bandwidth }, namespace: row.namespace };
  }

  /** The planner's inputs for one approved version, read from the bundle, OCI and trust capabilities. */
  async function planFor(policy: PolicyRecord, version: BundleVersion): Promise<PlannedTask[]> {
    if (version.status !== 'approved' || !version.manifestDigest) return [];
    const bytes = await deps.blobs.readBytes(version.manifestDigest);
    const manifest = parseWith(bundleManifest, parseJson(bytes.toString('utf8'), 'bundle manifest'), 'bundle manifest');
    const images = new Map<string, ImageGraph>();
    for (const artifact of manifest.artifacts) {
      if (artifact.type !== 'image') continue;
      const graph = await deps.imageGraph(artifact.digest);
      if (!graph) continue;
      const blobs = [];
      for (const digest of graph.blobs) blobs.push({ digest, size: (await deps.blobs.stat(digest))?.size ?? 0 });
      images.set(artifact.digest, { mediaType: graph.mediaType, children: graph.children, blobs });
    }
    const held = new Map<string, Set<string>>();
    for (const destination of policy.destinations) held.set(`${destination.type}:${destination.name}`, await store.heldBy(destination));
    const namespaces = new Map<string, string | null>();
    for (const destination of policy.destinations) {
      if (destination.type === 'registry') namespaces.set(destination.name, (await store.findRegistry(destination.name))?.namespace ?? null);
    }
    const needsMetadata = policy.destinations.some((d) => d.type === 'edge');
    return planVersion({
      filter: policy.filter,
      destinations: policy.destinations,
      manifest,
      manifestBlob: { digest: version.manifestDigest, size: bytes.length },
      images,
      metadata: needsMetadata ? await deps.metadataFiles(version.bundle) : [],
      holds: (destination, digest, repository) => held.get(`${destination.type}:${destination.name}`)?.has(repository ? `${repository}@${digest}` : digest) ?? false,
      namespaces,
    });
  }

  async function runDetail(row: RunRow): Promise<{ run: ReplicationRun; tasks: ReplicationTask[] }> {
    const counts = await store.countTasks([Number(row.id)]);
    return { run: toRun(row, counts.get(Number(row.id))), tasks: (await store.tasksOf(Number(row.id))).map(toTask) };
  }

  /** One registry task, retried with backoff while the failure is transient. */
  async function executeTask(task: TaskRow, client: RegistryClient): Promise<void> {
    const started = Date.now();
    let attempts = Number(task.attempts);
    for (;;) {
      attempts += 1;
      await store.updateTask(Number(task.id), { status: 'running', attempts });
      try {
        let bytes = 0;
        if (task.kind === 'blob') {
          const [repository, digest] = task.ref.split('@') as [string, string];
          bytes = await client.pushBlob(repository, digest, Number(task.size), () => deps.blobs.openRead(digest));
          await store.recordHeld({ type: 'registry', name: task.destination }, repository, digest, nowText());
        } else if (task.kind === 'delete') {
          const split = task.ref.lastIndexOf(':');
          await client.deleteTag(task.ref.slice(0, split), task.ref.slice(split + 1), task.digest!, task.media_type === 'shared');
        } else if (task.kind === 'manifest') {
          const split = task.ref.includes('@') ? task.ref.indexOf('@') : task.ref.lastIndexOf(':');
          const repository = task.ref.slice(0, split);
          const reference = task.ref.slice(split + 1);
          const body = await deps.blobs.readBytes(task.digest!);
          await client.putManifest(repository, reference, task.media_type!, body);
          bytes = body.length;
        }
        await store.updateTask(Number(task.id), { status: 'succeeded', bytes, duration_ms: Date.now() - started, error: null });
        return;
      } catch (error) {
        const transient = !(error instanceof RegistryError) || error.transient;
        const message = (error as Error).message.slice(0, 1000);
        if (closing && transient) {
          // Shutting down: the task is not the registry's failure; left pending, the next start resumes it.
          await store.updateTask(Number(task.id), { status: 'pending', error: message });
          return;
        }
        if (!transient || attempts >= retry.attempts) {
          await store.updateTask(Number(task.id), { status: 'failed', duration_ms: Date.now() - started, error: message });
          log.warn('replication task failed', { task: Number(task.id), ref: task.ref, destination: task.destination, attempts, error: message });
          return;
        }
        await sleep(retry.baseDelayMs * 2 ** (attempts - 1));
        if (closing) {
          await store.updateTask(Number(task.id), { status: 'pending', error: message });
          return;
        }
      }
    }
  }

  /**
   * Push to an edge: one or more task rows (a metadata batch goes as one request) done by `work`,
   * retried with backoff while the failure is transient, as registry tasks are. Each try asks the
   * edge first (pushBlob), so a retry after a cut upload sends only what the edge lacks.
   */
  async function executeEdgeTasks(tasks: readonly TaskRow[], work: () => Promise<number[]>): Promise<boolean> {
    const started = Date.now();
    let attempts = Math.max(...tasks.map((task) => Number(task.attempts)));
    const updateAll = async (patch: Parameters<ReplicationStore['updateTask']>[1]) => {
      for (const task of tasks) await store.updateTask(Number(task.id), patch);
    };
    for (;;) {
      attempts += 1;
      await updateAll({ status: 'running', attempts });
      try {
        const bytes = await work();
        for (const [index, task] of tasks.entries()) await store.updateTask(Number(task.id), { status: 'succeeded', bytes: bytes[index] ?? 0, duration_ms: Date.now() - started, error: null });
        // The edge answered with its token's consent: it counts as seen (it may never call the origin itself).
        await store.touchEdge(tasks[0]!.destination, nowText());
        return true;
      } catch (error) {
        const transient = !(error instanceof EdgePushError) || error.transient;
        const message = (error as Error).message.slice(0, 1000);
        if (closing && transient) {
          await updateAll({ status: 'pending', error: message });
          return false;
        }
        if (!transient || attempts >= retry.attempts) {
          await updateAll({ status: 'failed', duration_ms: Date.now() - started, error: message });
          log.warn('edge push failed', { tasks: tasks.map((task) => Number(task.id)), ref: tasks[0]?.ref, edge: tasks[0]?.destination, attempts, error: message });
          return false;
        }
        await sleep(retry.baseDelayMs * 2 ** (attempts - 1));
        if (closing) {
          await updateAll({ status: 'pending', error: message });
          return false;
        }
      }
    }
  }

  /** The edge's URL and its token, opened from the seal (the token is never logged). */
  async function edgeTarget(name: string, bandwidth: number | null): Promise<EdgeTarget | undefined> {
    const row = await store.findEdge(name);
    if (!row) throw new EdgePushError(`edge "${name}" was removed`, false);
    if (!row.url || !row.sealed_token) return undefined;
    return { url: row.url, token: deps.sealer.open(row.sealed_token, `edge:${name}:token`), bandwidth, timeoutMs: deps.edgeTimeoutMs ?? 30_000 };
  }

  /**
   * A push policy's tasks for one edge with a URL, in the pull mirror's order: blobs, then
   * withdrawals, then the metadata in one batch (the edge verifies the files together and
   * publishes the timestamp last), and only if every blob arrived: metadata naming a blob the
   * edge lacks would send its devices to a 404.
   */
  async function pushToEdge(runId: number, pusher: EdgePusher, edge: string, list: readonly TaskRow[], bundle: string): Promise<void> {
    const stop = async () => closing || (await store.runStatus(runId)) === 'cancelled';
    let blobsFailed = false;
    for (const task of list.filter((t) => t.kind === 'blob' && t.digest)) {
      if (await stop()) return;
      const digest = task.digest!;
      const size = Number(task.size);
      const ok = await executeEdgeTasks([task], async () => [await pusher.pushBlob(digest, size, (start) => deps.blobs.openRead(digest, size > 0 ? { start, end: size - 1 } : undefined))]);
      if (ok) await store.recordHeld({ type: 'edge', name: edge }, '', digest, nowText());
      else blobsFailed = true;
    }
    for (const task of list.filter((t) => t.kind === 'delete' && t.digest)) {
      if (await stop()) return;
      await executeEdgeTasks([task], async () => (await pusher.withdraw(task.digest!), [0]));
    }
    const metadata = list.filter((t) => t.kind === 'metadata');
    if (metadata.length === 0 || (await stop())) return;
    if (blobsFailed) {
      for (const task of metadata) await store.updateTask(Number(task.id), { status: 'failed', error: 'blobs of this run failed to reach the edge; metadata not sent' });
      return;
    }
    // Another run's blobs still on their way to this edge (two approvals in a row): the current
    // metadata already names its version, so it is sent only once they are there (pull mode's
    // rule, server/edge/mirror.ts). The origin holds it back rather than the edge refusing it:
    // only the origin knows which blobs a policy's filter plans for the edge (a filtered-out
    // artifact is named by the metadata yet never sent, so "holds every target" cannot be the test).
    const waitedFor = new Set<number>();
    for (let others = await store.edgeBlobPushesInFlight(edge, runId); others.length > 0; others = await store.edgeBlobPushesInFlight(edge, runId)) {
      for (const other of others) waitedFor.add(other);
      if (await stop()) return;
      await sleep(edgeHoldPollMs);
    }
    // One of them failed a blob the edge still lacks: its version is named by the same metadata.
    const held = await store.heldBy({ type: 'edge', name: edge });
    for (const other of waitedFor) {
      const lacking = (await store.tasksOf(other)).filter((t) => t.destination_type === 'edge' && t.destination === edge && t.kind === 'blob' && t.status === 'failed' && t.digest && !held.has(t.digest));
      if (lacking.length === 0) continue;
      for (const task of metadata) await store.updateTask(Number(task.id), { status: 'failed', error: `blobs of run ${other} failed to reach the edge, and the current metadata names them; metadata not sent (retry run ${other}, then this one)` });
      return;
    }
    await executeEdgeTasks(metadata, async () => {
      // The bundle's metadata as it is now, not the names planned: a version approved since
      // planning re-signed the snapshot and the bundle's role, and the edge verifies the set
      // against the current timestamp (older versioned files would not be the ones it names).
      // A planned file superseded since counts as sent with 0 bytes, the newer one in its place.
      const names = [...new Set([...(await deps.metadataFiles(bundle)).map((file) => file.name), 'timestamp.json'])];
      const files: { name: string; content: Buffer }[] = [];
      for (const name of names) {
        const content = await deps.readMetadata?.(name);
        if (!content) throw new EdgePushError(`the origin has no metadata file ${name}`, false);
        files.push({ name, content });
      }
      // Asked again after reading: a run created since the wait above (a version approved just
      // now, which these files may name) is waited for by a retry, not pushed past.
      const late = await store.edgeBlobPushesInFlight(edge, runId);
      if (late.length > 0) throw new EdgePushError(`blobs of run ${late.join(', ')} are still on their way to the edge; metadata held back`, true);
      const result = await pusher.pushMetadata(files);
      const sizes = new Map(files.map((file) => [file.name, file.content.length]));
      const published = new Set(result.published);
      return metadata.map((task) => (published.has(task.ref) ? (sizes.get(task.ref) ?? 0) : 0));
    });
  }

  /** Works through a run's registry tasks (and a push policy's edge tasks), destination by destination, in planned order. */
  async function execute(runId: number, bandwidth: number | null, pushBundle?: string): Promise<void> {
    const push = pushBundle !== undefined;
    const tasks = await store.tasksOf(runId);
    const byEdge = new Map<string, TaskRow[]>();
    if (push) {
      for (const task of tasks) {
        if (task.destination_type !== 'edge' || (task.status !== 'pending' && task.status !== 'running' && task.status !== 'failed')) continue;
        byEdge.set(task.destination, [...(byEdge.get(task.destination) ?? []), task]);
      }
    }
    const byDestination = new Map<string, TaskRow[]>();
    for (const task of tasks) {
      if (task.destination_type !== 'registry' || (task.status !== 'pending' && task.status !== 'running' && task.status !== 'failed')) continue;
      const list = byDestination.get(task.destination) ?? [];
      list.push(task);
      byDestination.set(task.destination, list);
    }
    // Destinations side by side (each its own link); within one, tasks in planned order.
    await Promise.all([
      ...[...byEdge].map(async ([edge, list]) => {
        let target: EdgeTarget | undefined;
        try {
          target = await edgeTarget(edge, bandwidth);
        } catch (error) {
          for (const task of list) await store.updateTask(Number(task.id), { status: 'failed', error: (error as Error).message.slice(0, 1000) });
          return;
        }
        // An edge without a URL cannot be reached: its tasks wait for it to pull them.
        if (target) await pushToEdge(runId, makePusher(target), edge, list, pushBundle!);
      }),
      ...[...byDestination].map(async ([destination, list]) => {
        let client: RegistryClient;
        try {
          client = makeClient((await registryTarget(destination, bandwidth)).target);
        } catch (error) {
          for (const task of list) await store.updateTask(Number(task.id), { status: 'failed', error: (error as Error).message.slice(0, 1000) });
          return;
        }
        for (const task of list) {
          // Shutdown, or a cancel: stop between tasks (the one in flight has finished).
          if (closing || (await store.runStatus(runId)) === 'cancelled') return;
          await executeTask(task, client);
        }
      }),
    ]);
    if (closing) return;
    await settle(runId);
  }

  /** A run is over once no task is pending: succeeded when none failed. */
  async function settle(runId: number): Promise<void> {
    const counts = (await store.countTasks([runId])).get(runId)!;
    if (counts.pending > 0 || (await store.runStatus(runId)) === 'cancelled') return;
    await store.finishRun(runId, counts.failed > 0 ? 'failed' : 'succeeded', nowText());
  }

  function launch(runId: number, policy: Pick<PolicyRecord, 'bandwidth' | 'mode' | 'bundle'> | undefined): void {
    const work = execute(runId, policy?.bandwidth ?? null, policy?.mode === 'push' ? policy.bundle : undefined)
      .catch((error: unknown) => log.error('replication run failed', { run: runId, error }))
      .finally(() => running.delete(runId));
    running.set(runId, work);
  }

  /** A revoked version's images leave the registries of each policy that propagates revocations. */
  async function startWithdrawal(policy: PolicyRecord, version: BundleVersion): Promise<RunRow | undefined> {
    if (!version.manifestDigest) return undefined;
    const manifest = parseWith(bundleManifest, parseJson((await deps.blobs.readBytes(version.manifestDigest)).toString('utf8'), 'bundle manifest'), 'bundle manifest');
    const namespaces = new Map<string, string | null>();
    for (const destination of policy.destinations) {
      if (destination.type === 'registry') namespaces.set(destination.name, (await store.findRegistry(destination.name))?.namespace ?? null);
    }
    // What the other approved versions still tag, per destination repository.
    const inUse = new Set<string>();
    for (const other of (await deps.bundles.listVersions(policy.bundle, { status: 'approved' })).items) {
      if (other.version === version.version || !other.manifestDigest) continue;
      const otherManifest = parseWith(bundleManifest, parseJson((await deps.blobs.readBytes(other.manifestDigest)).toString('utf8'), 'bundle manifest'), 'bundle manifest');
      for (const artifact of otherManifest.artifacts) {
        if (artifact.type !== 'image') continue;
        for (const namespace of namespaces.values()) inUse.add(`${registryRepository(namespace, policy.bundle, artifact.name)}@${artifact.digest}`);
      }
    }
    const toEdges = policy.destinations.some((d) => d.type === 'edge');
    const planned = planWithdrawal({ filter: policy.filter, destinations: policy.destinations, manifest, namespaces, inUse, manifestDigest: version.manifestDigest, metadata: toEdges ? await deps.metadataFiles(policy.bundle) : [] });
    if (planned.length === 0) return undefined;
    const tasks: NewTask[] = planned.map((task) => ({ destination_type: task.destination.type, destination: task.destination.name, kind: task.kind, ref: task.ref, version: version.version, digest: task.digest ?? null, media_type: task.mediaType ?? null, size: 0, status: task.status }));
    const row = { bundle: policy.bundle, policy: policy.name, trigger: 'revocation', versions: JSON.stringify([version.version]), status: 'running', by: 'revocation', started_at: nowText(), finished_at: null };
    const id = await store.insertRun(row, tasks);
    log.info('replication withdrawal started', { run: id, bundle: policy.bundle, policy: policy.name, version: version.version, tasks: tasks.length });
    launch(id, policy);
    if (tasks.some((task) => task.destination_type === 'edge')) wakeEdges();
    return { id, ...row };
  }

  async function startRun(policy: PolicyRecord, options: { version?: string | undefined; trigger: 'manual' | 'approval' | 'schedule'; by: string }): Promise<RunRow> {
    const versions = options.version !== undefined ? [await deps.bundles.getVersion(policy.bundle, options.version)] : (await deps.bundles.listVersions(policy.bundle, { status: 'approved' })).items;
    if (options.version !== undefined && versions[0]!.status !== 'approved') throw new ApiError('version_not_approved', `${policy.bundle}@${options.version} is not approved: only approved versions replicate`);
    const tasks: NewTask[] = [];
    const names: string[] = [];
    for (const version of versions) {
      const planned = await planFor(policy, version);
      if (planned.length === 0) continue;
      names.push(version.version);
      for (const task of planned) {
        tasks.push({ destination_type: task.destination.type, destination: task.destination.name, kind: task.kind, ref: task.ref, version: version.version, digest: task.digest ?? (task.kind === 'blob' ? task.ref.split('@').at(-1)! : null), media_type: task.mediaType ?? null, size: task.size, status: task.status });
      }
    }
    const row = { bundle: policy.bundle, policy: policy.name, trigger: options.trigger, versions: JSON.stringify(names), status: 'running', by: options.by, started_at: nowText(), finished_at: null };
    const id = await store.insertRun(row, tasks);
    log.info('replication run started', { run: id, bundle: policy.bundle, policy: policy.name, versions: names.join(','), tasks: tasks.length, trigger: options.trigger });
    launch(id, policy);
    if (tasks.some((task) => task.destination_type === 'edge' && task.status === 'pending')) wakeEdges();
    return { id, ...row };
  }

  return {
    // Edges.
    async addEdge(name: string, description = '', url?: string): Promise<{ edge: Edge; token: string }> {
      if (await nameTaken(name)) throw new ApiError('already_exists', `an edge or registry endpoint named "${name}" already exists`);
      // 256 bits, shown once; only its SHA-256 is stored (as for access tokens), and, for an edge
      // the origin pushes to (it has a URL), the token sealed: the origin signs in there with it.
      const token = `cvye_${randomBytes(32).toString('base64url')}`;
      const row: EdgeRow = { name, description, token_hash: hashToken(token), created_at: nowText(), last_seen_at: null, url: url ?? null, sealed_token: url ? sealEdgeToken(name, token) : null };
      if (!(await store.insertEdge(row))) throw new ApiError('already_exists', `an edge named "${name}" already exists`);
      log.info('edge added', { edge: name });
      return { edge: toEdge(row), token };
    },
    listEdges: async (): Promise<Edge[]> => (await store.listEdges()).map(toEdge),
    /** A new URL (push mode) or description. A first URL needs the edge's token again: the origin kept only its hash. */
    async updateEdge(name: string, patch: { url?: string | null | undefined; description?: string | undefined; token?: string | undefined }): Promise<Edge> {
      const row = await store.findEdge(name);
      if (!row) throw new ApiError('not_found', `edge "${name}" does not exist`);
      if (patch.token !== undefined && hashToken(patch.token) !== row.token_hash) throw new ApiError('invalid_request', `that is not the token of edge "${name}"`);
      const next: Partial<EdgeRow> = {};
      if (patch.description !== undefined) next.description = patch.description;
      if (patch.url === null) Object.assign(next, { url: null, sealed_token: null });
      else if (patch.url !== undefined) {
        const sealed = patch.token !== undefined ? sealEdgeToken(name, patch.token) : row.sealed_token;
        if (!sealed) throw new ApiError('invalid_request', `the origin keeps only a hash of edge "${name}"'s token, and needs the token itself to push there: give it again (convoy edge update ${name} --url URL --token TOKEN)`);
        Object.assign(next, { url: patch.url, sealed_token: sealed });
      }
      if (Object.keys(next).length > 0) await store.updateEdge(name, next);
      log.info('edge updated', { edge: name, url: next.url === undefined ? undefined : next.url });
      return toEdge((await store.findEdge(name))!);
    },
    async getEdge(name: string): Promise<Edge> {
      const row = await store.findEdge(name);
      if (!row) throw new ApiError('not_found', `edge "${name}" does not exist`);
      return toEdge(row);
    },
    async removeEdge(name: string): Promise<Edge> {
      const row = await store.findEdge(name);
      if (!row) throw new ApiError('not_found', `edge "${name}" does not exist`);
      const using = await store.policiesUsing({ type: 'edge', name });
      if (using.length > 0) throw new ApiError('invalid_request', `edge "${name}" is a destination of ${using.map((p) => `${p.bundle}/${p.name}`).join(', ')}; remove it from those policies first`);
      await store.deleteEdge(name);
      await store.forgetHeld({ type: 'edge', name });
      log.info('edge removed', { edge: name });
      return toEdge(row);
    },
    /** An edge's pending tasks (it pulls them): asking is its heartbeat too (authenticateEdge notes it). */
    async edgeTasks(edge: string, waitMs = 0): Promise<EdgeTaskList> {
      let rows = await store.pendingEdgeTasks(edge, edgeTaskBatch);
      if (rows.length === 0 && waitMs > 0 && !closing) {
        // A long poll: the origin answers as soon as a run gives edges tasks (its hint, over the
        // connection the edge opened), or empty after waitMs.
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            edgeWaiters.delete(done);
            resolve();
          };
          const timer = setTimeout(done, waitMs);
          edgeWaiters.add(done);
        });
        if (!closing) rows = await store.pendingEdgeTasks(edge, edgeTaskBatch);
      }
      return { edge, tasks: rows.map(toEdgeTask).filter((task): task is EdgeTask => task !== undefined) };
    },
    /** An edge reports a task done or failed; the run settles once none is pending. */
    async finishEdgeTask(edge: string, id: number, report: EdgeTaskReport): Promise<void> {
      const task = await store.findTask(id);
      // Another edge's task answers as one that does not exist: an edge sees only its own.
      if (!task || task.destination_type !== 'edge' || task.destination !== edge) throw new ApiError('not_found', `edge "${edge}" has no task ${id}`);
      if (task.status !== 'pending' && task.status !== 'running') throw new ApiError('invalid_state', `task ${id} is ${task.status} already`);
      await store.updateTask(id, {
        status: report.status,
        bytes: report.bytes,
        attempts: Number(task.attempts) + 1,
        duration_ms: report.durationMs ?? null,
        error: report.status === 'failed' ? (report.error ?? 'failed at the edge').slice(0, 1000) : null,
      });
      // A blob the edge holds is never planned for it again (the next run marks it skipped).
      if (report.status === 'succeeded' && task.kind === 'blob' && task.digest) await store.recordHeld({ type: 'edge', name: edge }, '', task.digest, nowText());
      if (report.status === 'failed') log.warn('edge task failed', { edge, task: id, ref: task.ref, error: report.error });
      await settle(Number(task.run_id));
    },
    /** Whether an edge may read a blob from the origin: one of its tasks names it. */
    edgeMayRead: (edge: string, digest: string): Promise<boolean> => store.edgeTaskNames(edge, digest),
    /** The edge a token belongs to (edge mode authenticates with it), noting when it was seen. */
    async authenticateEdge(token: string): Promise<Edge | undefined> {
      const row = await store.findEdgeByTokenHash(hashToken(token));
      if (!row) return undefined;
      // An edge mirroring calls many times a second: its last-seen time is written at most every
      // few seconds (health needs minutes), not once per blob request.
      const now = deps.now();
      if (row.last_seen_at === null || now.getTime() - Date.parse(row.last_seen_at) >= edgeSeenWriteMs) await store.touchEdge(row.name, now.toISOString());
      return toEdge(row);
    },

    // Registry endpoints.
    async addRegistry(input: z.output<typeof createRegistryRequest>): Promise<RegistryEndpoint> {
      if (await nameTaken(input.name)) throw new ApiError('already_exists', `an edge or registry endpoint named "${input.name}" already exists`);
      const row: RegistryRow = {
        name: input.name,
        url: new URL(input.url).origin,
        namespace: input.namespace ?? null,
        // Sealed with the endpoint's name as associated data: a value moved to another row fails to open.
        sealed_username: input.username !== undefined ? seal(input.username, `registry:${input.name}:username`) : null,
        sealed_password: input.password !== undefined ? seal(input.password, `registry:${input.name}:password`) : null,
        created_at: nowText(),
      };
      if (!(await store.insertRegistry(row))) throw new ApiError('already_exists', `a registry endpoint named "${input.name}" already exists`);
      log.info('registry endpoint added', { registry: input.name, url: row.url, credentials: row.sealed_password !== null });
      return toRegistry(row);
    },
    listRegistries: async (): Promise<RegistryEndpoint[]> => (await store.listRegistries()).map(toRegistry),
    async getRegistry(name: string): Promise<RegistryEndpoint> {
      const row = await store.findRegistry(name);
      if (!row) throw new ApiError('not_found', `registry endpoint "${name}" does not exist`);
      return toRegistry(row);
    },
    async removeRegistry(name: string): Promise<RegistryEndpoint> {
      const row = await store.findRegistry(name);
      if (!row) throw new ApiError('not_found', `registry endpoint "${name}" does not exist`);
      const using = await store.policiesUsing({ type: 'registry', name });
      if (using.length > 0) throw new ApiError('invalid_request', `registry endpoint "${name}" is a destination of ${using.map((p) => `${p.bundle}/${p.name}`).join(', ')}; remove it from those policies first`);
      await store.deleteRegistry(name);
      await store.forgetHeld({ type: 'registry', name });
      log.info('registry endpoint removed', { registry: name });
      return toRegistry(row);
    },

    // Policies.
    async createPolicy(bundle: string, input: z.output<typeof createPolicyRequest>): Promise<ReplicationPolicy> {
      await requireBundle(bundle);
      const now = nowText();
      const policy: PolicyRecord = {
        bundle,
        name: input.name,
        destinations: await resolveDestinations(input.destinations),
        mode: input.mode ?? 'push',
        trigger: input.trigger ?? { type: 'manual' },
        filter: input.filter ?? {},
        bandwidth: input.bandwidth ?? null,
        propagateRevocations: input.propagateRevocations ?? true,
        enabled: input.enabled ?? true,
        createdAt: now,
        updatedAt: now,
      };
      checkMode(policy);
      if (!(await store.insertPolicy(policy))) throw new ApiError('already_exists', `replication policy "${input.name}" already exists in bundle "${bundle}"`);
      log.info('replication policy created', { bundle, policy: input.name });
      return toPolicy(policy);
    },
    async listPolicies(bundle: string): Promise<ReplicationPolicy[]> {
      await requireBundle(bundle);
      return (await store.listPolicies(bundle)).map(toPolicy);
    },
    getPolicy: async (bundle: string, name: string): Promise<ReplicationPolicy> => toPolicy(await requirePolicy(bundle, name)),
    async updatePolicy(bundle: string, name: string, patch: z.output<typeof updatePolicyRequest>): Promise<ReplicationPolicy> {
      const current = await requirePolicy(bundle, name);
      const next: PolicyRecord = {
        ...current,
        ...(patch.destinations !== undefined ? { destinations: await resolveDestinations(patch.destinations) } : {}),
        ...(patch.mode !== undefined ? { mode: patch.mode } : {}),
        ...(patch.trigger !== undefined ? { trigger: patch.trigger } : {}),
        ...(patch.filter !== undefined ? { filter: patch.filter } : {}),
        ...(patch.bandwidth !== undefined ? { bandwidth: patch.bandwidth } : {}),
        ...(patch.propagateRevocations !== undefined ? { propagateRevocations: patch.propagateRevocations } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        updatedAt: nowText(),
      };
      checkMode(next);
      await store.updatePolicy(next);
      return toPolicy(next);
    },
    async deletePolicy(bundle: string, name: string): Promise<ReplicationPolicy> {
      const current = await requirePolicy(bundle, name);
      await store.deletePolicy(bundle, name);
      log.info('replication policy deleted', { bundle, policy: name });
      return toPolicy(current);
    },

    // Runs.
    async startRun(bundle: string, name: string, options: { version?: string | undefined; by: string }): Promise<{ run: ReplicationRun; tasks: ReplicationTask[] }> {
      const policy = await requirePolicy(bundle, name);
      if (!policy.enabled) throw new ApiError('invalid_request', `replication policy "${name}" is disabled; enable it first (convoy replication policy enable ${name} --bundle ${bundle})`);
      return runDetail(await startRun(policy, { version: options.version, trigger: 'manual', by: options.by }));
    },
    async listRuns(bundle: string, filter: { policy?: string | undefined }, window: { offset: number; limit: number }): Promise<{ items: ReplicationRun[]; total: number }> {
      await requireBundle(bundle);
      const page = await store.listRuns(bundle, filter, window);
      const counts = await store.countTasks(page.items.map((r) => Number(r.id)));
      return { items: page.items.map((row) => toRun(row, counts.get(Number(row.id)))), total: page.total };
    },
    async getRun(bundle: string, id: number): Promise<{ run: ReplicationRun; tasks: ReplicationTask[] }> {
      await requireBundle(bundle);
      const row = await store.findRun(bundle, id);
      if (!row) throw new ApiError('not_found', `replication run ${id} does not exist in bundle "${bundle}"`);
      return runDetail(row);
    },

    /** At start: runs a stopped (or killed) server left unfinished carry on where they were. */
    async resume(): Promise<number> {
      const runs = await store.interruptedRuns();
      for (const run of runs) {
        const policy = await store.findPolicy(run.bundle, run.policy);
        log.info('replication run resumed', { run: Number(run.id), bundle: run.bundle, policy: run.policy });
        launch(Number(run.id), policy);
      }
      return runs.length;
    },

    /** Stops a run: tasks not started are skipped (an edge will not fetch them), the one in flight finishes. */
    async cancelRun(bundle: string, id: number): Promise<{ run: ReplicationRun; tasks: ReplicationTask[] }> {
      await requireBundle(bundle);
      const row = await store.findRun(bundle, id);
      if (!row) throw new ApiError('not_found', `replication run ${id} does not exist in bundle "${bundle}"`);
      if (row.status !== 'running') throw new ApiError('invalid_request', `replication run ${id} is ${row.status}, not running: nothing to cancel`);
      await store.setRunStatus(id, 'cancelled', nowText());
      await store.skipPending(id, 'cancelled');
      log.info('replication run cancelled', { run: id, bundle });
      return runDetail((await store.findRun(bundle, id))!);
    },
    /** Runs a finished run's failed (or cancelled) tasks again (a registry that was down is back); the rest stay as they are. */
    async retryRun(bundle: string, id: number): Promise<{ run: ReplicationRun; tasks: ReplicationTask[] }> {
      await requireBundle(bundle);
      const row = await store.findRun(bundle, id);
      if (!row) throw new ApiError('not_found', `replication run ${id} does not exist in bundle "${bundle}"`);
      if (row.status === 'running' || running.has(id)) throw new ApiError('invalid_request', `replication run ${id} is still running; cancel it or wait`);
      const reset = await store.resetFailed(id);
      await store.setRunStatus(id, 'running', null);
      const policy = await store.findPolicy(bundle, row.policy);
      log.info('replication run retried', { run: id, bundle, tasks: reset });
      launch(id, policy);
      wakeEdges();
      return runDetail((await store.findRun(bundle, id))!);
    },

    /** Approval event (wired in server/app.ts): every enabled on-approval policy whose filter matches runs. */
    async approved(version: BundleVersion): Promise<void> {
      for (const policy of await store.listPolicies(version.bundle)) {
        if (!policy.enabled || policy.trigger.type !== 'approval') continue;
        await startRun(policy, { version: version.version, trigger: 'approval', by: 'approval' }).catch((error: unknown) => log.error('replication on approval failed', { policy: policy.name, error }));
      }
    },

    /** Revocation event (wired in server/app.ts): policies that propagate revocations withdraw the version. */
    async revoked(version: BundleVersion): Promise<void> {
      for (const policy of await store.listPolicies(version.bundle)) {
        if (!policy.enabled || !policy.propagateRevocations) continue;
        await startWithdrawal(policy, version).catch((error: unknown) => log.error('replication of a revocation failed', { policy: policy.name, error }));
      }
    },

    /**
     * The scheduler's tick (server/app.ts calls it more often than once a minute): each enabled
     * policy with a schedule whose cron matches this UTC minute starts one run, once per minute.
     */
    async tick(): Promise<number> {
      const now = deps.now();
      const minute = now.toISOString().slice(0, 16);
      let started = 0;
      for (const policy of await store.listPolicies()) {
        if (!policy.enabled || policy.trigger.type !== 'schedule') continue;
        const cron = parseCron(policy.trigger.cron);
        const key = `${policy.bundle}/${policy.name}`;
        if (!cron || !cronMatches(cron, now) || firedAt.get(key) === minute) continue;
        firedAt.set(key, minute);
        await startRun(policy, { trigger: 'schedule', by: 'schedule' }).then(
          () => started++,
          (error: unknown) => log.error('scheduled replication failed', { policy: key, error }),
        );
      }
      return started;
    },

    /** Waits for runs in flight (tests, shutdown); `stop` makes them end after their current task. */
    async idle(stop = false): Promise<void> {
      if (stop) {
        closing = true;
        wakeEdges();
      }
      while (running.size > 0) await Promise.all([...running.values()]);
    },
  };
}

export type ReplicationService = ReturnType<typeof createReplicationService>;
