// Cron expressions in the Workers syntax (Cloudflare Cron Triggers): five fields, minute hour
// day-of-month month day-of-week, evaluated in UTC, with the Quartz-like extensions Workers accepts:
//   minute 0-59, hour 0-23           * , - /
//   day of month 1-31                * , - / L W (L: last day, LW: last weekday, 15W: weekday nearest the 15th)
//   month 1-12 or JAN-DEC            * , - /
//   day of week 1-7 or SUN-SAT       * , - / L # (1 = Sunday; 6L: last Friday; MON#2: second Monday)
// `?` is accepted as `*` in the two day fields. When both day fields are restricted a day matches
// either (as Unix cron); otherwise the restricted one decides.
//
// Only the live side evaluates a schedule (on the node's clock); a firing is then a recorded event.

export class CronError extends Error {
  override name = 'CronError';
}

const FIELD_NAMES = ['minute', 'hour', 'day of month', 'month', 'day of week'] as const;
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** How far ahead next() looks before it calls a schedule impossible (e.g. "0 0 30 2 *"): 8 years covers every leap-day cycle. */
const SEARCH_DAYS = 8 * 366;

interface DayOfMonth {
  any: boolean;
  days: Set<number>;
  last: boolean;
  lastWeekday: boolean;
  nearestWeekday: number[];
}
interface DayOfWeek {
  any: boolean;
  /** 0 = Sunday. */
  days: Set<number>;
  /** "xL": the last such weekday of the month. */
  lastOf: number[];
  /** "x#n": the n-th such weekday of the month. */
  nth: Array<[weekday: number, n: number]>;
}

export interface CronSchedule {
  /** The expression as given. */
  readonly expression: string;
  /** The first firing strictly after `afterMs` (ms since the epoch, UTC), or null if there is none. */
  next(afterMs: number): number | null;
}

export function parseCron(expression: string): CronSchedule {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 || fields[0] === '') {
    throw new CronError(`invalid cron expression "${expression}": it needs 5 fields (minute hour day-of-month month day-of-week), found ${fields[0] === '' ? 0 : fields.length}`);
  }
  const fail = (i: number, why: string): never => {
    throw new CronError(`invalid cron expression "${expression}": field ${i + 1} (${FIELD_NAMES[i]}) "${fields[i]}": ${why}`);
  };
  const minutes = parseSimple(fields[0]!, 0, 59, null, (why) => fail(0, why));
  const hours = parseSimple(fields[1]!, 0, 23, null, (why) => fail(1, why));
  const dom = parseDayOfMonth(fields[2]!, (why) => fail(2, why));
  const months = parseSimple(fields[3]!, 1, 12, MONTHS, (why) => fail(3, why));
  const dow = parseDayOfWeek(fields[4]!, (why) => fail(4, why));
  const minuteList = [...minutes].sort((a, b) => a - b);
  const hourList = [...hours].sort((a, b) => a - b);

  const dayMatches = (y: number, m: number, d: number): boolean => {
    if (!months.has(m + 1)) return false;
    const domOk = !dom.any && matchDayOfMonth(dom, y, m, d);
    const dowOk = !dow.any && matchDayOfWeek(dow, y, m, d);
    if (!dom.any && !dow.any) return domOk || dowOk;
    if (!dom.any) return domOk;
    if (!dow.any) return dowOk;
    return true;
  };

  return {
    expression,
    next(afterMs: number): number | null {
      // The first whole minute after afterMs.
      const start = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
      let day = Math.floor(start / DAY_MS) * DAY_MS;
      for (let i = 0; i < SEARCH_DAYS; i++, day += DAY_MS) {
        const date = new Date(day);
        if (!dayMatches(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate())) continue;
        for (const h of hourList) {
          for (const min of minuteList) {
            const t = day + h * 3_600_000 + min * MINUTE_MS;
            if (t >= start) return t;
          }
        }
      }
      return null;
    },
  };
}

function daysInMonth(y: number, m: number): number {
  return new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
}
function weekday(y: number, m: number, d: number): number {
  return new Date(Date.UTC(y, m, d)).getUTCDay();
}
/** The weekday (Mon-Fri) nearest to day `n` of the month, not leaving the month (Quartz "nW"). */
function nearestWeekday(y: number, m: number, n: number): number {
  const last = daysInMonth(y, m);
  if (n > last) return -1;
  const wd = weekday(y, m, n);
  if (wd === 6) return n === 1 ? 3 : n - 1;
  if (wd === 0) return n === last ? n - 2 : n + 1;
  return n;
}

