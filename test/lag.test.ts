// The lag tracker: what the backup owes (entries, bytes, age of the oldest unacknowledged batch) and
// how long acknowledged batches waited for their ack (what the Output Rule added to their outputs).

import { expect, test } from 'vitest';
import { HOLD_SAMPLES, LagTracker } from '../dist/recorder/lag.js';

test('lag counts what is unacknowledged; an ack covers whole batches up to its seq', () => {
  const lag = new LagTracker();
  lag.appended(3, 300, 1000);
  lag.appended(5, 200, 1010);
  expect(lag.now(1020)).toEqual({ entries: 5, bytes: 500, ms: 20 });
  // seq 4 ends no batch: the batch through 5 is still owed, so are its bytes.
  lag.acknowledged(4, 1025);
  expect(lag.now(1030)).toEqual({ entries: 1, bytes: 200, ms: 20 });
  lag.acknowledged(5, 1040);
  expect(lag.now(1050)).toEqual({ entries: 0, bytes: 0, ms: 0 });
});

test('hold times: append to ack per batch, summarised over the most recent batches', () => {
  const lag = new LagTracker();
  expect(lag.holds()).toEqual({ batches: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 });
  // One cumulative ack for two batches: each waited from its own append.
  lag.appended(1, 10, 100);
  lag.appended(2, 10, 103);
  lag.acknowledged(2, 105);
  expect(lag.holds()).toEqual({ batches: 2, p50Ms: 5, p99Ms: 5, maxMs: 5 });

  // 100 batches held 1..100 ms: p50 and p99 of those.
  const fresh = new LagTracker();
  for (let i = 1; i <= 100; i++) {
    fresh.appended(i, 10, 0);
    fresh.acknowledged(i, i);
  }
  expect(fresh.holds()).toEqual({ batches: 100, p50Ms: 51, p99Ms: 100, maxMs: 100 });

  // Past HOLD_SAMPLES only the most recent count: the early long holds fall out.
  for (let i = 101; i <= 100 + HOLD_SAMPLES; i++) {
    fresh.appended(i, 10, i);
    fresh.acknowledged(i, i + 0.25);
  }
  expect(fresh.holds()).toEqual({ batches: HOLD_SAMPLES, p50Ms: 0.25, p99Ms: 0.25, maxMs: 0.25 });
});

test('a backup that attaches owes its catch-up from now; a reset forgets what was owed', () => {
  const lag = new LagTracker();
  lag.appended(10, 1000, 0);
  lag.rebase(500);
  lag.acknowledged(10, 520);
  expect(lag.holds().maxMs).toBe(20);
  lag.appended(11, 50, 600);
  lag.reset();
  expect(lag.now(700)).toEqual({ entries: 0, bytes: 0, ms: 0 });
  expect(lag.holds().batches).toBe(1);
});
