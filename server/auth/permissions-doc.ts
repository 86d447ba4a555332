import { roles, scopes, type Role } from '../../protocol/access.ts';
import { bundleReleasesTopic } from '../../protocol/messages.ts';
import type { Route } from '../http/routes.ts';
import { actions, isAllowed, ruleOf, type EdgePrincipal, type Principal } from './policy.ts';

/**
 * Renders docs/permissions.md from the policy table and the route declarations, so the document
 * cannot drift from what the server decides (test/auth/permissions-doc.test.ts compares them).
 * Pure: the caller writes the file.
 */

const title = (role: string) => role[0]!.toUpperCase() + role.slice(1);

/** A user holding `role` on the bundle `b` and the device group `g1` (and nothing else), with a token of every scope. */
export function memberOf(role: Role | undefined, admin = false): Principal {
  return {
    type: 'user',
    userId: 0,
    name: role ?? 'someone',
    isAdmin: admin,
    scopes: new Set(scopes),
    roles: new Map(role ? [['b', role]] : []),
    groupRoles: new Map(role ? [['g1', role]] : []),
    tokenId: 0,
    tokenExpiresAt: null,
  };
}

const device: Principal = { type: 'device', deviceId: 'd', group: 'g1' };
const edge: EdgePrincipal = { type: 'edge', edge: 'e' };
const on = { bundle: 'b', group: 'g1' };

/** A route of another protocol (the OCI registry under /v2), listed with the action it needs. */
export interface ProtocolRoute {
  method: string;
  path: string;
  action: string;
}

