import fs from 'node:fs/promises';
import os from 'node:os';
import type { DeviceConfig } from '../protocol/device-config.ts';
import type { Logger } from '../protocol/log.ts';
import type { InventoryAttributes } from '../protocol/rollout.ts';
import { runCommand } from './command.ts';

/**
 * What the device reports about itself (issue #10 item 4): detected facts (model, os, arch, free
 * disk, daemon version, hostname), the fixed attributes of its config and the `key=value` lines
 * of its inventory command, later ones winning. The server keeps the latest; dynamic groups
 * filter on it.
 */

const daemonVersion = '0.1.0';
const keyPattern = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** `key=value` lines → attributes (numbers and booleans as such); other lines are ignored. Pure. */
export function parseInventoryOutput(text: string): InventoryAttributes {
  const out: InventoryAttributes = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1).trim().slice(0, 256);
    if (!keyPattern.test(key) || Object.keys(out).length >= 48) continue;
    out[key] = raw === 'true' ? true : raw === 'false' ? false : /^-?\d+(\.\d+)?$/.test(raw) && raw.length < 16 ? Number(raw) : raw;
  }
  return out;
}

async function readFirst(...files: string[]): Promise<string | undefined> {
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8').catch(() => undefined);
    if (text?.trim()) return text.replace(/\0/g, '').trim();
  }
  return undefined;
}

async function osName(): Promise<string> {
  const release = await readFirst('/etc/os-release');
  const field = (name: string) => new RegExp(`^${name}="?([^"\\n]*)"?`, 'm').exec(release ?? '')?.[1];
  const id = field('ID');
  return id ? `${id}-${field('VERSION_ID') ?? ''}`.replace(/-$/, '') : `${os.type()}-${os.release()}`.toLowerCase();
}

export async function collectInventory(deps: { config: DeviceConfig; dataDir: string; configDir: string; log: Logger }): Promise<InventoryAttributes> {
  const stat = await fs.statfs(deps.dataDir).catch(() => undefined);
  const detected: InventoryAttributes = {
    model: (await readFirst('/sys/firmware/devicetree/base/model', '/sys/class/dmi/id/product_name')) ?? 'unknown',
    os: await osName(),
    arch: os.arch(),
    hostname: os.hostname().slice(0, 256),
    daemon_version: daemonVersion,
    ...(stat ? { disk_free_mb: Math.floor((stat.bavail * stat.bsize) / 1048576) } : {}),
  };
  let custom: InventoryAttributes = {};
  const command = deps.config.inventory.command;
  if (command) {
    const result = await runCommand(command, { cwd: deps.configDir, timeoutMs: 30_000, log: deps.log, what: 'inventory command' });
    if (result.ok) custom = parseInventoryOutput(result.tail);
    else deps.log.warn('the inventory command failed; reporting without its attributes', { code: result.code });
  }
  return { ...detected, ...deps.config.inventory.attributes, ...custom };
}
