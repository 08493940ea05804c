// What a takeover would cost, as the primary sees it: the backup's own estimate of the backlog it
// holds (received, not yet replayed), plus the entries it has not even received yet (a backup
// joining by replaying a long log is sent it over seconds; its first reports cover only the start)
// at the cost per entry its report implies. Pure: the shells (hypervisor/node/serving.ts, the simulator)
// feed it the backup's heartbeat reports and the log's end.

/** Replay cost per entry assumed while the backup holds nothing to derive it from, in ms. */
export const DEFAULT_REPLAY_ENTRY_MS = 0.25;
/** Entries replayed over the span for their pace to bound the cost per entry (fewer say little). */
export const MIN_DEMONSTRATED_ENTRIES = 16;
/**
 * The pace is measured from the newest report at least this old, in ms (by arrival): two reports
 * that arrive bunched (one held up in transit, or by this node's event loop) then change it little.
 */
export const DEMONSTRATED_SPAN_MS = 100;

export interface ReplayReport {
  /** The backup's received seq (its heartbeat's seq). */
  receivedSeq: number;
  replayedSeq: number;
  /** The backup's estimate of the time to replay what it holds. */
  backlogMs: number;
}

export class ReplayLag {
  private msPerEntry = DEFAULT_REPLAY_ENTRY_MS;
  /**
   * The backup's demonstrated pace: the time since its newest report at least DEMONSTRATED_SPAN_MS
   * old over the entries it replayed since (replay cannot have taken longer than that), null when it
   * replayed fewer than MIN_DEMONSTRATED_ENTRIES. It bounds msPerEntry, which is taken from the last
   * backlog of some size only: a cost measured on the backup's cold code (10x and more) otherwise
   * stayed, and at a slowed rate the backlog never grew enough to replace it, so admission stayed
   * slowed or held at a few hundred req/s (BENCHMARKS.md, warm19).
   */
  private demonstratedMsPerEntry: number | null = null;
  /** Recent reports by arrival: the first is the newest at least DEMONSTRATED_SPAN_MS old (once there is one). */
  private readonly recent: Array<{ atMs: number; replayedSeq: number }> = [];

  constructor(private report: ReplayReport | null = null) {}

  /** A report from the backup, arrived at `nowMs` (monotonic). */
  reported(report: ReplayReport, nowMs: number): void {
    this.report = report;
    const held = report.receivedSeq - report.replayedSeq;
    // Only a backlog of some size says much about the cost per entry.
    if (held >= 16 && report.backlogMs > 0) this.msPerEntry = report.backlogMs / held;
    const recent = this.recent;
    while (recent.length > 1 && nowMs - recent[1]!.atMs >= DEMONSTRATED_SPAN_MS) recent.shift();
    const from = recent[0];
    const spanMs = from === undefined ? 0 : nowMs - from.atMs;
    const replayed = from === undefined ? 0 : report.replayedSeq - from.replayedSeq;
    this.demonstratedMsPerEntry = spanMs >= DEMONSTRATED_SPAN_MS && replayed >= MIN_DEMONSTRATED_ENTRIES ? spanMs / replayed : null;
    recent.push({ atMs: nowMs, replayedSeq: report.replayedSeq });
  }

  /** The estimated takeover backlog now, in ms, with the log ending at `lastSeq`; null before a report. */
  backlogMs(lastSeq: number): number | null {
    const r = this.report;
    if (r === null) return null;
    const unreceived = Math.max(0, lastSeq - r.receivedSeq);
    return r.backlogMs + unreceived * Math.min(this.msPerEntry, this.demonstratedMsPerEntry ?? Number.POSITIVE_INFINITY);
  }

  get replayedSeq(): number | null {
    return this.report?.replayedSeq ?? null;
  }
}
