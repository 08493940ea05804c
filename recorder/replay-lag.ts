// What a takeover would cost, as the primary sees it: the backup's own estimate of the backlog it
// holds (received, not yet replayed), plus the entries it has not even received yet (a backup
// joining by replaying a long log is sent it over seconds; its first reports cover only the start)
// at the cost per entry its report implies. Pure: the shells (hypervisor/node/serving.ts, the simulator)
// feed it the backup's heartbeat reports and the log's end.

/** Replay cost per entry assumed while the backup holds nothing to derive it from, in ms. */
export const DEFAULT_REPLAY_ENTRY_MS = 0.25;

export interface ReplayReport {
  /** The backup's received seq (its heartbeat's seq). */
  receivedSeq: number;
  replayedSeq: number;
  /** The backup's estimate of the time to replay what it holds. */
  backlogMs: number;
}

export class ReplayLag {
  private msPerEntry = DEFAULT_REPLAY_ENTRY_MS;

  constructor(private report: ReplayReport | null = null) {}

  reported(report: ReplayReport): void {
    this.report = report;
    const held = report.receivedSeq - report.replayedSeq;
    // Only a backlog of some size says much about the cost per entry.
    if (held >= 16 && report.backlogMs > 0) this.msPerEntry = report.backlogMs / held;
  }

  /** The estimated takeover backlog now, in ms, with the log ending at `lastSeq`; null before a report. */
  backlogMs(lastSeq: number): number | null {
    const r = this.report;
    if (r === null) return null;
    const unreceived = Math.max(0, lastSeq - r.receivedSeq);
    return r.backlogMs + unreceived * this.msPerEntry;
  }

  get replayedSeq(): number | null {
    return this.report?.replayedSeq ?? null;
  }
}
