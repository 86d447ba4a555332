import fs from 'node:fs/promises';
import semver from 'semver';
import * as z from 'zod';
import { writeFileAtomic } from '../lib/files.ts';
import { bundleName, version } from '../protocol/names.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';
import { emptyJournal, journalSchema, journalSchemaId, slotRecord, type HighWaterMarks, type Journal, type SlotRecord } from './state.ts';

export { emptyJournal, type Journal, type SlotRecord } from './state.ts';

/**
 * The device's journal on disk: the truth about what runs and which update step is due. Written
 * atomically (temp file, fsync, rename, fsync of the directory) before every side effect, so after
 * a power loss it holds the state before or after a write, never a torn one. The record is
 * versioned; an older version is read and upgraded, never refused.
 */
const journalV1 = z.strictObject({
  schema: z.literal('convoy.device.journal/v1'),
  installed: z.strictObject({ bundle: bundleName, version, slot: z.string() }).nullable(),
  previous: z.strictObject({ bundle: bundleName, version, slot: z.string() }).nullable(),
});
/** v2: v3 without the per-bundle high-water marks. */
const journalV2 = journalSchema.omit({ highWater: true }).extend({ schema: z.literal('convoy.device.journal/v2') });

/**
 * Marks for a journal written before v3: the highest version of each bundle it still names
 * (installed and kept were all committed once). Err on the high side: a signed rollback brings
 * an older one back, an unsigned offer must not.
 */
export function marksOf(releases: readonly (SlotRecord | null)[]): HighWaterMarks {
  const marks: HighWaterMarks = {};
  for (const r of releases) {
    if (!r) continue;
    const mark = marks[r.bundle];
    if (!mark || semver.gt(r.version, mark)) marks[r.bundle] = r.version;
  }
  return marks;
}

export async function readJournal(file: string): Promise<Journal> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyJournal;
    throw error;
  }
  const value = parseJson(text, 'device journal') as { schema?: unknown };
  if (value && value.schema === 'convoy.device.journal/v1') {
    // The skeleton's journal: what ran, and the slot before it.
    const v1 = parseWith(journalV1, value, 'device journal');
    const slot = (r: typeof v1.installed) => (r && slotRecord.safeParse(r).success ? slotRecord.parse(r) : null);
    const previous = slot(v1.previous);
    const installed = slot(v1.installed);
    return { schema: journalSchemaId, storeCount: 0, installed, kept: previous ? [previous] : [], update: null, highWater: marksOf([installed, previous]) };
  }
  if (value && value.schema === 'convoy.device.journal/v2') {
    const v2 = parseWith(journalV2, value, 'device journal');
    return { ...v2, schema: journalSchemaId, highWater: marksOf([v2.installed, ...v2.kept]) };
  }
  return parseWith(journalSchema, value, 'device journal');
}

export async function writeJournal(file: string, journal: Journal): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(journal, null, 2) + '\n', 0o600);
}
