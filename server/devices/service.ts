import type { Device, DeviceRegistration } from '../../protocol/api.ts';
import type { Logger } from '../../protocol/log.ts';
import { deviceIdFromStatusTopic, deviceStatus } from '../../protocol/messages.ts';
import { parseJson, parseWith } from '../../protocol/parse.ts';
import type { Principal } from '../auth/policy.ts';
import type { AuthStore } from '../auth/store.ts';
import { generateToken, hashToken } from '../auth/tokens.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { ApiError } from '../http/errors.ts';
import type { DeviceStore } from './store.ts';

export function createDeviceService(deps: {
  store: DeviceStore;
  auth: AuthStore;
  rootMetadata: () => Record<string, unknown>;
  mqttPort: () => number;
  now: () => Date;
  log: Logger;
}) {
  const now = () => deps.now().toISOString();
  return {
    /** Registers a device and mints its token, shown only in this answer. */
    async register(id: string, group: string): Promise<DeviceRegistration> {
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
      return { device: (await deps.store.find(id))!, token, root: deps.rootMetadata(), mqtt: { port: deps.mqttPort() } };
    },

    list: (filter: { group?: string }): Promise<Device[]> => deps.store.list(filter),
    find: (id: string): Promise<Device | undefined> => deps.store.find(id),

    /**
     * A status message from the broker. The broker already checked that a device publishes only
     * on its own topic; this checks the payload and that it speaks for the same device. Bad
     * messages are logged and dropped: a device's bug must never take the server down.
     */
    async receiveStatus(topic: string, payload: Buffer, from: Principal): Promise<void> {
      const topicDevice = deviceIdFromStatusTopic(topic);
      if (!topicDevice) return;
      try {
        const status = parseWith(deviceStatus, parseJson(payload.toString('utf8'), 'device status'), 'device status');
        if (from.type !== 'device' || from.deviceId !== topicDevice || status.deviceId !== topicDevice) {
          throw new ApiError('forbidden', 'status does not match the device that sent it');
        }
        await deps.store.recordStatus(status, now());
        deps.log.info('device status', { device: status.deviceId, state: status.state, installed: status.installed?.version, error: status.error?.code });
      } catch (error) {
        deps.log.warn('dropped an invalid device status message', { topic, error });
      }
    },
  };
}

export type DeviceService = ReturnType<typeof createDeviceService>;
