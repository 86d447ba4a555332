import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../server/app.ts';
import { defaultServerConfig } from '../server/config.ts';
import { createLogger } from '../protocol/log.ts';
import { renderPermissionsDoc } from '../server/auth/permissions-doc.ts';

/** Writes docs/permissions.md from the policy table and the routes a throwaway server declares. */
const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'convoy-doc-'));
const server = await startServer(
  { ...defaultServerConfig, dataDir, host: '127.0.0.1', httpPort: 0, mqttPort: 0, databaseUrl: undefined, adminToken: 'docs-generator-token-0000' },
  { log: createLogger({ namespace: 'docs', level: 'error', write: () => {} }) },
);
try {
  const target = path.join(import.meta.dirname, '..', 'docs', 'permissions.md');
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, renderPermissionsDoc(server.routes, server.registryRoutes));
  process.stdout.write(`wrote ${target}\n`);
} finally {
  await server.close();
  await fs.rm(dataDir, { recursive: true, force: true });
}
