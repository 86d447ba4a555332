import { createPrivateKey, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import { Metadata, MetadataKind, type Targets } from '@tufjs/models';
import { keyFromJson } from '../certs/ceremony.ts';
import { signingKeyFromPem, type SigningKey } from '../tuf/keys.ts';
import { bundleOfRole, bundleRolePaths } from '../protocol/targets.ts';
import { signedBytes } from '../tuf/repository.ts';
import { CliError } from './client.ts';

/*
 * Key files and offline signatures, for `convoy keys …` and `convoy bundle sign`. Imported lazily:
 * @tufjs/models and the key code are heavy and most commands never sign.
 */

export async function readKey(file: string): Promise<SigningKey> {
  try {
    return signingKeyFromPem(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new CliError(`cannot use ${file} as an Ed25519 private key: ${(error as Error).message}`);
  }
}

export async function readPublicKey(file: string) {
  try {
    return keyFromJson(JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>);
  } catch (error) {
    throw new CliError(`cannot use ${file} as a public key (.pub.json from \`convoy keys generate\`): ${(error as Error).message}`);
  }
}

/** The signature of one approver over the proposed targets metadata (TUF §4.2, Ed25519 over the canonical signed part). */
export function signProposal(signed: unknown, key: SigningKey): { metadata: Metadata<Targets>; sig: string } {
  const metadata = Metadata.fromJSON(MetadataKind.Targets, { signed, signatures: [] } as never);
  const sig = sign(null, signedBytes(metadata), createPrivateKey(key.privateKeyPem)).toString('hex');
  return { metadata, sig };
}

/**
 * Why a proposed top-level targets is not one Convoy makes (undefined when it is): it must list
 * no target and delegate each bundle's own paths, terminating, to that bundle's role, so that
 * signing it never trusts a role for another bundle's paths.
 */
export function checkDelegating(metadata: Metadata<Targets>): string | undefined {
  if (Object.keys(metadata.signed.targets).length > 0) return 'top-level targets lists targets itself';
  for (const role of Object.values(metadata.signed.delegations?.roles ?? {})) {
    const bundle = bundleOfRole(role.name);
    if (bundle === undefined) return `top-level targets delegates to "${role.name}", not a bundle role`;
    if (!role.terminating || JSON.stringify(role.paths) !== JSON.stringify(bundleRolePaths(bundle))) return `the delegation to ${role.name} is not for ${bundle}'s paths alone`;
  }
  return undefined;
}