function matchDayOfMonth(dom: DayOfMonth, y: number, m: number, d: number): boolean {
  if (dom.days.has(d)) return true;
  const last = daysInMonth(y, m);
  if (dom.last && d === last) return true;
  if (dom.lastWeekday && d === nearestWeekday(y, m, last)) return true;
  return dom.nearestWeekday.some((n) => nearestWeekday(y, m, n) === d);
}

function matchDayOfWeek(dow: DayOfWeek, y: number, m: number, d: number): boolean {
  const wd = weekday(y, m, d);
  if (dow.days.has(wd)) return true;
  if (dow.lastOf.includes(wd) && d + 7 > daysInMonth(y, m)) return true;
  return dow.nth.some(([w, n]) => w === wd && Math.ceil(d / 7) === n);
}

/** A number or a name (case-insensitive) in [min, max]. */
function parseValue(text: string, min: number, max: number, names: string[] | null, fail: (why: string) => never): number {
  let n: number;
  if (/^\d+$/.test(text)) n = Number(text);
  else {
    const i = names ? names.indexOf(text.toUpperCase()) : -1;
    if (i < 0) return fail(`"${text}" is not a number${names ? ` or a name (${names[0]}-${names[names.length - 1]})` : ''}`);
    n = i + min;
  }
  if (n < min || n > max) return fail(`${n} is out of range ${min}-${max}`);
  return n;
}

/** `*`, `a`, `a-b`, each optionally `/step`, comma-separated. */
function parseSimple(field: string, min: number, max: number, names: string[] | null, fail: (why: string) => never): Set<number> {
  const out = new Set<number>();
  for (const part of field.split(',')) {
    if (part === '') fail('empty list item');
    const [range, stepText, extra] = part.split('/');
    if (extra !== undefined) fail(`"${part}" has more than one "/"`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) fail(`step "${stepText}" must be a positive integer`);
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = min;
      hi = max;
    } else {
      const dash = range!.indexOf('-', 1);
      if (dash > 0) {
        lo = parseValue(range!.slice(0, dash), min, max, names, fail);
        hi = parseValue(range!.slice(dash + 1), min, max, names, fail);
        if (hi < lo) fail(`range ${range} runs backwards`);
      } else {
        lo = parseValue(range!, min, max, names, fail);
        hi = stepText !== undefined ? max : lo; // "5/15": from 5 every 15
      }
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

function parseDayOfMonth(field: string, fail: (why: string) => never): DayOfMonth {
  const dom: DayOfMonth = { any: field === '*' || field === '?', days: new Set(), last: false, lastWeekday: false, nearestWeekday: [] };
  if (dom.any) return dom;
  for (const part of field.split(',')) {
    const upper = part.toUpperCase();
    if (upper === 'L') dom.last = true;
    else if (upper === 'LW') dom.lastWeekday = true;
    else if (/^\d+W$/.test(upper)) dom.nearestWeekday.push(parseValue(upper.slice(0, -1), 1, 31, null, fail));
    else for (const d of parseSimple(part, 1, 31, null, fail)) dom.days.add(d);
  }
  return dom;
}

function parseDayOfWeek(field: string, fail: (why: string) => never): DayOfWeek {
  const dow: DayOfWeek = { any: field === '*' || field === '?', days: new Set(), lastOf: [], nth: [] };
  if (dow.any) return dow;
  // Workers numbers days 1-7 from Sunday; internally 0 = Sunday.
  const value = (text: string) => parseValue(text, 1, 7, DAYS, (why) => fail(`${why} (days of the week are 1-7, 1 = Sunday, or SUN-SAT)`)) - 1;
  for (const part of field.split(',')) {
    const upper = part.toUpperCase();
    const last = /^(\w+)L$/.exec(upper);
    const nth = /^(\w+)#(\d+)$/.exec(upper);
    if (upper === 'L')
      dow.days.add(6); // Quartz: "L" alone is the last day of the week, Saturday
    else if (last) dow.lastOf.push(value(last[1]!));
    else if (nth) {
      const n = Number(nth[2]);
      if (n < 1 || n > 5) fail(`"#${nth[2]}": the week of the month must be 1-5`);
      dow.nth.push([value(nth[1]!), n]);
    } else {
      for (const d of parseSimple(part, 1, 7, DAYS, (why) => fail(`${why} (days of the week are 1-7, 1 = Sunday, or SUN-SAT)`))) dow.days.add(d - 1);
    }
  }
  return dow;
}
