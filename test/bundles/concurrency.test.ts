import { randomBytes } from 'node:crypto';
import test from 'ava';
import { pushArtifact, sha256Digest, withServer } from '../helpers/server.ts';

test('edits racing an approval: each one lands in the approved version or is refused with 409, never half', async (t) => {
  await withServer(t, async (server) => {
    await server.api('POST', '/api/v1/bundles', { json: { name: 'pos' } });
    await pushArtifact(server, 'pos', '1.0.0', 'base', Buffer.from('base'));
    await pushArtifact(server, 'pos', '1.0.0', 'doomed', Buffer.from('doomed'));
    const blobs = Array.from({ length: 24 }, () => randomBytes(2_000));
    for (const bytes of blobs) await server.api('PUT', `/api/v1/blobs/${sha256Digest(bytes)}`, { body: bytes });
    const base = '/api/v1/bundles/pos/versions/1.0.0';

    type Edit = { kind: 'put' | 'upload' | 'batch' | 'same'; names: string[]; digests: string[]; status?: number };
    const edits: Edit[] = [];
    const requests: Promise<unknown>[] = [];
    blobs.forEach((bytes, i) => {
      const digest = sha256Digest(bytes);
      const edit: Edit =
        i % 4 === 0 ? { kind: 'put', names: [`put-${i}`], digests: [digest] }
        : i % 4 === 1 ? { kind: 'upload', names: [`up-${i}`], digests: [digest] }
        : i % 4 === 2 ? { kind: 'batch', names: [`b1-${i}`, `b2-${i}`], digests: [digest, digest] }
        : { kind: 'same', names: ['contested'], digests: [digest] };
      edits.push(edit);
      const send =
        edit.kind === 'upload' ? server.api('PUT', `${base}/files/${edit.names[0]}`, { body: bytes })
        : edit.kind === 'batch' ? server.api('POST', `${base}/artifacts`, { json: { artifacts: edit.names.map((name) => ({ name, type: 'file', digest, size: bytes.length })) } })
        : server.api('PUT', `${base}/artifacts/${edit.names[0]}`, { json: { type: 'file', digest, size: bytes.length } });
      requests.push(send.then((answer) => (edit.status = answer.status)));
      // An edit landing between the approval and the freeze makes the approval stale (409): it
      // is never signed on the approver's behalf. Approving again then freezes what is there.
      if (i === 11) requests.push(server.api('POST', `${base}/approve`).then((answer) => t.true(answer.status === 200 || answer.body?.error?.code === 'proposal_stale', `approve: ${answer.status}`)));
    });
    const removal = server.api('DELETE', `${base}/artifacts/doomed`);
    requests.push(removal);
    await Promise.all(requests);
    if ((await server.api('GET', base)).body.status === 'draft') t.is((await server.api('POST', `${base}/approve`)).status, 200);
    // The approval (recorded, then frozen) may outrun every racing edit; one edit sent after it
    // answered is refused for sure.
    const late: Edit = { kind: 'put', names: ['late'], digests: [sha256Digest(blobs[0]!)] };
    late.status = (await server.api('PUT', `${base}/artifacts/late`, { json: { type: 'file', digest: late.digests[0], size: blobs[0]!.length } })).status;
    edits.push(late);

    const version = await server.api('GET', base);
    t.is(version.body.status, 'approved');
    const listed = (await server.api('GET', `${base}/artifacts?per_page=100`)).body as { name: string; digest: string; size: number; type: string }[];
    const manifest = JSON.parse((await server.api('GET', `/api/v1/blobs/${version.body.manifestDigest}`)).raw.toString('utf8'));
    // The signed manifest is exactly what the database holds: nothing slipped in after approval.
    t.deepEqual(manifest.artifacts, listed.map(({ name, type, digest, size }) => ({ name, type, digest, size })));
    const present = new Map(listed.map((a) => [a.name, a.digest]));
    for (const edit of edits) {
      t.true(edit.status === 200 || edit.status === 201 || edit.status === 409, `${edit.kind} ${edit.names}: ${edit.status}`);
      if (edit.kind === 'same') continue;
      for (const [i, name] of edit.names.entries()) {
        if (edit.status === 409) t.false(present.has(name), `${name} was refused, so it is not in the release`);
        else t.is(present.get(name), edit.digests[i], `${name} was accepted, so it is in the release`);
      }
    }
    const contested = edits.filter((e) => e.kind === 'same' && e.status !== 409);
    if (contested.length > 0) t.true(contested.some((e) => e.digests[0] === present.get('contested')), 'the contested name holds one of the accepted writes');
    const removed = (await removal).status;
    t.is(present.has('doomed'), removed === 409);
    t.true(edits.some((e) => e.status === 409), 'some edits came after the approval');
  });
});
