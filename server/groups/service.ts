import type { Role } from '../../protocol/access.ts';
import type { Device } from '../../protocol/api.ts';
import { matchesFilter, parseFilter, type Attributes, type Filter } from '../../protocol/filter.ts';
import type { Logger } from '../../protocol/log.ts';
import type { DeviceGroup, GroupMember } from '../../protocol/rollout.ts';
import { roleOnGroup, roleRank, type Principal } from '../auth/policy.ts';
import type { AuthStore } from '../auth/store.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { ApiError } from '../http/errors.ts';
import type { GroupRow, GroupStore } from './store.ts';

/**
 * What a filter sees of a device: its reported inventory, plus facts the server knows, which a
 * device cannot override by reporting an attribute of the same name (id, group, state, online,
 * bundle and version installed).
 */
export function deviceAttributes(device: Device): Attributes {
  return {
    ...device.inventory,
    id: device.id,
    group: device.group,
    state: device.state,
    online: device.online,
    bundle: device.installed?.bundle ?? null,
    version: device.installed?.version ?? null,
  };
}

/**
 * Device groups (issue #10 item 5, #14 item 2). A static group holds the devices registered in it
 * or moved to it (each device is in exactly one static group); a dynamic group holds the devices
 * whose inventory matches its filter now, so it changes as inventory changes. Groups are owned
 * like bundles: members with roles (the creator is the first Owner).
 */
