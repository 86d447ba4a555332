import { ApiFailure, type Client } from './api.ts';

/**
 * What the UI checks of an approved version, the way a device starts (TUF §5): the timestamp
 * names the snapshot, the snapshot names the targets metadata, which delegates the bundle's paths
 * to the bundle's role (§5.6, `bundle-<name>`), whose metadata names the manifest with its length
 * and sha256, and the manifest bytes served hash to it. The signatures
 * themselves are checked by devices (tuf-js) against their pinned root; this shows the release
 * manager that what they approved is what devices will be offered.
 */
export interface Verification {
  ok: boolean;
  steps: { what: string; ok: boolean }[];
  /** The signed targets let devices downgrade to this version (an allowed rollback). */
  rollback: boolean;
  /** The manifest's text as served (what the approval froze). */
  manifest?: string;
}

async function fetchBytes(client: Client, path: string): Promise<ArrayBuffer> {
  const response = await fetch(path, { headers: { authorization: `Bearer ${client.token}` } });
  if (!response.ok) throw new ApiFailure(response.status, `http_${response.status}`, `${path} answered ${response.status}`);
  return response.arrayBuffer();
}

async function fetchSigned(client: Client, path: string): Promise<{ signed: Record<string, any>; signatures: unknown[] }> {
  const text = new TextDecoder().decode(await fetchBytes(client, path));
  return JSON.parse(text) as { signed: Record<string, any>; signatures: unknown[] };
}

async function sha256Hex(bytes: ArrayBuffer): Promise<string | undefined> {
  // WebCrypto exists only in secure contexts (https, or http on localhost).
  if (!globalThis.crypto?.subtle) return undefined;
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function verifyRelease(client: Client, bundle: string, version: string, manifestDigest: string | null): Promise<Verification> {
  const steps: Verification['steps'] = [];
  const timestamp = await fetchSigned(client, '/tuf/timestamp.json');
  const snapshotVersion = Number(timestamp.signed.meta?.['snapshot.json']?.version);
  const expires = new Date(String(timestamp.signed.expires));
  steps.push({ what: `Timestamp metadata v${timestamp.signed.version}, valid until ${expires.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })}`, ok: expires.getTime() > Date.now() && timestamp.signatures.length > 0 });
  const snapshot = await fetchSigned(client, `/tuf/${snapshotVersion}.snapshot.json`);
  const targetsVersion = Number(snapshot.signed.meta?.['targets.json']?.version);
  steps.push({ what: `Snapshot v${snapshotVersion} names targets v${targetsVersion}`, ok: Number.isInteger(targetsVersion) && snapshot.signatures.length > 0 });
  const targets = await fetchSigned(client, `/tuf/${targetsVersion}.targets.json`);
  const role = `bundle-${bundle}`;
  const delegated = (targets.signed.delegations?.roles as { name: string }[] | undefined)?.some((r) => r.name === role) === true;
  const roleVersion = Number(snapshot.signed.meta?.[`${role}.json`]?.version);
  steps.push({ what: delegated ? `Targets v${targetsVersion} delegate ${bundle} to its role ${role} (v${roleVersion})` : `Targets v${targetsVersion} delegate nothing to ${bundle}`, ok: delegated && Number.isInteger(roleVersion) });
  if (!delegated) return { ok: false, steps, rollback: false };
  const signedRole = await fetchSigned(client, `/tuf/${roleVersion}.${role}.json`);
  const path = `${bundle}/${version}/manifest.json`;
  const entry = signedRole.signed.targets?.[path] as { length: number; hashes: { sha256: string }; custom?: { convoy?: { rollback?: boolean } } } | undefined;
  const want = manifestDigest?.replace(/^sha256:/, '');
  steps.push({ what: entry ? `The signed ${role} v${roleVersion} lists ${path}` : `${path} is missing from the signed targets`, ok: entry !== undefined });
  if (!entry) return { ok: false, steps, rollback: false };
  steps.push({ what: `The signed hash is the version's manifest digest`, ok: entry.hashes.sha256 === want });
  const bytes = await fetchBytes(client, `/tuf/targets/${bundle}/${version}/${entry.hashes.sha256}.manifest.json`);
  const actual = await sha256Hex(bytes);
  if (actual === undefined) steps.push({ what: 'The manifest bytes could not be hashed here (this page is not served over https)', ok: false });
  else steps.push({ what: `The manifest served (${bytes.byteLength} bytes) hashes to the signed sha256`, ok: actual === entry.hashes.sha256 && bytes.byteLength === entry.length });
  let manifest = new TextDecoder().decode(bytes);
  try {
    manifest = JSON.stringify(JSON.parse(manifest), null, 2);
  } catch {
    // Shown as served.
  }
  return { ok: steps.every((s) => s.ok), steps, rollback: entry.custom?.convoy?.rollback === true, manifest };
}
