import test from 'ava';
import { Metadata, type Targets } from '@tufjs/models';
import { bundleOfRole, bundleRoleName } from '../../protocol/targets.ts';
import { generateSigningKey, signerFor, type SigningKey } from '../../tuf/keys.ts';
import { buildTargets, planTargets, type KeyPolicy, type RepositoryView, type TargetEntry, type TargetsPlan } from '../../tuf/repository.ts';

/*
 * The pure planner of per-bundle roles (tuf/repository.ts planTargets): which documents a change
 * re-signs. Table-driven over repositories built in code.
 */

const now = new Date('2026-06-01T00:00:00Z');
const entry = (path: string, length = 3): TargetEntry => ({ path, length, sha256: 'ab'.repeat(32) });
const a1 = entry('a/1.0.0/manifest.json');
const a2 = entry('a/2.0.0/manifest.json');
const b1 = entry('b/1.0.0/manifest.json');

function signAll(plan: TargetsPlan, current: RepositoryView, key: SigningKey): RepositoryView {
  const sign = (metadata: Metadata<Targets>) => (metadata.sign(signerFor(key)), metadata);
  const roles = new Map(current.roles);
  for (const [role, metadata] of plan.roles) roles.set(role, sign(metadata));
  const targets = plan.targets ? sign(plan.targets) : current.targets;
  return { ...(targets ? { targets } : {}), roles };
}

const summary = (plan: TargetsPlan) => ({
  targets: plan.targets ? { version: plan.targets.signed.version, delegates: Object.keys(plan.targets.signed.delegations?.roles ?? {}) } : null,
  roles: Object.fromEntries([...plan.roles].map(([role, m]) => [role, { version: m.signed.version, targets: Object.keys(m.signed.targets) }])),
});

test('role names never collide with the top-level roles, whatever the bundle is called', (t) => {
  for (const bundle of ['root', 'targets', 'snapshot', 'timestamp', 'a.b', 'x-y_z']) {
    const role = bundleRoleName(bundle);
    t.false(['root', 'targets', 'snapshot', 'timestamp'].includes(role));
    t.is(encodeURIComponent(role), role, 'safe as a file name and a URL segment as is');
    t.is(bundleOfRole(role), bundle);
  }
  t.is(bundleOfRole('targets'), undefined);
  t.is(bundleOfRole('bundle-../x'), undefined);
});

test('the planner re-signs only what a change touches', (t) => {
  const key = generateSigningKey();
  const policy: KeyPolicy = { keys: [key.publicKey], threshold: 1 };
  let repo: RepositoryView = { roles: new Map() };
  const step = (wanted: TargetEntry[], options: { policy?: KeyPolicy; at?: Date } = {}) => {
    const plan = planTargets({ wanted, current: repo, policy: options.policy ?? policy, now: options.at ?? now });
    repo = signAll(plan, repo, key);
    return summary(plan);
  };
  t.deepEqual(step([a1, b1]), { targets: { version: 1, delegates: ['bundle-a', 'bundle-b'] }, roles: { 'bundle-a': { version: 1, targets: [a1.path] }, 'bundle-b': { version: 1, targets: [b1.path] } } }, 'first publication');
  t.deepEqual(step([a1, b1]), { targets: null, roles: {} }, 'nothing changed: nothing to sign');
  t.deepEqual(step([a1, a2, b1]), { targets: null, roles: { 'bundle-a': { version: 2, targets: [a1.path, a2.path] } } }, "a's release re-signs a's role only");
  t.deepEqual(step([a1, a2, { ...b1, custom: { convoy: { rollback: true } } }]), { targets: null, roles: { 'bundle-b': { version: 2, targets: [b1.path] } } }, 'a signed rollback permission is a change of the role');
  t.deepEqual(step([a1, a2]), { targets: { version: 2, delegates: ['bundle-a'] }, roles: { 'bundle-b': { version: 3, targets: [] } } }, "b's last version revoked: delegation dropped, role emptied");
  t.deepEqual(step([a1, a2]), { targets: null, roles: {} }, 'an emptied role stays as it is');
  const halfYearLater = new Date(now.getTime() + 190 * 86_400_000);
  t.deepEqual(step([a1, a2], { at: halfYearLater }), { targets: { version: 3, delegates: ['bundle-a'] }, roles: { 'bundle-a': { version: 3, targets: [a1.path, a2.path] } } }, 'past half their lifetime: renewed (not the emptied, undelegated role)');
  const other = generateSigningKey();
  const rotated = planTargets({ wanted: [a1, a2], current: repo, policy: { keys: [other.publicKey], threshold: 1 }, now });
  t.deepEqual(summary(rotated), { targets: { version: 4, delegates: ['bundle-a'] }, roles: { 'bundle-a': { version: 4, targets: [a1.path, a2.path] } } }, 'keys root no longer trusts: all signed again');
});

test('a repository of the flat layout plans a delegating targets.json and a role per bundle', (t) => {
  const key = generateSigningKey();
  const flat = buildTargets([a1, b1], 7, now);
  flat.sign(signerFor(key));
  const plan = planTargets({ wanted: [a1, b1], current: { targets: flat, roles: new Map() }, policy: { keys: [key.publicKey], threshold: 1 }, now });
  t.deepEqual(summary(plan), { targets: { version: 8, delegates: ['bundle-a', 'bundle-b'] }, roles: { 'bundle-a': { version: 1, targets: [a1.path] }, 'bundle-b': { version: 1, targets: [b1.path] } } });
  t.deepEqual(plan.targets!.signed.targets, {});
  const role = plan.targets!.signed.delegations!.roles!['bundle-a']!;
  t.true(role.terminating);
  t.true(role.isDelegatedPath('a/1.0.0/manifest.json'));
  t.true(role.isDelegatedPath('a/1.0.0/artifacts/app.bin'));
  t.false(role.isDelegatedPath('b/1.0.0/manifest.json'));
  t.false(role.isDelegatedPath('ab/1.0.0/manifest.json'));
});