export function createGroupService(deps: {
  store: GroupStore;
  auth: AuthStore;
  /** Devices not decommissioned, from the devices capability. */
  listDevices: () => Promise<Device[]>;
  /** Whether the group has deployments that are not finished (refuses deleting it). */
  hasActiveDeployments: (group: string) => Promise<boolean>;
  now: () => Date;
  log: Logger;
}) {
  const now = () => deps.now().toISOString();
  const parsed = new Map<string, Filter>();
  const filterOf = (text: string): Filter => {
    let filter = parsed.get(text);
    if (!filter) {
      filter = parseFilter(text);
      if (parsed.size > 1000) parsed.clear();
      parsed.set(text, filter);
    }
    return filter;
  };

  function inGroup(row: GroupRow, device: Device): boolean {
    return row.kind === 'static' ? device.group === row.name : matchesFilter(filterOf(row.filter!), deviceAttributes(device));
  }

  async function requireGroup(name: string): Promise<GroupRow> {
    const row = await deps.store.find(name);
    if (!row) throw new ApiError('not_found', `device group "${name}" does not exist`);
    return row;
  }

  async function toGroup(row: GroupRow, devices?: Device[]): Promise<DeviceGroup> {
    const all = devices ?? (await deps.listDevices());
    return {
      name: row.name,
      kind: row.kind,
      description: row.description,
      filter: row.filter,
      devices: all.filter((d) => inGroup(row, d)).length,
      createdBy: row.created_by,
      createdAt: row.created_at,
    };
  }

  function checkCeiling(actor: Principal, group: string, ...touched: (Role | undefined)[]): void {
    const own = roleRank(roleOnGroup(actor, group));
    for (const role of touched) {
      if (role !== undefined && roleRank(role) > own) throw new ApiError('forbidden', `only an owner of group "${group}" may grant or change the ${role} role`);
    }
  }

  async function requireUser(name: string) {
    const found = await deps.auth.findUser(name);
    if (!found) throw new ApiError('not_found', `user "${name}" does not exist`);
    return found;
  }

  return {
    requireGroup,

    async create(input: { name: string; description?: string | undefined; filter?: string | undefined }, actor: Principal, createdBy: string): Promise<DeviceGroup> {
      const row: GroupRow = {
        name: input.name,
        kind: input.filter ? 'dynamic' : 'static',
        description: input.description ?? '',
        filter: input.filter ?? null,
        created_by: createdBy,
        created_at: now(),
      };
      try {
        await deps.store.db.transaction(async (trx) => {
          await deps.store.insert(row, trx);
          if (actor.type === 'user') await deps.auth.putGroupMember(row.name, actor.userId, 'owner', row.created_at, trx);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw new ApiError('already_exists', `device group "${input.name}" already exists`);
        throw error;
      }
      deps.log.info('created a device group', { group: row.name, kind: row.kind, filter: row.filter });
      return toGroup(row);
    },

    /** A device registered into a group that does not exist yet creates it (static, owned by its registrar). */
    async ensureStatic(name: string, actor: Principal | undefined, createdBy: string): Promise<void> {
      const found = await deps.store.find(name);
      if (found?.kind === 'dynamic') throw new ApiError('invalid_request', `"${name}" is a dynamic group: its members are chosen by its filter, not by registration or moves`);
      if (found) return;
      // Registrations into a new group may race: the one whose insert wins makes its registrar Owner.
      const created = await deps.store.insert({ name, kind: 'static', description: '', filter: null, created_by: createdBy, created_at: now() }).then(
        () => true,
        (error: unknown) => {
          if (!isUniqueViolation(error)) throw error;
          return false;
        },
      );
      if (created && actor?.type === 'user') await deps.auth.putGroupMember(name, actor.userId, 'owner', now());
    },

    async get(name: string): Promise<DeviceGroup> {
      return toGroup(await requireGroup(name));
    },

    /** The groups `may` lets the caller read, with their current sizes. */
    async list(may: (group: string) => boolean): Promise<DeviceGroup[]> {
      const devices = await deps.listDevices();
      const rows = (await deps.store.list()).filter((row) => may(row.name));
      return Promise.all(rows.map((row) => toGroup(row, devices)));
    },

    async delete(name: string): Promise<void> {
      const row = await requireGroup(name);
      if (row.kind === 'static' && (await deps.listDevices()).some((d) => d.group === name)) {
        throw new ApiError('invalid_state', `group "${name}" still has devices; move or decommission them first`);
      }
      if (await deps.hasActiveDeployments(name)) throw new ApiError('invalid_state', `group "${name}" has a deployment that is not finished; abort it first`);
      await deps.store.delete(name);
      deps.log.info('deleted a device group', { group: name });
    },

    /** The devices in a group now (dynamic groups: evaluated over current inventory). */
    async devicesOf(name: string): Promise<Device[]> {
      const row = await requireGroup(name);
      return (await deps.listDevices()).filter((d) => inGroup(row, d));
    },

    /**
     * Every group a device is in, as a function over devices: the dynamic groups are read (and
     * their filters parsed) once, so a listing of thousands of devices costs one query.
     */
    async membership(): Promise<(device: Device) => string[]> {
      const dynamic = await deps.store.listDynamic();
      return (device) => [device.group, ...dynamic.filter((row) => inGroup(row, device)).map((row) => row.name)];
    },

    /** Every group one device is in: its static group first, then the dynamic ones it matches. */
    async groupsOf(device: Device): Promise<string[]> {
      const dynamic = (await deps.store.listDynamic()).filter((row) => inGroup(row, device)).map((row) => row.name);
      return [device.group, ...dynamic];
    },

    /** The devices a filter matches now, among those `keep` leaves (the caller's read model). */
    async preview(filter: string, keep?: (devices: Device[]) => Promise<Device[]>): Promise<{ filter: string; total: number; devices: string[] }> {
      const parsedFilter = filterOf(filter);
      const matched = (await deps.listDevices()).filter((d) => matchesFilter(parsedFilter, deviceAttributes(d)));
      const devices = (keep ? await keep(matched) : matched).map((d) => d.id);
      return { filter, total: devices.length, devices: devices.slice(0, 1000) };
    },

    listMembers: async (group: string): Promise<GroupMember[]> => {
      await requireGroup(group);
      return deps.auth.listGroupMembers(group);
    },

    async putMember(actor: Principal, group: string, userName: string, role: Role): Promise<{ member: GroupMember; created: boolean }> {
      await requireGroup(group);
      const target = await requireUser(userName);
      const created = await deps.store.db.transaction(async (trx) => {
        const current = await deps.auth.findGroupMember(group, target.id, trx);
        checkCeiling(actor, group, role, current);
        if (current === 'owner' && role !== 'owner' && (await deps.auth.countGroupOwners(group, trx)) <= 1) {
          throw new ApiError('forbidden', `"${userName}" is the last owner of group "${group}"; make someone else owner first`);
        }
        await deps.auth.putGroupMember(group, target.id, role, now(), trx);
        return current === undefined;
      });
      const member = (await deps.auth.listGroupMembers(group)).find((m) => m.user === userName)!;
      return { member, created };
    },

    async removeMember(actor: Principal, group: string, userName: string): Promise<void> {
      const target = await requireUser(userName);
      await deps.store.db.transaction(async (trx) => {
        const current = await deps.auth.findGroupMember(group, target.id, trx);
        if (current === undefined) throw new ApiError('not_found', `"${userName}" is not a member of group "${group}"`);
        checkCeiling(actor, group, current);
        if (current === 'owner' && (await deps.auth.countGroupOwners(group, trx)) <= 1) {
          throw new ApiError('forbidden', `"${userName}" is the last owner of group "${group}"; make someone else owner first`);
        }
        await deps.auth.deleteGroupMember(group, target.id, trx);
      });
    },
  };
}

export type GroupService = ReturnType<typeof createGroupService>;
