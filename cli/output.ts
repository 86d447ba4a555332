/*
 * Everything the CLI prints goes through here. Text comes from the server and, through it, from
 * devices (error messages, descriptions): a string holding ESC [ … could move the cursor, rewrite
 * earlier lines or set the terminal's title on an operator's screen. Control characters are
 * printed escaped (`\x1b`), never raw.
 */

// C0 controls, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), and the Unicode
// bidirectional overrides that reorder what is shown (the "Trojan Source" characters).
const controls = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const notEscapedByJson = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const controlsButNewline = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeOne(char: string): string {
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line's worth of text: every control character escaped, newlines included. */
export function escapeControl(text: string): string {
  return text.replace(controls, escapeOne);
}

/** Several lines of our own making: newlines kept, every other control character escaped. */
export function escapeText(text: string): string {
  return text.replace(controlsButNewline, escapeOne);
}

/**
 * JSON for scripts. JSON.stringify escapes C0 controls but not DEL, C1 or the bidi characters;
 * they can only stand inside strings, where a \u escape is the same value to a JSON reader.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(notEscapedByJson, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text to stdout (a trailing newline added when missing). */
export function print(text: string): void {
  process.stdout.write(escapeText(text.endsWith('\n') ? text : `${text}\n`));
}

/** Text to stderr: progress, notes beside the result, errors. */
export function printErr(text: string): void {
  process.stderr.write(escapeText(text.endsWith('\n') ? text : `${text}\n`));
}

export function printJson(value: unknown): void {
  process.stdout.write(toJson(value) + '\n');
}

/** Prints rows as an aligned table, or as JSON when asked: listings are for people and scripts. */
export function printList<T extends object>(rows: readonly T[], columns: { header: string; value: (row: T) => string }[], json: boolean): void {
  if (json) return printJson(rows);
  if (rows.length === 0) return print('(none)');
  // Each cell escaped on its own: a newline inside a device's message must not break the table.
  const cells = [columns.map((c) => c.header), ...rows.map((row) => columns.map((c) => escapeControl(c.value(row))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  for (const line of cells) process.stdout.write(line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n');
}

export function printJsonOr(value: unknown, json: boolean, text: string): void {
  if (json) printJson(value);
  else print(text);
}
