// Cron expressions in the Workers syntax (hypervisor/node/cron.ts) and the scheduler that fires them
// (hypervisor/node/cron-scheduler.ts), run over days of virtual time.
import { describe, expect, it } from 'vitest';
import { CronError, parseCron } from '../dist/hypervisor/node/cron.js';
import { CronScheduler, type SchedulerClock } from '../dist/hypervisor/node/cron-scheduler.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString().replace(':00.000Z', 'Z'));
/** The next `n` firings strictly after `from`. */
function firings(expr: string, from: string, n: number): Array<string | null> {
  const s = parseCron(expr);
  const out: Array<string | null> = [];
  let t: number | null = at(from);
  for (let i = 0; i < n && t !== null; i++) {
    t = s.next(t);
    out.push(iso(t));
  }
  return out;
}

describe('parseCron: the Workers examples', () => {
  // https://developers.cloudflare.com/workers/configuration/cron-triggers/ (2026-01 is a Thursday-start month).
  it.each([
    ['* * * * *', '2026-01-01T00:00:30Z', ['2026-01-01T00:01Z', '2026-01-01T00:02Z']],
    ['*/30 * * * *', '2026-01-01T00:00:00Z', ['2026-01-01T00:30Z', '2026-01-01T01:00Z']],
    ['45 * * * *', '2026-01-01T00:50:00Z', ['2026-01-01T01:45Z', '2026-01-01T02:45Z']],
    ['0 17 * * sun', '2026-01-01T00:00:00Z', ['2026-01-04T17:00Z', '2026-01-11T17:00Z']],
    ['0 17 * * 1', '2026-01-01T00:00:00Z', ['2026-01-04T17:00Z', '2026-01-11T17:00Z']],
    ['10 7 * * mon-fri', '2026-01-02T08:00:00Z', ['2026-01-05T07:10Z', '2026-01-06T07:10Z']],
    ['10 7 * * 2-6', '2026-01-02T08:00:00Z', ['2026-01-05T07:10Z', '2026-01-06T07:10Z']],
    ['0 15 1 * *', '2026-01-01T15:00:00Z', ['2026-02-01T15:00Z', '2026-03-01T15:00Z']],
    ['0 18 * * 6L', '2026-01-01T00:00:00Z', ['2026-01-30T18:00Z', '2026-02-27T18:00Z']],
    ['0 18 * * friL', '2026-01-01T00:00:00Z', ['2026-01-30T18:00Z', '2026-02-27T18:00Z']],
    ['59 23 LW * *', '2026-01-01T00:00:00Z', ['2026-01-30T23:59Z', '2026-02-27T23:59Z']],
    ['0 10 * * MON#2', '2026-01-01T00:00:00Z', ['2026-01-12T10:00Z', '2026-02-09T10:00Z']],
    ['0 9 L * *', '2026-02-01T00:00:00Z', ['2026-02-28T09:00Z', '2026-03-31T09:00Z']],
    ['0 0 15W * *', '2026-02-01T00:00:00Z', ['2026-02-16T00:00Z', '2026-03-16T00:00Z']],
    ['0 0 29 2 *', '2026-01-01T00:00:00Z', ['2028-02-29T00:00Z', '2032-02-29T00:00Z']],
    ['5/20 1-2 * JAN,jul ?', '2026-01-01T00:00:00Z', ['2026-01-01T01:05Z', '2026-01-01T01:25Z', '2026-01-01T01:45Z', '2026-01-01T02:05Z']],
    // Both day fields restricted: either matches (Unix cron).
    ['0 0 13 * fri', '2026-02-01T00:00:00Z', ['2026-02-06T00:00Z', '2026-02-13T00:00Z', '2026-02-20T00:00Z']],
  ])('%s after %s', (expr, from, want) => {
    expect(firings(expr, from, want.length)).toEqual(want);
  });

  it('never fires an impossible date', () => {
    expect(parseCron('0 0 30 2 *').next(at('2026-01-01T00:00:00Z'))).toBeNull();
  });
});

