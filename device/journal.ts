import fs from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../lib/files.ts';
import { bundleName, version } from '../protocol/names.ts';
import { parseJson, parseWith } from '../protocol/parse.ts';

/**
 * The device's record of what it runs, written atomically (temp file, fsync, rename, fsync of the
 * directory) before the daemon relies on it. It is the truth on the device: `current` is only
 * trusted when the journal agrees with it.
 */
const slotRecord = z.strictObject({ bundle: bundleName, version, slot: z.string().regex(/^[A-Za-z0-9@._-]+$/) });
export type SlotRecord = z.infer<typeof slotRecord>;

export const journalSchema = z.strictObject({
  schema: z.literal('convoy.device.journal/v1'),
  installed: slotRecord.nullable(),
  previous: slotRecord.nullable(),
});
export type Journal = z.infer<typeof journalSchema>;

export const emptyJournal: Journal = { schema: 'convoy.device.journal/v1', installed: null, previous: null };

export async function readJournal(file: string): Promise<Journal> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyJournal;
    throw error;
  }
  return parseWith(journalSchema, parseJson(text, 'device journal'), 'device journal');
}

export async function writeJournal(file: string, journal: Journal): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(journal, null, 2) + '\n', 0o600);
}
