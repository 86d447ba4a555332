import type { Device, DeviceRegistration } from '../../protocol/api.ts';
import { matchesFilter, parseFilter } from '../../protocol/filter.ts';
import type { Logger } from '../../protocol/log.ts';
import { deviceIdFromStatusTopic, deviceStatus, maxMessageBytes, type DeviceStatus } from '../../protocol/messages.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import { inventoryReport, type DeviceDetail } from '../../protocol/rollout.ts';
import type { Principal } from '../auth/policy.ts';
import { deviceReadScope, inScope, type ReadScope } from '../auth/reads.ts';
import type { AuthStore } from '../auth/store.ts';
import { generateToken, hashToken } from '../auth/tokens.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { deviceAttributes } from '../groups/service.ts';
import { ApiError } from '../http/errors.ts';
import type { DeviceStore } from './store.ts';

/** What the devices capability needs of the others, wired in the composition root. */
export interface DeviceEvents {
  /** A new or changed status report was stored (deployments track progress with it). */
  reported?: (status: DeviceStatus) => Promise<void>;
  /** Group membership may have changed (registration, a move, new inventory: `inventory`, which only dynamic groups follow). */
  membershipChanged?: (cause?: 'inventory') => void;
  /** A device was decommissioned: drop its connections, take it out of deployments. */
  decommissioned?: (deviceId: string) => Promise<void>;
  /** A device's static group changed: its MQTT session reconnects with the new one. */
  moved?: (deviceId: string) => void;
}

const reportSchema = (payload: unknown) => {
  const type = (payload as { type?: unknown } | null)?.type;
  return type === 'inventory' ? ({ kind: 'inventory', report: parseWith(inventoryReport, payload, 'inventory report') } as const) : ({ kind: 'status', report: parseWith(deviceStatus, payload, 'device status') } as const);
};

