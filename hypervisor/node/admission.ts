// How fast the primary admits new work while its backup's replay backlog grows (DESIGN invariant 5:
// the primary slows, then holds). Pure: the role machine asks it on every lag report.
//
// Below SLOW_FROM_FRACTION of --max-replay-lag-ms admission runs at full rate; from there to the
// limit the rate falls in proportion, down to MIN_ADMIT_RATE just under it; over the limit the
// primary holds (new requests queue, then get 503). Slowing early gives the backup room to catch up
// before anything is refused, and keeps a takeover's drain well inside the go-live budget.

/** Admission slows once the replay backlog passes this fraction of --max-replay-lag-ms. */
export const SLOW_FROM_FRACTION = 0.5;
/** The slowest admission before it holds, as a fraction of the full rate. */
export const MIN_ADMIT_RATE = 0.1;
/** Rates move in steps of 1/ADMIT_RATE_STEPS (a new rate is worth an action only then). */
export const ADMIT_RATE_STEPS = 10;

export type AdmissionState = 'full' | 'slowed' | 'held';

/** The admission rate (1: full) for a replay backlog of `backlogMs` against the limit; 0 over the limit. */
export function admitRate(backlogMs: number, limitMs: number): number {
  if (backlogMs > limitMs) return 0;
  const fromMs = limitMs * SLOW_FROM_FRACTION;
  if (!(backlogMs > fromMs)) return 1;
  const rate = 1 - (backlogMs - fromMs) / (limitMs - fromMs);
  return Math.max(MIN_ADMIT_RATE, Math.round(rate * ADMIT_RATE_STEPS) / ADMIT_RATE_STEPS);
}

export function admissionState(admitting: boolean, rate: number): AdmissionState {
  return !admitting ? 'held' : rate < 1 ? 'slowed' : 'full';
}

/**
 * The pause after a batch that ran `batchMs`, for admission at `rate`: the VM then runs `rate` of
 * the time. Capped, so a slowed primary still starts a batch at least every `maxPauseMs`.
 */
export function pauseAfterBatchMs(batchMs: number, rate: number, maxPauseMs: number): number {
  if (!(rate < 1) || !(rate > 0)) return 0;
  return Math.min(maxPauseMs, (batchMs * (1 - rate)) / rate);
}
