import fs from 'node:fs/promises';
import path from 'node:path';
import { createDeviceCsr, createIntermediateCa, createRootCa, createServerCertificate, generateKeyPem, PkiError, signDeviceCsr, type KeyPair } from '../../certs/pki.ts';
import { writeFileAtomic } from '../../lib/files.ts';
import { CliError } from '../client.ts';
import { command, needText, type Command } from '../command.ts';
import { print } from '../output.ts';

/*
 * `convoy ca …`: the fleet's certificate authority, made on the operator's machine (offline is
 * best). The layout it writes (docs/device-identity.md):
 *   DIR/ca.pem              the fleet's trust anchor (the root certificate): devices, brokers
 *   DIR/root/ca.key         the root's private key: keep OFFLINE when an intermediate signs
 *   DIR/server/             copy this folder to the server (CONVOY_PKI_DIR):
 *     ca.pem                the root certificate (verifies device certificates)
 *     issuer.pem, .key      the CA that signs device certificates (the intermediate, or the root)
 *     tls.pem, tls.key      the server's TLS certificate (with the intermediate after it) and key
 *     mqtt-client.pem, .key the server's client certificate (CN convoy-server) for an external broker
 * Private keys are 0600 in 0700 folders.
 */

function list(value: unknown): string[] {
  return Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
}

async function writeSecret(file: string, pem: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, pem, 0o600);
}

async function writePublic(file: string, pem: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, pem, 0o644);
}

export const commands: Record<string, Command> = {
  'ca init': command({
    usage: 'convoy ca init --dir DIR --name NAME (--dns HOST | --ip ADDR)... [--no-intermediate]   (offline)',
    options: { dir: { type: 'string' }, name: { type: 'string' }, dns: { type: 'string', multiple: true }, ip: { type: 'string', multiple: true }, 'no-intermediate': { type: 'boolean' } },
    async run({ flags }) {
      const dir = path.resolve(needText(flags.dir, '--dir DIR', 'where to write the CA'));
      const name = needText(flags.name, '--name NAME', 'the fleet CA\'s name, e.g. "Acme fleet"');
      const dns = list(flags.dns);
      const ip = list(flags.ip);
      if (dns.length + ip.length === 0) throw new CliError('--dns HOST or --ip ADDR: give the names devices use to reach the server (at least one)');
      if ((await fs.readdir(dir).catch(() => [])).length > 0) throw new CliError(`${dir} is not empty: refusing to overwrite key material`);
      const now = new Date();
      let root: KeyPair, issuer: KeyPair, server: KeyPair, mqttClient: KeyPair;
      try {
        root = createRootCa({ name: `${name} root CA`, now });
        issuer = flags['no-intermediate'] ? root : createIntermediateCa({ issuer: root, name: `${name} issuing CA`, now });
        server = createServerCertificate({ issuer, dns, ip, now });
        const clientKey = generateKeyPem();
        // A client certificate like a device's, for a long time: it lives on the server, not in the field.
        mqttClient = { keyPem: clientKey, certPem: signDeviceCsr({ issuer, csrPem: createDeviceCsr({ deviceId: 'convoy-server', keyPem: clientKey }), deviceId: 'convoy-server', now, days: 397 }) };
      } catch (error) {
        if (error instanceof PkiError) throw new CliError(error.message.replace(/^the server (name|certificate)/, '--dns/--ip'));
        throw error;
      }
      const chain = issuer === root ? '' : issuer.certPem;
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await writePublic(path.join(dir, 'ca.pem'), root.certPem);
      await writeSecret(path.join(dir, 'root', 'ca.key'), root.keyPem);
      await writePublic(path.join(dir, 'root', 'ca.pem'), root.certPem);
      await writePublic(path.join(dir, 'server', 'ca.pem'), root.certPem);
      await writePublic(path.join(dir, 'server', 'issuer.pem'), issuer.certPem);
      await writeSecret(path.join(dir, 'server', 'issuer.key'), issuer.keyPem);
      await writePublic(path.join(dir, 'server', 'tls.pem'), server.certPem + chain);
      await writeSecret(path.join(dir, 'server', 'tls.key'), server.keyPem);
      await writePublic(path.join(dir, 'server', 'mqtt-client.pem'), mqttClient.certPem + chain);
      await writeSecret(path.join(dir, 'server', 'mqtt-client.key'), mqttClient.keyPem);
      print(
        [
          `fleet CA "${name}": ${issuer === root ? 'the root signs device certificates' : 'an intermediate signs device certificates; the root stays offline'}; server names: ${[...dns, ...ip].join(', ')}`,
          `  ${path.join(dir, 'ca.pem')}   the fleet's trust anchor (devices and brokers verify with it)`,
          `  ${path.join(dir, 'root')}/   the root key: ${issuer === root ? 'the server needs it too (its copy is server/issuer.key)' : 'keep OFFLINE; it is needed only to make a new intermediate'}`,
          `  ${path.join(dir, 'server')}/   copy to the server and set CONVOY_PKI_DIR to it`,
        ].join('\n'),
      );
    },
  }),
};