export function createDeviceService(deps: {
  store: DeviceStore;
  auth: AuthStore;
  rootMetadata: () => Record<string, unknown>;
  mqttPort: () => number;
  /** Makes sure a static group of this name exists (groups capability); refuses dynamic ones. */
  ensureGroup: (group: string, actor: Principal | undefined) => Promise<void>;
  groupsOf: (device: Device) => Promise<string[]>;
  /** Whether a group exists and is static (moves go to static groups only). */
  requireStaticGroup: (group: string) => Promise<void>;
  assignment: (deviceId: string) => Promise<DeviceDetail['assigned']>;
  /**
   * The read model's facts (server/auth/reads.ts): every group a device is in, as a function
   * built once per listing (dynamic filters parsed once), and the bundles of unfinished
   * deployments targeting each device among the given bundles.
   */
  membership: () => Promise<(device: Device) => string[]>;
  activeBundles: (bundles: readonly string[], devices?: readonly string[]) => Promise<Map<string, Set<string>>>;
  events: DeviceEvents;
  now: () => Date;
  log: Logger;
}) {
  const now = () => deps.now().toISOString();
  /** Reports and presence changes being stored, so a shutdown can wait for them. */
  const inFlight = new Set<Promise<unknown>>();
  const perDevice = new Map<string, Promise<void>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work)).catch(() => undefined);
    return work;
  };

  /**
   * The devices of `rows` in the read scope: by their groups (static, or dynamic ones matched
   * now), or by the bundles they run, are being moved to, or an unfinished deployment targets.
   */
  async function visible(scope: ReadScope, rows: Device[]): Promise<Device[]> {
    if (scope.all) return rows;
    if (scope.groups.length === 0 && scope.bundles.length === 0) return [];
    const groupsOf = await deps.membership();
    const deployed = await deps.activeBundles(scope.bundles, rows.length === 1 ? [rows[0]!.id] : undefined);
    return rows.filter((d) =>
      inScope(scope, {
        groups: d.decommissionedAt ? [d.group] : groupsOf(d),
        bundles: [d.installed?.bundle, d.target?.bundle, ...(deployed.get(d.id) ?? [])],
      }),
    );
  }

  async function requireDevice(id: string): Promise<Device> {
    const found = await deps.store.find(id);
    if (!found) throw new ApiError('not_found', `device "${id}" does not exist`);
    return found;
  }

  return {
    requireDevice,

    /** Registers a device and mints its token, shown only in this answer. */
    async register(id: string, group: string, actor?: Principal): Promise<DeviceRegistration> {
      await deps.ensureGroup(group, actor);
      const token = generateToken();
      try {
        await deps.store.db.transaction(async (trx) => {
          await deps.store.insert(id, group, now(), trx);
          await deps.auth.insertDeviceToken(id, hashToken(token), now(), trx);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `device "${id}" is already registered`);
        throw error;
      }
      deps.log.info('registered a device', { device: id, group });
      deps.events.membershipChanged?.();
      return { device: (await deps.store.find(id))!, token, root: deps.rootMetadata(), mqtt: { port: deps.mqttPort() } };
    },

    /**
     * Devices matching the filters that `viewer` may see (server/auth/reads.ts), one page;
     * `group` includes dynamic groups' members. Filtered before paging: `total` counts only those.
     */
    async list(filter: { group?: string | undefined; state?: string | undefined; online?: boolean | undefined; filter?: string | undefined; inGroup?: ((d: Device) => Promise<boolean>) | undefined }, page: { offset: number; limit: number }, viewer?: Principal): Promise<{ items: Device[]; total: number }> {
      let rows = await deps.store.listAll({ ...(filter.state ? { state: filter.state } : {}), ...(filter.online !== undefined ? { online: filter.online } : {}) });
      if (viewer) rows = await visible(deviceReadScope(viewer), rows);
      if (filter.filter) {
        const parsed = parseFilter(filter.filter);
        rows = rows.filter((d) => matchesFilter(parsed, deviceAttributes(d)));
      }
      if (filter.inGroup) {
        const kept: Device[] = [];
        for (const d of rows) if (await filter.inGroup(d)) kept.push(d);
        rows = kept;
      }
      return { items: rows.slice(page.offset, page.offset + page.limit), total: rows.length };
    },

    listActive: () => deps.store.listActive(),

    /** A device that may still sign in: a decommissioned one is cut off (auth asks this). */
    async findActive(id: string): Promise<Device | undefined> {
      const device = await deps.store.find(id);
      return device && !device.decommissionedAt ? device : undefined;
    },

    /** `findActive` for many ids in one query, keyed by id (absent: unknown or decommissioned). */
    async findActiveMany(ids: readonly string[]): Promise<Map<string, Device>> {
      return new Map((await deps.store.findMany(ids)).filter((d) => !d.decommissionedAt).map((d) => [d.id, d]));
    },

    /** The devices of `rows` that `viewer` may see (server/auth/reads.ts). */
    visibleTo: (viewer: Principal, rows: Device[]): Promise<Device[]> => visible(deviceReadScope(viewer), rows),

    /**
     * A device the caller may not see answers 404 like a missing one (its existence is not
     * revealed); used by every route that reads one device before acting on it.
     */
    async requireVisible(viewer: Principal, id: string): Promise<Device> {
      const device = await deps.store.find(id);
      if (!device || (await visible(deviceReadScope(viewer), [device])).length === 0) throw new ApiError('not_found', `device "${id}" does not exist`);
      return device;
    },

    /** One device with its history, as `viewer` may see it (404 otherwise). */
    async showFor(viewer: Principal, id: string): Promise<DeviceDetail> {
      await this.requireVisible(viewer, id);
      return this.show(id);
    },

    async show(id: string): Promise<DeviceDetail> {
      const device = await requireDevice(id);
      const history = await deps.store.history(id);
      return {
        ...device,
        groups: device.decommissionedAt ? [device.group] : await deps.groupsOf(device),
        assigned: await deps.assignment(id),
        history,
      };
    },

    /** Moves a device to another static group; its MQTT session is closed so it follows at once. */
    async move(id: string, group: string): Promise<Device> {
      const device = await requireDevice(id);
      if (device.decommissionedAt) throw new ApiError('invalid_state', `device "${id}" is decommissioned`);
      await deps.requireStaticGroup(group);
      await deps.store.setGroup(id, group);
      await deps.store.addEvent(id, { at: now(), state: 'moved', deploymentId: null, detail: `from ${device.group} to ${group}` });
      deps.log.info('moved a device', { device: id, from: device.group, to: group });
      deps.events.moved?.(id);
      deps.events.membershipChanged?.();
      return (await deps.store.find(id))!;
    },

    /**
     * Decommissions a device: its tokens are revoked and it is marked decommissioned in one
     * transaction, so HTTP and /tuf/ refuse it from the next request; its MQTT connections are
     * closed; it leaves the deployments it had not finished. The row stays, for history.
     */
    async decommission(id: string, by: string): Promise<Device> {
      const device = await requireDevice(id);
      if (device.decommissionedAt) return device;
      const at = now();
      await deps.store.db.transaction(async (trx) => {
        await deps.store.decommission(id, at, trx);
        await deps.auth.revokeDeviceTokens(id, at, trx);
      });
      await deps.store.addEvent(id, { at, state: 'decommissioned', deploymentId: null, detail: `by ${by}` });
      deps.log.info('decommissioned a device', { device: id, by });
      await deps.events.decommissioned?.(id);
      deps.events.membershipChanged?.();
      return (await deps.store.find(id))!;
    },

    /** The device's MQTT session opened or closed (embedded broker events, or its last will). */
    presence(deviceId: string, online: boolean): Promise<void> {
      return track(deps.store.setOnline(deviceId, online, now()));
    },

    /** Many presence changes at once (the broker's batch during a reconnect storm). */
    presenceMany(online: readonly string[], offline: readonly string[]): Promise<void> {
      const at = now();
      return track((async () => {
        if (online.length > 0) await deps.store.setOnlineMany(online, true, at);
        if (offline.length > 0) await deps.store.setOnlineMany(offline, false, at);
      })());
    },

    async drain(): Promise<void> {
      await Promise.allSettled([...inFlight]);
    },

    /**
     * A message on a device's status topic: a status report or an inventory report. The broker
     * already checked that a device publishes only on its own topic; this checks the payload and
     * that it speaks for the same device. Reports with a sequence number the server has already
     * seen are ignored (QoS 1 redelivers). Bad messages are logged and dropped: a device's bug
     * must never take the server down.
     */
    receiveStatus(topic: string, payload: Buffer, from: Principal): Promise<void> {
      // One device's reports are stored in the order they arrived (MQTT keeps a client's QoS 1
      // messages in order): processed concurrently, a later report could land first and make an
      // earlier one look already seen. Different devices still go in parallel.
      const key = from.type === 'device' ? from.deviceId : '';
      const previous = perDevice.get(key) ?? Promise.resolve();
      const next = previous.then(() => receive(topic, payload, from));
      perDevice.set(key, next);
      void next.finally(() => {
        if (perDevice.get(key) === next) perDevice.delete(key);
      });
      return track(next);
    },
  };

  async function receive(topic: string, payload: Buffer, from: Principal): Promise<void> {
    {
      const topicDevice = deviceIdFromStatusTopic(topic);
      if (!topicDevice) return;
      try {
        if (payload.length > maxMessageBytes) throw new ApiError('payload_too_large', 'report over the size limit');
        const message = reportSchema(parseJson(payload.toString('utf8'), 'device report'));
        if (from.type !== 'device' || from.deviceId !== topicDevice || message.report.deviceId !== topicDevice) {
          throw new ApiError('forbidden', 'report does not match the device that sent it');
        }
        if (message.kind === 'inventory') {
          const before = await deps.store.find(topicDevice);
          const applied = await deps.store.recordInventory(topicDevice, message.report.attributes, message.report.seq, now());
          if (applied && JSON.stringify(before?.inventory ?? {}) !== JSON.stringify(message.report.attributes)) {
            deps.log.info('device inventory', { device: topicDevice, attributes: Object.keys(message.report.attributes).length });
            deps.events.membershipChanged?.('inventory');
          }
          return;
        }
        const status = message.report;
        const before = await deps.store.find(status.deviceId);
        if (!(await deps.store.recordStatus(status, now()))) {
          deps.log.debug('ignored a report already seen', { device: status.deviceId, seq: status.seq });
          return;
        }
        if (before?.state !== status.state) {
          const detail = status.error ? `${status.error.code}: ${status.error.message}` : (status.detail ?? (status.target ? `${status.target.bundle}@${status.target.version}` : null));
          await deps.store.addEvent(status.deviceId, { at: now(), state: status.state, deploymentId: status.deploymentId ?? null, detail });
        }
        deps.log.info('device status', { device: status.deviceId, state: status.state, installed: status.installed?.version, error: status.error?.code, seq: status.seq });
        await deps.events.reported?.(status);
      } catch (error) {
        deps.log.warn('dropped an invalid device status message', { topic, error });
      }
    }
  }
}

export type DeviceService = ReturnType<typeof createDeviceService>;
