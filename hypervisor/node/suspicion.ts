// Confirmation of suspicion before a claim (DESIGN invariant 7: a false suspicion may cost a delay,
// never a node). Pure: the role machine feeds it what it heard and when, and asks for a verdict.
//
// The heartbeat timeout stays the floor: no peer is suspected sooner. Past it, two kinds of evidence
// may put suspicion off, each for a bounded time:
//   - phi accrual (Hayashibara et al. 2004, as Cassandra and Akka use it): the inter-arrival times
//     of the peer's frames are learned; a silence that this peer's observed jitter makes likely
//     (phi below the threshold) is not yet suspicion. Bounded by phiMaxDelayMs past the floor, so a
//     real death still goes live within the heartbeat timeout + 1 s.
//   - a witness (SWIM's indirect probe): each node's beacon thread, which no main-thread work can
//     hold up, rewrites two counters on the arbiter every heartbeat period: its own, and the one the
//     node's main thread advances every tick. A peer whose beacon moved during this silence while
//     its main thread stood still is alive, only busy (a joining backup booting, a primary sending a
//     long log). Bounded by witnessGraceMs past the floor: a peer alive but wedged is dropped in the
//     end. A peer whose main thread moves too is not busy but unreachable (a partition): no delay.
// Freshness needs no shared clock: the counter is judged by whether it changed between our own reads.

export interface SuspicionConfig {
  /** Phi at or above which a silence past the heartbeat timeout is suspicion (Akka and Cassandra use 8). */
  phiThreshold: number;
  /** The longest phi may put suspicion off past the heartbeat timeout. */
  phiMaxDelayMs: number;
  /** The longest a fresh witness beacon may put suspicion off past the heartbeat timeout. */
  witnessGraceMs: number;
  /** The shell can read the peer's beacon (a shared-directory arbiter); otherwise no witness is asked. */
  witness: boolean;
}

export const DEFAULT_PHI_THRESHOLD = 8;
/**
 * Go-live = detection + drain + claim + switch. With the default timeout (300 ms), a 300 ms delay
 * leaves 400 ms of the 1 s budget for the drain (admission slows from half of --max-replay-lag-ms)
 * and the claim.
 */
export const DEFAULT_PHI_MAX_DELAY_MS = 300;
/** Longer than the 3 s boot a joining backup may take on a starved host, with room to spare. */
export const DEFAULT_WITNESS_GRACE_MS = 5_000;
/** Inter-arrival samples kept (Akka keeps 1000; at a 100 ms heartbeat this is a few minutes of history). */
export const PHI_WINDOW_SAMPLES = 1_000;
/** Below this many samples nothing is learned yet: the heartbeat timeout alone decides. */
export const PHI_MIN_SAMPLES = 20;

export const DEFAULT_SUSPICION: SuspicionConfig = {
  phiThreshold: DEFAULT_PHI_THRESHOLD,
  phiMaxDelayMs: DEFAULT_PHI_MAX_DELAY_MS,
  witnessGraceMs: DEFAULT_WITNESS_GRACE_MS,
  witness: false,
};

export function checkSuspicionConfig(c: SuspicionConfig): void {
  if (!(Number.isFinite(c.phiThreshold) && c.phiThreshold > 0)) throw new RangeError(`--phi-threshold must be a number > 0, got ${c.phiThreshold}`);
  if (!(Number.isFinite(c.phiMaxDelayMs) && c.phiMaxDelayMs >= 0)) throw new RangeError(`--phi-max-delay-ms must be a number >= 0, got ${c.phiMaxDelayMs}`);
  if (!(Number.isFinite(c.witnessGraceMs) && c.witnessGraceMs >= 0)) throw new RangeError(`--witness-grace-ms must be a number >= 0, got ${c.witnessGraceMs}`);
}

/** The learned distribution of a peer's inter-arrival times, over the last PHI_WINDOW_SAMPLES. */
export class PhiAccrual {
  private readonly samples: number[] = [];
  private next = 0;
  private sum = 0;
  private sumSq = 0;

  constructor(private readonly minStdDevMs: number) {}

  get count(): number {
    return this.samples.length;
  }

  add(intervalMs: number): void {
    if (!(Number.isFinite(intervalMs) && intervalMs >= 0)) return;
    if (this.samples.length < PHI_WINDOW_SAMPLES) {
      this.samples.push(intervalMs);
    } else {
      const old = this.samples[this.next]!;
      this.sum -= old;
      this.sumSq -= old * old;
      this.samples[this.next] = intervalMs;
      this.next = (this.next + 1) % PHI_WINDOW_SAMPLES;
    }
    this.sum += intervalMs;
    this.sumSq += intervalMs * intervalMs;
  }

