import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { readJournal, writeJournal } from '../../device/journal.ts';
import { emptyJournal } from '../../device/state.ts';
import { makeTempDir } from '../helpers/server.ts';

test('the journal: absent means empty, written atomically (no temp file left), read back as written', async (t) => {
  const dir = await makeTempDir('convoy-journal-');
  try {
    const file = path.join(dir, 'journal.json');
    t.deepEqual(await readJournal(file), emptyJournal);
    const journal = { ...emptyJournal, storeCount: 3, installed: { bundle: 'pos-app', version: '1.0.0', slot: 'pos-app@1.0.0-abcdef' } };
    await writeJournal(file, journal);
    t.deepEqual(await readJournal(file), journal);
    t.deepEqual(await fs.readdir(dir), ['journal.json']);
    t.is((await fs.stat(file)).mode & 0o777, 0o600);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("the skeleton's v1 journal is upgraded, never refused; a damaged one is refused with a clear error", async (t) => {
  const dir = await makeTempDir('convoy-journal-');
  try {
    const file = path.join(dir, 'journal.json');
    const installed = { bundle: 'pos-app', version: '1.1.0', slot: 'pos-app@1.1.0-mf0abc123456' };
    const previous = { bundle: 'pos-app', version: '1.0.0', slot: 'pos-app@1.0.0-mf0abc000000' };
    await fs.writeFile(file, JSON.stringify({ schema: 'convoy.device.journal/v1', installed, previous }));
    t.deepEqual(await readJournal(file), { schema: 'convoy.device.journal/v3', storeCount: 0, installed, kept: [previous], update: null, highWater: { 'pos-app': '1.1.0' } });
    await fs.writeFile(file, JSON.stringify({ schema: 'convoy.device.journal/v2', storeCount: 1, installed: { ...installed, slot: '../etc' }, kept: [], update: null }));
    await t.throwsAsync(readJournal(file), { message: /invalid device journal: installed\.slot/ });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a v2 journal is upgraded to v3 with a high-water mark per bundle it names (the highest, installed or kept)', async (t) => {
  const dir = await makeTempDir('convoy-journal-');
  try {
    const file = path.join(dir, 'journal.json');
    const installed = { bundle: 'pos-app', version: '1.0.0', slot: 'pos-app@1.0.0-abcdef' };
    const kept = [
      { bundle: 'pos-app', version: '1.2.0', slot: 'pos-app@1.2.0-abcdef' },
      { bundle: 'kiosk', version: '0.3.0', slot: 'kiosk@0.3.0-abcdef' },
    ];
    await fs.writeFile(file, JSON.stringify({ schema: 'convoy.device.journal/v2', storeCount: 7, installed, kept, update: null }));
    t.deepEqual(await readJournal(file), { schema: 'convoy.device.journal/v3', storeCount: 7, installed, kept, update: null, highWater: { 'pos-app': '1.2.0', kiosk: '0.3.0' } });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