describe('parseCron: errors name the field', () => {
  it.each([
    ['* * * *', 'it needs 5 fields'],
    ['60 * * * *', 'field 1 (minute) "60": 60 is out of range 0-59'],
    ['* 24 * * *', 'field 2 (hour) "24": 24 is out of range 0-23'],
    ['* * 0 * *', 'field 3 (day of month) "0": 0 is out of range 1-31'],
    ['* * * FOO *', 'field 4 (month) "FOO": "FOO" is not a number or a name (JAN-DEC)'],
    ['* * * * 0', 'field 5 (day of week) "0": 0 is out of range 1-7 (days of the week are 1-7, 1 = Sunday, or SUN-SAT)'],
    ['*/0 * * * *', 'field 1 (minute) "*/0": step "0" must be a positive integer'],
    ['* * * * MON#6', 'field 5 (day of week) "MON#6": "#6": the week of the month must be 1-5'],
    ['5-1 * * * *', 'field 1 (minute) "5-1": range 5-1 runs backwards'],
  ])('%s', (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronError);
    expect(() => parseCron(expr)).toThrow(message);
  });
});

/** A clock whose time moves only when told to, running due timers in deadline order. */
class VirtualClock implements SchedulerClock {
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private ids = 0;
  constructor(public t: number) {}
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  advanceTo(t: number): void {
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > t) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = t;
  }
}

describe('CronScheduler', () => {
  it('fires each expression at its times, once each, over three virtual days', () => {
    const clock = new VirtualClock(at('2026-01-01T00:00:10Z'));
    const fired: string[] = [];
    const s = new CronScheduler(['0 */6 * * *', '30 12 * * *', '0 12 * * *'], (cron, t) => fired.push(`${iso(t)} ${cron}`), clock);
    clock.advanceTo(at('2026-01-02T13:00:00Z'));
    expect(fired).toEqual([
      '2026-01-01T06:00Z 0 */6 * * *',
      '2026-01-01T12:00Z 0 */6 * * *',
      '2026-01-01T12:00Z 0 12 * * *',
      '2026-01-01T12:30Z 30 12 * * *',
      '2026-01-01T18:00Z 0 */6 * * *',
      '2026-01-02T00:00Z 0 */6 * * *',
      '2026-01-02T06:00Z 0 */6 * * *',
      '2026-01-02T12:00Z 0 */6 * * *',
      '2026-01-02T12:00Z 0 12 * * *',
      '2026-01-02T12:30Z 30 12 * * *',
    ]);
    expect(iso(s.nextFiringMs)).toBe('2026-01-02T18:00Z');
    s.stop();
    clock.advanceTo(at('2026-01-03T00:00:00Z'));
    expect(fired).toHaveLength(10);
  });

  it('a timer that fires early re-arms instead of firing; a long stall fires a missed slot once', () => {
    const clock = new VirtualClock(at('2026-01-01T00:00:00Z'));
    const fired: string[] = [];
    new CronScheduler(['* * * * *'], (_c, t) => fired.push(iso(t)!), clock);
    clock.advanceTo(at('2026-01-01T00:00:59.999Z'));
    expect(fired).toEqual([]);
    clock.advanceTo(at('2026-01-01T00:01:00Z'));
    expect(fired).toEqual(['2026-01-01T00:01Z']);
    // The node's event loop was blocked for ten minutes: the overdue timer runs late, and the run of
    // missed firings (00:02 to 00:11) is delivered once, then the schedule goes on from the present.
    clock.t = at('2026-01-01T00:11:30Z');
    clock.advanceTo(at('2026-01-01T00:12:00Z'));
    expect(fired).toEqual(['2026-01-01T00:01Z', '2026-01-01T00:02Z', '2026-01-01T00:12Z']);
  });

  it('takes over a month of virtual time for a monthly trigger through the setTimeout range limit', () => {
    const clock = new VirtualClock(at('2026-01-01T00:00:00Z'));
    const fired: string[] = [];
    new CronScheduler(['0 0 1 * *'], (_c, t) => fired.push(iso(t)!), clock);
    clock.advanceTo(at('2026-04-01T00:00:00Z'));
    expect(fired).toEqual(['2026-02-01T00:00Z', '2026-03-01T00:00Z', '2026-04-01T00:00Z']);
  });
});