  get meanMs(): number {
    return this.samples.length === 0 ? 0 : this.sum / this.samples.length;
  }

  get stdDevMs(): number {
    const n = this.samples.length;
    if (n === 0) return this.minStdDevMs;
    const variance = Math.max(0, this.sumSq / n - (this.sum / n) ** 2);
    return Math.max(this.minStdDevMs, Math.sqrt(variance));
  }

  /**
   * -log10 of the probability that the next frame comes later than `silentMs` after the last, under
   * a normal distribution fitted to the samples (Akka's logistic approximation of its tail).
   */
  phi(silentMs: number): number {
    const mean = this.meanMs;
    const y = (silentMs - mean) / this.stdDevMs;
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
    return silentMs > mean ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
  }
}

export type Verdict =
  | { suspect: true; why: string }
  /**
   * Not yet, and which evidence says so (the timeout floor, the learned jitter, or the witness), and
   * what exactly it showed: a node logs each change of it, so an operator sees why the wait went on.
   */
  | { suspect: false; by: 'timeout' | 'phi' | 'witness'; shows: 'under-timeout' | 'jitter' | 'beacon-busy' | 'beacon-running' | 'beacon-unread'; why: string };

/** One peer's suspicion: what was heard, the learned jitter, the witness reads of this silence. */
export class Suspicion {
  private readonly phiNow: PhiAccrual;
  private lastHeardMs: number;
  /** The last heard time was a restart (attach, own stall): the next interval is not a sample. */
  private chainBroken = true;
  /**
   * Witness reads of the current silence: the peer's beacon is `<beat>:<main>`, the beacon thread's
   * counter and the main thread's (hypervisor/node/beacon.ts). When each was last seen to change.
   */
  private witnessLast: { beat: string; main: string } | null = null;
  private beatChangedAtMs: number | null = null;
  private mainChangedAtMs: number | null = null;
  private witnessFirstAtMs: number | null = null;
  /** Reads answered in this silence, and when the last was (a beacon says something only over a span of reads). */
  private witnessReads = 0;
  private witnessLastReadAtMs: number | null = null;
  private witnessEpisode = 0;
  private witnessInFlight = false;

  constructor(
    private readonly config: SuspicionConfig,
    private readonly heartbeatMs: number,
    private readonly heartbeatTimeoutMs: number,
    nowMs: number,
  ) {
    checkSuspicionConfig(config);
    // A quarter period: a perfectly regular peer still gets some slack before phi climbs.
    this.phiNow = new PhiAccrual(heartbeatMs / 4);
    this.lastHeardMs = nowMs;
  }

  get phi(): PhiAccrual {
    return this.phiNow;
  }

  /** The peer was heard at `atMs` (its latest frame). Each new time adds one inter-arrival sample. */
  heard(atMs: number): void {
    if (!(atMs > this.lastHeardMs)) return;
    if (!this.chainBroken) this.phiNow.add(atMs - this.lastHeardMs);
    this.chainBroken = false;
    this.lastHeardMs = atMs;
    this.endEpisode();
  }

  /** Silence starts over at `nowMs` without a sample (a new connection, our own stall). */
  restart(nowMs: number): void {
    this.lastHeardMs = Math.max(this.lastHeardMs, nowMs);
    this.chainBroken = true;
    this.endEpisode();
  }

  private endEpisode(): void {
    this.witnessLast = null;
    this.beatChangedAtMs = null;
    this.mainChangedAtMs = null;
    this.witnessFirstAtMs = null;
    this.witnessReads = 0;
    this.witnessLastReadAtMs = null;
    this.witnessInFlight = false;
    this.witnessEpisode++;
  }

  silentMs(nowMs: number): number {
    return nowMs - this.lastHeardMs;
  }

  /**
   * Should the shell read the peer's beacon now? From one heartbeat period of silence on (so that by
   * the timeout there are reads more than a beacon period apart to compare), one read at a time. The
   * id ties the answer to this silence.
   */
  wantsWitness(nowMs: number): number | null {
    if (!this.config.witness || this.witnessInFlight) return null;
    if (this.silentMs(nowMs) < this.heartbeatMs) return null;
    this.witnessInFlight = true;
    return this.witnessEpisode;
  }

  /** The peer's beacon as read now (null: none, or unreadable). An answer from an earlier silence is ignored. */
  witnessRead(nowMs: number, readId: number, value: string | null): void {
    if (readId !== this.witnessEpisode) return;
    this.witnessInFlight = false;
    const m = value === null ? null : /^(\d+):(\d+)$/.exec(value.trim());
    this.witnessReads++;
    if (m === null) return; // none, unreadable or torn: no evidence
    this.witnessLastReadAtMs = nowMs;
    const now = { beat: m[1]!, main: m[2]! };
    const last = this.witnessLast;
    if (last === null) {
      this.witnessFirstAtMs = nowMs;
    } else {
      if (now.beat !== last.beat) this.beatChangedAtMs = nowMs;
      if (now.main !== last.main) this.mainChangedAtMs = nowMs;
    }
    this.witnessLast = now;
  }