export function renderPermissionsDoc(routes: readonly Route[], registryRoutes: readonly ProtocolRoute[] = []): string {
  const lines: string[] = [];
  const out = (...more: string[]) => lines.push(...more);
  out(
    '# Permissions',
    '',
    '<!-- Generated from server/auth/policy.ts and the route declarations by `npm run docs:permissions`.',
    '     Do not edit by hand: test/auth/permissions-doc.test.ts fails when this file and the code differ. -->',
    '',
    'Convoy uses the role ladder GitLab users know. Every user has, per bundle, at most one role:',
    `${roles.map(title).join(' < ')}; each role holds everything the roles below it hold. Instance`,
    'admins hold every action on every bundle. The first admin, `admin`, is made at first start (its',
    'token is `CONVOY_ADMIN_TOKEN`, or a generated one printed once). One table in the code',
    '(`policy` in `server/auth/policy.ts`) decides every action; this page is generated from it.',
    '',
    '## Who is who',
    '',
    '| person | role | token scopes they typically use |',
    '| --- | --- | --- |',
    '| system administrator who runs the instance | instance admin | `read,write,approve,deploy,admin` |',
    '| team lead who owns the bundle | Owner | `read,write,approve,deploy` |',
    '| release manager who approves | Maintainer | `read,approve` |',
    '| DevOps engineer who deploys | Maintainer | `read,deploy` |',
    '| developer who edits drafts | Developer | `read,write` |',
    '| CI job that pushes images and packages | Developer (a user for the job) | `write` (or `read,write`), expiring |',
    '| consumer, dashboard, auditor of a release | Reporter | `read` |',
    '| someone who only follows releases | Guest | `read` |',
    '',
    '## Access tokens and scopes',
    '',
    'A token belongs to one user and carries scopes: `read`, `write`, `approve`, `deploy`, `admin`.',
    "Scopes narrow what the user's roles allow and never widen it: an action needs both the role and",
    "the scope named below. An admin acts as admin only with a token that carries `admin`; with",
    'other tokens they act as the member they are. Tokens are stored as SHA-256 hashes and shown once;',
    'they are listed with their last use and revocable by their owner and by an admin. A token can',
    'only create tokens with scopes it carries itself and expiring no later than itself (an admin',
    'creating a token for another user with `--user` is exempt). A missing, expired or revoked token',
    'is answered 401; an action one does not hold, 403.',
    '',
    '## The table',
    '',
    'A mark means the action is allowed. "Role on" says what the role is looked up on: the bundle',
    'the request names, any bundle (for what bundles share), or the instance. "No role" is a signed-in',
    'user who is not a member of the bundle.',
    '',
    `| action | what it allows | role on | no role | ${roles.map(title).join(' | ')} | Admin | Device | Edge | token scope |`,
    `| --- | --- | --- | :-: | ${roles.map(() => ':-:').join(' | ')} | :-: | :-: | :-: | --- |`,
  );
  for (const action of actions) {
    const rule = ruleOf(action);
    const where = rule.on === 'bundle' ? 'the bundle' : rule.on === 'any-bundle' ? (rule.anyGroup ? 'any bundle or group' : 'any bundle') : rule.on === 'group' ? (rule.bundleRole ? 'the group (and the bundle)' : 'the group') : 'instance';
    const cells = [undefined, ...roles].map((r) => (isAllowed(memberOf(r), action, on) ? '✓' : ''));
    const admin = isAllowed(memberOf(undefined, true), action, on) ? '✓' : '';
    const dev = isAllowed(device, action, on) ? '✓' : '';
    const edgeCell = isAllowed(edge, action, on) ? '✓' : '';
    // An edge's own actions take no user token: its edge token is the credential.
    out(`| \`${action}\` | ${rule.what} | ${where} | ${cells.join(' | ')} | ${admin} | ${dev} | ${edgeCell} | ${rule.edgesOnly ? 'edge token' : `\`${rule.scope}\``} |`);
  }
  out(
    '',
    '## Decisions',
    '',
    '- **Deploying** a version (`deployment:create`) is Maintainer and up on the bundle deployed, with',
    '  a token carrying `deploy`: it changes what runs on devices, like GitLab protected environments',
    '  that Maintainers deploy to. A DevOps engineer is a Maintainer whose token has `read,deploy`',
    '  only, so the same person cannot approve with it.',
    '- **Device groups are owned** like bundles: each has members with roles (its creator is the',
    '  first Owner). Deploying needs Maintainer on the group and at least Guest (read) on the bundle,',
    '  so a maintainer of bundle `beta` cannot push it onto the group that runs `alpha`. Pausing,',
    '  resuming, aborting and retrying a deployment need Maintainer on its group. The columns above',
    '  show a user holding the role on both the bundle and the group. An emergency rollback to a',
    '  version approved before is a deploy action (`--rollback`): it records the signed rollback',
    '  permission without the `approve` scope.',
    '- **Devices**: registering one mints credentials that read signed targets, so it is for instance',
    '  admins (a new group name creates a static group). Listing deployments is for Reporters of',
    '  some bundle or group, listing devices for Maintainers of some bundle and Reporters of some',
    '  group; which rows each sees follows the read model below. Moving a device needs Maintainer on',
    '  both static groups; decommissioning one needs Maintainer on its group and the `admin` scope:',
    '  its token stops at once on HTTP, `/tuf/` and MQTT, and its session is closed.',
    '- **Blobs** are content-addressed and shared by every bundle that names them. Uploading one',
    '  (Developer of some bundle) changes nothing until a draft one may edit names it; downloading by',
    '  digest follows the read model per bundle below. Downloading is Reporter whichever path it',
    '  takes: through `/v2` (`bundle:pull`) a Guest sees the tags but pulls no blob or manifest.',
    '- **The TUF repository** is one per instance; its target files follow the read model per',
    '  bundle below, and its metadata is readable by Reporters of some bundle and by devices (or by',
    '  anyone with `CONVOY_ANONYMOUS_TUF_READ=true`, for stock TUF clients).',
    '- **Bundles** are created by admins (the creator becomes an Owner), who then add the team lead as',
    '  Owner. Letting anyone create one would let anyone become an Owner, and Owners hold the',
    '  "any bundle" actions. A bundle listing shows only the bundles one is a member of (admins: all).',
    '- **Members**: Maintainers add, change and remove members up to Maintainer; only Owners (and',
    '  admins) grant, change or remove the Owner role. A bundle keeps at least one Owner.',
    '- **Users** are created by admins; the audit log is read by admins.',
    '- Devices keep a principal of their own: they read blobs and `/tuf/` for the releases they',
    '  install, pull those releases\' images through `/v2` (`bundle:pull`, approved versions of the',
    '  bundles deployed to them only: Basic with the device id and its token, or its certificate),',
    '  ask for their own release (`GET /api/v1/devices/ID/release`); over MQTT they subscribe',
    '  only to their own release topic and their group\'s, and publish only their own status.',
    '- **Edge nodes** (`convoy serve --mode edge`, docs/replication.md) sign in with the edge token',
    '  `convoy edge add` printed, and hold only what mirroring needs: `edge:sync` (their own tasks, a',
    '  device credential check; nobody else holds it, admins included), blobs their replication tasks',
    '  name (by digest, never by target path) and `/tuf/` metadata. An edge serves its devices the',
    '  device routes, `/tuf/targets/` and read-only `/v2` pulls to devices only, asking the origin',
    '  about each device credential (and bundle), and refuses writes.',
    '',
    '## Reads per bundle',
    '',
    'What a bundle holds is read only by who may read that bundle, whatever the path:',
    '',
    '| path | served to |',
    '| --- | --- |',
    '| `GET`/`HEAD /api/v1/blobs/<digest>` | a user with `blob:read` (Reporter and up) on at least one bundle that holds the digest; a device whose group may run such a bundle; an edge whose replication tasks name the digest; an admin |',
    '| `GET /tuf/targets/<bundle>/<version>/…` | a user with `tuf:read` (Reporter and up) on `<bundle>`; a device whose group may run `<bundle>`; an admin; anyone when `CONVOY_ANONYMOUS_TUF_READ=true` |',
    '| `GET /tuf/<n>.bundle-<bundle>.json` (the bundle\'s TUF role) | the same as its target files |',
    '| `/v2/<bundle>/<image>/blobs/…`, `…/manifests/…` | `bundle:read` on `<bundle>`, and only what was pushed or mounted into that repository |',
    '',
    'A bundle **holds** a digest when one of its versions, draft or approved, names it (an artifact, the',
    "bundle manifest), when one of its registry repositories holds it (a config, a layer, a manifest",
    'pushed or mounted there, including the `convoy-upload` repository the CLI pushes through), or',
    "when an open offline signing proposal of the bundle names it as its manifest. A device's group",
    '**may run** every bundle ever deployed to the group (a device may still be fetching, or rolling',
    'back to, the one before the latest; group ownership will narrow this).',
    '',
    'Anything else answers **404**, exactly as a digest never stored: a refusal would confirm that',
    'the bytes exist. A digest no bundle holds yet (just uploaded, not named) is read by admins only.',
    '',
    "**Naming a digest is a read.** A draft may name a stored blob by digest (`PUT …/artifacts/<name>`",
    "`{digest}`, `POST …/artifacts`) only when no bundle holds it yet, the draft's bundle holds it, or",
    'the caller may read a bundle that holds it; otherwise the answer is the same 400 as for a blob not',
    "stored. Whoever has the bytes proves it by sending them: through the bundle's registry",
    '(`/v2/<bundle>/<image>/blobs/uploads/`, as `convoy artifact push` does) or the streamed artifact',
    'upload (`PUT …/files/<name>`).',
    '',
    '**TUF metadata per bundle.** Top-level `targets.json` lists no target: it delegates (TUF §5.6,',
    '`delegations.roles`) each bundle\'s paths (`<bundle>/*/manifest.json`, `<bundle>/*/artifacts/*`)',
    'to a terminating role of its own, `bundle-<bundle>`, whose metadata lists that bundle\'s target',
    'paths, lengths and hashes. The role is served as `/tuf/<n>.bundle-<bundle>.json` exactly as the',
    "bundle's target files are: to a user with `tuf:read` on the bundle, a device whose group may run",
    'it, an admin, or anyone with `CONVOY_ANONYMOUS_TUF_READ=true`; anyone else gets the same **404** as',
    'for a role that does not exist. tuf-js follows the delegation of the path it is asked for and',
    "never fetches another bundle's role. What every reader of `/tuf/` sees is bundle **names** (the",
    'delegations in `targets.json` and the role versions in `snapshot.json`, version only: no length,',
    "no hash), never another bundle's versions, artifact names, sizes or hashes.",
    '',
    "The role is named `bundle-<bundle>`, not after the bundle alone: a bundle may be called `targets`",
    'or `root`, and the prefix keeps every bundle role apart from the top-level roles and safe as a',
    'file name (`<n>.bundle-<bundle>.json`). It is signed by the same keys and threshold as',
    '`targets.json` (the delegation names them), so in offline mode an approval means what it meant.',
    "Approving or revoking a version re-signs its bundle's role, snapshot and timestamp;",
    '`targets.json` only when a bundle gets its first approved version or loses its last one. A role',
    'whose bundle has nothing approved left stays in `snapshot.json`, empty and no longer delegated:',
    'clients refuse a snapshot that drops a file their trusted one listed (§5.5.5).',
    '',
    '## Read model: deployments and devices',
    '',
    'Holding `deployment:read` or `device:read` lets one ask; which deployments and devices one',
    'then sees follows ownership (`server/auth/reads.ts`), the same on every path: the lists, one',
    'row, its live events (`GET /api/v1/deployments/ID/events`), a device\'s inventory and history',
    '(`GET /api/v1/devices/ID`), the dynamic-group preview, the release notices users may pull',
    '(`GET /api/v1/devices/ID/release`: 404; `GET /api/v1/groups/NAME/release`: 204, as for a group',
    'running nothing), and the CLI and web UI that use them.',
    '',
    '| what | seen by |',
    '| --- | --- |',
    '| a deployment (its devices, their states and error messages) | Reporters and up of its **bundle** (they follow their release) and Reporters and up of its **group** (they follow what reaches their devices); admins |',
    '| a device (inventory, state, error, history) | Reporters and up of one of its **groups**: its static group, or a dynamic group whose filter it matches now; Maintainers and up of a **bundle it runs**, is being moved to, or that an unfinished (scheduled, running, paused) deployment sends it, so they can see why their release failed; admins |',
    '',
    'A bundle\'s Reporter follows its deployments but does not see the fleet\'s inventory: seeing',
    'devices takes Maintainer on the bundle, as `device:read` always did, now narrowed to the devices',
    'the bundle reaches. Once a deployment is aborted or superseded and the device runs something',
    'else, the bundle\'s Maintainers no longer see the device; the deployment itself stays visible',
    'to them.',
    '',
    'Lists are filtered before paging: `X-Total` and the `Link` pages count only what the caller may',
    'see, and a `?group=` or `?bundle=` one may not read lists nothing. One deployment or device one',
    'may not see answers **404**, the same error as one that does not exist, and so does its live',
    'stream, before it opens. Control routes (pause, resume, abort, retry, move, decommission) keep',
    'their own rule, Maintainer on the group, but read the row first: one the caller may not see',
    'answers the same **404**, and **403** goes only to a caller who sees it and may not act on it (or',
    'whose refusal does not depend on the row: a device or edge token, a token without the scope).',
    '',
    '## MQTT',
    '',
    `Approving a version publishes a retained notice on \`${bundleReleasesTopic('<bundle>')}\`. Users sign in`,
    'to the broker with their user name and an access token as the password. They may subscribe to',
    `the topic of each bundle they hold \`bundle:read\` on, or to \`${bundleReleasesTopic('+')}\`, which`,
    'delivers only the notices of bundles they may read. Admins may subscribe to any topic. Roles are',
    'read when the client connects (a change applies at its next connection); when a token is revoked',
    'or expires, the connections signed in with it are closed.',
    '',
    '## Routes',
    '',
    '| method | path | action |',
    '| --- | --- | --- |',
  );
  for (const route of routes) {
    out(`| ${route.method} | \`${route.path}\` | \`${route.action}\`${route.anonymous ? ' (or anonymous, when configured)' : ''} |`);
  }
  if (registryRoutes.length > 0) {
    out(
      '',
      '## The OCI registry (`/v2`)',
      '',
      'Repositories are `<bundle>/<image>`: the action is checked on the bundle, as for the REST routes.',
      'Clients sign in with HTTP Basic (user name and an access token as the password) or a Bearer token.',
      '',
      '| method | path | action |',
      '| --- | --- | --- |',
    );
    for (const route of registryRoutes) out(`| ${route.method} | \`${route.path}\` | \`${route.action}\` |`);
  }
  out('');
  return lines.join('\n');
}
