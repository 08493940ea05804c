// A one-line progress bar on stderr, only when stderr is a terminal: entries replayed, share of the
// trace's bytes read, and entries per second. Redrawn at most every 100 ms; cleared before other output.

export interface ProgressSample {
  /** The seq reached. */
  entries: number;
  /** Bytes read of totalBytes: both must count the same things (a trace's blocks, not its file headers). */
  bytes: number;
  totalBytes: number;
  /** Entries executed in all, monotonic (going back replays some again): the rate counts these. */
  executed?: number;
}

export class ProgressBar {
  private lastDraw = 0;
  private shown = false;
  private started = performance.now();
  private startExecuted = 0;
  private readonly enabled: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    enabled = true,
  ) {
    this.enabled = enabled && stream.isTTY === true;
  }

  /** Starts timing a new run (a move in the debugger): entries/s counts from here, from `executed` entries executed so far. */
  restart(executed: number): void {
    this.started = performance.now();
    this.startExecuted = executed;
    this.lastDraw = 0;
  }

  update(p: ProgressSample): void {
    if (!this.enabled) return;
    const now = performance.now();
    // Short runs finish before the first draw: no flicker for them.
    if (now - this.started < 300 || now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const share = p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : 0;
    const width = 30;
    const filled = Math.round(share * width);
    const rate = ((p.executed ?? p.entries) - this.startExecuted) / ((now - this.started) / 1000);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%  ${p.entries} entries  ${Math.round(rate)} entries/s`;
    this.stream.write(`\r${line}\x1b[K`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