  /**
   * The peer is alive but busy: during this silence its beacon thread moved (within the last
   * heartbeat timeout, plus phiMaxDelayMs) while its main thread stood still for at least a heartbeat
   * period. The extra phiMaxDelayMs: a beacon thread on a starved host misses beats too (a 300+ ms
   * gap seen beside a test's checkpoint writes cut a busy backup's 5 s grace short and cost it its
   * place); a peer that died while busy is still suspected that much after its last beat. A peer
   * whose main thread moves too runs normally and is still not heard: its frames are late, or it is
   * unreachable (a partition); that is worth a short wait only (witnessRunning).
   */
  private witnessBusy(nowMs: number): boolean {
    if (this.beatChangedAtMs === null || nowMs - this.beatChangedAtMs > this.heartbeatTimeoutMs + this.config.phiMaxDelayMs) return false;
    const mainStillSinceMs = this.mainChangedAtMs ?? this.witnessFirstAtMs!;
    return nowMs - mainStillSinceMs >= this.heartbeatMs;
  }

  /** The peer's main thread moved during this silence, within the last heartbeat timeout. */
  private witnessRunning(nowMs: number): boolean {
    return this.mainChangedAtMs !== null && nowMs - this.mainChangedAtMs <= this.heartbeatTimeoutMs;
  }

  /**
   * The witness has said what it can: its reads of this silence span more than a beacon period (a
   * beacon that did not move meanwhile is still), or there is no beacon to read (none, unreadable).
   */
  private witnessSettled(): boolean {
    if (this.witnessFirstAtMs === null) return this.witnessReads > 0;
    return this.witnessLastReadAtMs! - this.witnessFirstAtMs >= 1.5 * this.heartbeatMs;
  }

  verdict(nowMs: number): Verdict {
    const silentMs = this.silentMs(nowMs);
    const timeout = this.heartbeatTimeoutMs;
    const s = Math.round(silentMs);
    if (silentMs < timeout) return { suspect: false, by: 'timeout', shows: 'under-timeout', why: `silent ${s} ms, under the ${timeout} ms timeout` };
    const pastMs = silentMs - timeout;
    if (this.witnessBusy(nowMs) && pastMs < this.config.witnessGraceMs) {
      return {
        suspect: false,
        by: 'witness',
        shows: 'beacon-busy',
        why: `silent ${s} ms, but its beacon moved ${Math.round(nowMs - this.beatChangedAtMs!)} ms ago while its main thread stood still: alive, only busy (waiting up to ${timeout + this.config.witnessGraceMs} ms)`,
      };
    }
    // The short waits below share one bound: a real death goes live within the timeout + 1 s.
    if (pastMs < this.config.phiMaxDelayMs) {
      if (this.config.witness && this.witnessRunning(nowMs)) {
        return {
          suspect: false,
          by: 'witness',
          shows: 'beacon-running',
          why: `silent ${s} ms, but its beacon shows its main thread running: its frames may be late (waiting up to ${timeout + this.config.phiMaxDelayMs} ms)`,
        };
      }
      if (this.config.witness && !this.witnessSettled()) {
        return { suspect: false, by: 'witness', shows: 'beacon-unread', why: `silent ${s} ms; its beacon not read over a beacon period yet (${this.witnessReads} reads)` };
      }
      if (this.phiNow.count >= PHI_MIN_SAMPLES) {
        const phi = this.phiNow.phi(silentMs);
        if (phi < this.config.phiThreshold) {
          return {
            suspect: false,
            by: 'phi',
            shows: 'jitter',
            why: `silent ${s} ms, phi ${phi.toFixed(1)} < ${this.config.phiThreshold} (learned jitter: mean ${Math.round(this.phiNow.meanMs)} ms, sd ${Math.round(this.phiNow.stdDevMs)} ms)`,
          };
        }
      }
    }
    const phiNote = this.phiNow.count >= PHI_MIN_SAMPLES ? `, phi ${this.phiNow.phi(silentMs).toFixed(1)}` : '';
    const witnessNote = !this.config.witness
      ? ''
      : this.witnessBusy(nowMs)
        ? ', its beacon still moving past the grace'
        : this.mainChangedAtMs !== null
          ? ', its beacon shows it running but it stays unheard: unreachable'
          : ', its beacon stands still';
    return { suspect: true, why: `silent for ${s} ms (timeout ${timeout} ms${phiNote}${witnessNote})` };
  }
}
