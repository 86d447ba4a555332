/*
 * Five-field cron (minute hour day-of-month month day-of-week), as crontab(5) writes it: `*`,
 * numbers, ranges `a-b`, lists `a,b`, steps `*\/n` and `a-b/n`; day-of-week 0-7 (0 and 7 are
 * Sunday). As in crontab(5), when both day fields are restricted a day matching either runs.
 * Evaluated in UTC. Pure: used to validate policies and by the scheduler.
 */

export interface Cron {
  minute: ReadonlySet<number>;
  hour: ReadonlySet<number>;
  day: ReadonlySet<number>;
  month: ReadonlySet<number>;
  weekday: ReadonlySet<number>;
  dayRestricted: boolean;
  weekdayRestricted: boolean;
}

const bounds: [number, number][] = [[0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];

function parseField(text: string, [low, high]: [number, number]): Set<number> | undefined {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(part);
    if (!match) return undefined;
    const from = match[1] === '*' ? low : Number(match[2]);
    const to = match[1] === '*' ? high : match[3] !== undefined ? Number(match[3]) : match[4] !== undefined ? high : from;
    const step = match[4] !== undefined ? Number(match[4]) : 1;
    if (from < low || to > high || from > to || step < 1) return undefined;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

export function parseCron(text: string): Cron | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5) return undefined;
  const sets = fields.map((field, i) => parseField(field, bounds[i]!));
  if (sets.some((s) => s === undefined)) return undefined;
  const [minute, hour, day, month, weekday] = sets as Set<number>[];
  if (weekday!.has(7)) weekday!.add(0);
  return { minute: minute!, hour: hour!, day: day!, month: month!, weekday: weekday!, dayRestricted: fields[2] !== '*', weekdayRestricted: fields[4] !== '*' };
}

export function cronMatches(cron: Cron, at: Date): boolean {
  if (!cron.minute.has(at.getUTCMinutes()) || !cron.hour.has(at.getUTCHours()) || !cron.month.has(at.getUTCMonth() + 1)) return false;
  const day = cron.day.has(at.getUTCDate());
  const weekday = cron.weekday.has(at.getUTCDay());
  if (cron.dayRestricted && cron.weekdayRestricted) return day || weekday;
  return day && weekday;
}
