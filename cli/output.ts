/** Prints rows as an aligned table, or as JSON when asked: listings are for people and scripts. */
export function printList<T extends object>(rows: readonly T[], columns: { header: string; value: (row: T) => string }[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cells = [columns.map((c) => c.header), ...rows.map((row) => columns.map((c) => c.value(row)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  for (const line of cells) process.stdout.write(line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n');
}

export function printJsonOr(value: unknown, json: boolean, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : `${text}\n`);
}
