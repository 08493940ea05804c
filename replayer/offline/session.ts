// A replay session: one trace, one replaying VM (in its worker), and a point in the trace that can
// move forward and backward. It is the engine of `ftjs replay` (verify to the end) and of its debugger
// (stop anywhere, inspect, travel back).
//
// Points. A point is a seq: "just before entry `seq` takes effect". The VM executes whole tasks, so it
// is always between tasks: at the start of the unit (task or control entry) that holds the point. A
// point inside a task is a logical position in that task's entries; the VM (and eval) sees the state
// before the task. Moving past a task's TaskEnd executes the task.
//
// Travel back. While replaying, the session takes in-memory checkpoints of the VM (kept in the worker,
// page-shared, deflated once they fill a quarter of their budget: replayer/checkpoints.ts) every
// `checkpointTasks` tasks, or every `checkpointMs` of replay time, bounded by count and bytes (the most crowded checkpoint goes first,
// so the survivors stay spread over the whole trace). Going back restores the nearest checkpoint at or
// before the target and replays forward from it.
//
// Divergence. A task whose replay diverges is not passed: the session rewinds to its start (so it can
// be inspected there), replays it once more in a scratch copy without the test-only fault injection as
// a reference, and keeps a report (replayer/divergence.ts).

import { bootConfigFromTrace } from '../../hypervisor/vm/boot-config.js';
import type { Divergence } from '../../hypervisor/vm/port.js';
import { legacyStateHash } from '../../hypervisor/vm/state-hash.js';
import type { BootConfig, ConsoleLine, Output, TaskResult } from '../../hypervisor/vm/vm.js';
import type { EvalResult } from '../../hypervisor/vm/vm-eval.js';
import { DEFAULT_EVAL_BUDGET_MS } from '../../hypervisor/vm/vm-eval.js';
import { VmHost } from '../../hypervisor/worker/vm-host.js';
import type { VmState } from '../../hypervisor/worker/vm-protocol.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import type { TraceTruncation } from '../../logging-channel/trace-reader.js';
import { buildDivergenceReport, type DivergenceReport } from '../divergence.js';
import { decodeStateHash, describeEntry, type EntryView } from '../entry-view.js';
import { type Assembled, MalformedLogError, TaskAssembler } from '../task-assembler.js';
import { TraceStore } from '../trace-store.js';

export interface SessionOptions {
  lenient?: boolean;
  /** Tasks handed to the worker per message. */
  batchTasks?: number;
  /** Take a checkpoint every this many tasks (default: by time, see checkpointMs). */
  checkpointTasks?: number;
  /** Without checkpointTasks: take a checkpoint after this much replay time since the last one. */
  checkpointMs?: number;
  /** Checkpoints kept at most. */
  maxCheckpoints?: number;
  /** Bytes all checkpoints may hold together. */
  maxCheckpointBytes?: number;
  /** Outputs and console lines remembered for `outputs` / `console` (the most recent). */
  historyLimit?: number;
  evalBudgetMs?: number;
  /** Console lines of tasks as they are replayed for the first time, with the seq of the task's end. */
  onConsole?: (line: ConsoleLine, seq: number) => void;
  onProgress?: (progress: Progress) => void;
}

export const DEFAULT_CHECKPOINT_MS = 100;
export const DEFAULT_MAX_CHECKPOINTS = 256;
export const DEFAULT_MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024;
const DEFAULT_HISTORY_LIMIT = 10_000;

export interface Progress {
  /** The seq reached (entries of the trace behind the VM). */
  entries: number;
  tasks: number;
  /** Bytes of the trace's blocks read so far, and of all of them (file headers not counted). */
  bytes: number;
  totalBytes: number;
  /** Entries executed by this session in all, going back included (grows monotonically: for rates). */
  executed: number;
}

export interface ReplaySummary {
  trace: string;
  guest: string;
  segments: number;
  tasks: number;
  entries: number;
  outputsVerified: number;
  stateHashesVerified: number;
  finalStateHash: string;
  finalPos: number;
  lastSeq: number;
  replayMs: number;
  truncated: TraceTruncation | null;
  /** The trace ends inside a task (crash while writing): that task was not replayed. */
  incompleteTaskFromSeq: number | null;
  divergence: Divergence | null;
  checkpoints: { count: number; bytes: number; taken: number };
}

export type Unit = { type: 'task'; entries: Entry[] } | { type: 'control'; entry: Entry };

export function unitStart(u: Unit): number {
  return u.type === 'task' ? u.entries[0]!.seq : u.entry.seq;
}

export function unitEnd(u: Unit): number {
  return u.type === 'task' ? u.entries[u.entries.length - 1]!.seq : u.entry.seq;
}

export type MoveOutcome = 'ok' | 'end' | 'diverged';

export interface OutputRecord {
  /** Seq of the task's start entry and of its TaskEnd. */
  seq: number;
  endSeq: number;
  /** The output, its body cut to HISTORY_BODY_BYTES (the history holds many). */
  output: Output;
  bodyBytes: number;
}

const HISTORY_BODY_BYTES = 1024;

export interface ConsoleRecord {
  seq: number;
  endSeq: number;
  line: ConsoleLine;
}

export interface PointInfo {
  seq: number;
  /** Last seq of the trace, once it has been read to the end. */
  lastSeq: number | null;
  atEnd: boolean;
  entry: EntryView | null;
  task: { number: number; startSeq: number; endSeq: number; entryIndex: number; entryCount: number; start: EntryView } | null;
  vm: { pos: number; tasks: number; guestTimeMs: number; memoryBytes: number; booted: boolean };
  epoch: { epoch: number; nodeId: string | null };
  /** The guest's clock at the point (the last clock value given to it at or before the point). */
  guestTimeMs: number;
  checkpoints: { count: number; bytes: number };
  divergence: DivergenceReport | null;
}

interface Checkpoint {
  id: number;
  /** The VM state before entry `seq`. */
  seq: number;
  tasks: number;
}

/** Reads units (whole tasks, control entries) from a seq on. */
class UnitCursor {
  private readonly blocks: AsyncGenerator<Entry[]>;
  private buffer: Entry[] = [];
  private index = 0;
  private readonly assembler: TaskAssembler;
  private readonly out: Assembled[] = [];
  private outIndex = 0;

  constructor(store: TraceStore, from: number) {
    this.blocks = store.blocksFrom(from);
    this.assembler = new TaskAssembler(store.path);
  }

  get openTaskSeq(): number | null {
    return this.assembler.openTaskSeq;
  }

  async next(): Promise<Unit | null> {
    for (;;) {
      if (this.outIndex < this.out.length) {
        const item = this.out[this.outIndex++]!;
        if (this.outIndex === this.out.length) {
          this.out.length = 0;
          this.outIndex = 0;
        }
        return item.type === 'task' ? { type: 'task', entries: item.entries } : { type: 'control', entry: item.entry };
      }
      if (this.index >= this.buffer.length) {
        const next = await this.blocks.next();
        if (next.done) return null;
        this.buffer = next.value;
        this.index = 0;
        continue;
      }
      this.assembler.push(this.buffer[this.index++]!, this.out);
    }
  }
}

/** A growable list of numbers. */
class NumberList {
  private data = new Float64Array(1024);
  length = 0;
  push(n: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = n;
  }
  get(i: number): number {
    return this.data[i]!;
  }
  /** Index of the last element <= n (the list is sorted), or -1. */
  lastAtOrBelow(n: number): number {
    let lo = 0;
    let hi = this.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.data[mid]! <= n) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}

export class ReplaySession {
  readonly config: BootConfig;
  private readonly vm: VmHost;
  private fatal: Error | null = null;
  private cursor: UnitCursor;
  private pending: Unit | null = null;
  private cursorDone = false;
  /** First seq whose effect the VM does not hold yet. */
  private vmSeq: number;
  private tasksDone = 0;
  private frontierTasks = 0;
  private pointSeq: number;
  private vmState: VmState | null = null;
  // Every task seen so far: its start and end seq (for "which task holds seq N").
  private readonly taskStarts = new NumberList();
  private readonly taskEnds = new NumberList();
  private checkpoints: Checkpoint[] = [];
  private checkpointIdNext = 1;
  private checkpointBytes = 0;
  private checkpointsTaken = 0;
  private replayMsSinceCheckpoint = 0;
  // What the guest emitted along the current path of the replay (the most recent historyLimit), and,
  // for every task number k, how many outputs and console lines tasks 1..k emitted.
  private readonly outputHistory: OutputRecord[] = [];
  private readonly consoleHistory: ConsoleRecord[] = [];
  private readonly outputsUpTo = new NumberList();
  private readonly consoleUpTo = new NumberList();
  private outputsVerified = 0;
  private stateHashesVerified = 0;
  private report: DivergenceReport | null = null;
  /** Start seq of the task that diverged: no move goes past it. */
  private blockedAt: number | null = null;
  private rewinding = false;
  private executedEntries = 0;
  private readonly startedAt = performance.now();
  private readonly opts: Required<Omit<SessionOptions, 'onConsole' | 'onProgress' | 'checkpointTasks' | 'lenient'>> & SessionOptions;

  private constructor(
    readonly store: TraceStore,
    options: SessionOptions,
  ) {
    this.opts = {
      batchTasks: 128,
      checkpointMs: DEFAULT_CHECKPOINT_MS,
      maxCheckpoints: DEFAULT_MAX_CHECKPOINTS,
      maxCheckpointBytes: DEFAULT_MAX_CHECKPOINT_BYTES,
      historyLimit: DEFAULT_HISTORY_LIMIT,
      evalBudgetMs: DEFAULT_EVAL_BUDGET_MS,
      ...options,
    };
    this.config = bootConfigFromTrace(store.header, store.path);
    this.vm = VmHost.start(this.config.limits);
    this.vm.onFatal = (error) => (this.fatal = error);
    this.vmSeq = 1;
    this.pointSeq = 1;
    this.cursor = new UnitCursor(store, 1);
    this.outputsUpTo.push(0);
    this.consoleUpTo.push(0);
  }

  /** Opens a trace (and its rotated segments) and boots the replaying VM, before the boot task. */
  static async open(path: string, options: SessionOptions = {}): Promise<ReplaySession> {
    const store = await TraceStore.open(path, { lenient: options.lenient ?? false });
    let session: ReplaySession | null = null;
    try {
      session = new ReplaySession(store, options);
      await session.store.ensureSeq(1);
      if (store.blockCount > 0 && store.firstSeq !== 1) {
        throw new MalformedLogError(`${path}: the trace starts at seq ${store.firstSeq}; a replay needs the log from seq 1 (the boot task)`);
      }
      await session.guard(session.vm.boot(session.config, 'replay'));
      return session;
    } catch (error) {
      if (session) await session.close();
      else await store.close();
      throw error;
    }
  }

  /** A dead VM explains a failure better than the rejected request that noticed it. */
  private async guard<T>(promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      if (this.fatal) throw this.fatal;
      // The VM worker names a log entry that does not decode (vm-worker.ts replayTasks).
      if (error instanceof Error && error.name === 'MalformedLogError') throw new MalformedLogError(`${this.store.path}: malformed log at ${error.message}`);
      throw error;
    }
  }

  get point(): number {
    return this.pointSeq;
  }

  get divergence(): DivergenceReport | null {
    return this.report;
  }

  get tasksExecuted(): number {
    return this.tasksDone;
  }

  /** Entries executed by this session in all (monotonic; a progress bar's rate counts from it). */
  get entriesExecuted(): number {
    return this.executedEntries;
  }

  /** The last seq of the trace, if it has been read to the end. */
  get lastSeq(): number | null {
    return this.store.done ? this.store.indexedLastSeq : null;
  }

  // ------------------------------------------------------------------ moving

  private async peek(): Promise<Unit | null> {
    if (this.pending) return this.pending;
    if (this.cursorDone) return null;
    const unit = await this.cursor.next();
    if (!unit) {
      this.cursorDone = true;
      return null;
    }
    if (unit.type === 'task') {
      const start = unitStart(unit);
      if (this.taskStarts.length === 0 || start > this.taskStarts.get(this.taskStarts.length - 1)) {
        this.taskStarts.push(start);
        this.taskEnds.push(unitEnd(unit));
      }
    }
    this.pending = unit;
    return unit;
  }

  private repositionCursor(seq: number): void {
    this.cursor = new UnitCursor(this.store, seq);
    this.pending = null;
    this.cursorDone = false;
  }

  /**
   * Executes units from the VM's position until `stop` says to stop before one (which stays pending),
   * the trace ends, or a task diverges.
   */
  private async advance(stop: (u: Unit) => boolean): Promise<MoveOutcome> {
    let batch: Unit[] = [];
    let batchTasks = 0;
    for (;;) {
      const unit = await this.peek();
      const blocked = unit !== null && unitStart(unit) === this.blockedAt;
      if (unit === null || blocked || stop(unit) || (unit.type === 'control' && unit.entry.kind === Kind.StateHash)) {
        if (batch.length > 0) {
          const units = batch;
          batch = [];
          batchTasks = 0;
          if (!(await this.execute(units))) return 'diverged';
        }
        if (unit === null) return 'end';
        if (blocked) return 'diverged';
        if (stop(unit)) return 'ok';
        // A recorded state hash: compare with the VM's.
        if (!(await this.verifyStateHash((unit as Extract<Unit, { type: 'control' }>).entry))) return 'diverged';
        this.pending = null;
        continue;
      }
      this.pending = null;
      batch.push(unit);
      if (unit.type === 'task') {
        batchTasks++;
        const done = this.tasksDone + batchTasks;
        const every = this.opts.checkpointTasks;
        if (batchTasks >= this.opts.batchTasks || done === 1 || (every !== undefined && done % every === 0)) {
          const units = batch;
          batch = [];
          batchTasks = 0;
          if (!(await this.execute(units))) return 'diverged';
        }
      }
    }
  }

  /** Runs a batch of units (tasks and pass-through control entries) in the VM. False on divergence. */
  private async execute(units: Unit[]): Promise<boolean> {
    const tasks: Entry[][] = [];
    for (const u of units) if (u.type === 'task') tasks.push(u.entries);
    const started = performance.now();
    const reply = tasks.length > 0 ? await this.guard(this.vm.replay(tasks)) : null;
    this.replayMsSinceCheckpoint += performance.now() - started;
    let r = 0;
    for (const unit of units) {
      if (unit.type === 'control') {
        this.vmSeq = unit.entry.seq + 1;
        this.executedEntries++;
        continue;
      }
      this.executedEntries += unit.entries.length;
      const result = reply!.results[r++]!;
      if (result.divergence) {
        await this.diverged(unit, result);
        return false;
      }
      this.tasksDone++;
      const start = unitStart(unit);
      const end = unitEnd(unit);
      this.vmSeq = end + 1;
      this.remember(start, end, result);
      if (this.tasksDone > this.frontierTasks) {
        this.frontierTasks = this.tasksDone;
        this.outputsUpTo.push(this.outputsUpTo.get(this.tasksDone - 1) + result.outputs.length);
        this.consoleUpTo.push(this.consoleUpTo.get(this.tasksDone - 1) + result.console.length);
        this.outputsVerified += result.outputs.length + result.console.length;
        if (this.opts.onConsole) for (const line of result.console) this.opts.onConsole(line, end);
      }
    }
    if (reply) this.vmState = reply.state;
    this.opts.onProgress?.({ entries: this.vmSeq - 1, tasks: this.tasksDone, bytes: this.store.blockBytesRead, totalBytes: this.store.blockBytes, executed: this.executedEntries });
    if (tasks.length > 0) await this.maybeCheckpoint();
    return true;
  }

  private remember(seq: number, endSeq: number, result: TaskResult): void {
    const limit = this.opts.historyLimit;
    for (const output of result.outputs) {
      const body = output.body.byteLength > HISTORY_BODY_BYTES ? output.body.slice(0, HISTORY_BODY_BYTES) : output.body;
      this.outputHistory.push({ seq, endSeq, output: { ...output, body }, bodyBytes: output.body.byteLength });
    }
    for (const line of result.console) this.consoleHistory.push({ seq, endSeq, line });
    if (this.outputHistory.length > limit * 1.25) this.outputHistory.splice(0, this.outputHistory.length - limit);
    if (this.consoleHistory.length > limit * 1.25) this.consoleHistory.splice(0, this.consoleHistory.length - limit);
  }

  private forgetFrom(seq: number): void {
    while (this.outputHistory.length > 0 && this.outputHistory[this.outputHistory.length - 1]!.seq >= seq) this.outputHistory.pop();
    while (this.consoleHistory.length > 0 && this.consoleHistory[this.consoleHistory.length - 1]!.seq >= seq) this.consoleHistory.pop();
  }

  /** Compares a recorded state hash with the VM's (the VM is right before the entry). False if they differ. */
  private async verifyStateHash(entry: Entry): Promise<boolean> {
    const state = await this.guard(this.vm.state(true));
    this.vmState = state;
    const expected = decodeStateHash(entry.payload);
    // A trace recorded before the page-tree hash holds the older formula's value: compute that one.
    if (this.store.header.stateHash === undefined) state.stateHash = legacyStateHash(await this.guard(this.vm.snapshot()));
    if (state.stateHash === expected) {
      this.vmSeq = entry.seq + 1;
      if (entry.seq > this.stateHashFrontier) {
        this.stateHashFrontier = entry.seq;
        this.stateHashesVerified++;
      }
      return true;
    }
    // The state differs although every task before it verified: the difference is in state that no
    // output has shown yet. The VM stays right before the entry.
    const divergence: Divergence = { seq: entry.seq, pos: state.pos, expectedKind: 'StateHash', expected: `state ${expected}`, actual: `state ${state.stateHash}` };
    this.report = buildDivergenceReport({
      divergence,
      task: null,
      actual: null,
      reference: null,
      referenceNote: 'the VM state differs from the recorded state hash although every task before it verified: the difference is in state that no output has shown yet',
    });
    this.blockedAt = entry.seq;
    this.pointSeq = entry.seq;
    return false;
  }

  private stateHashFrontier = 0;

  private async diverged(unit: Extract<Unit, { type: 'task' }>, result: TaskResult): Promise<void> {
    const start = unitStart(unit);
    if (this.rewinding) {
      // Re-executing tasks that verified before: they diverge now. Say so; stop here.
      this.report = buildDivergenceReport({
        divergence: result.divergence!,
        task: unit.entries,
        actual: result,
        reference: null,
        referenceNote: 'this task verified when first replayed and diverged when replayed again from a checkpoint: the replay itself is not deterministic',
      });
      this.blockedAt = start;
      throw new ReplayNotReproducibleError(`seq ${start}: a task that verified diverged when replayed again from a checkpoint`);
    }
    this.blockedAt = start;
    await this.rewindTo(start);
    const clockBefore = start > 1 ? await this.store.clockAt(start - 1) : 0;
    // The expected side: what the recording node emitted, when the trace keeps it.
    const recorded = await this.store.taskOutputs(unitEnd(unit));
    if (recorded) {
      this.report = buildDivergenceReport({
        divergence: result.divergence!,
        task: unit.entries,
        clockBefore,
        actual: result,
        reference: null,
        recorded,
        referenceNote: `expected outputs as recorded in the trace${recorded.truncated ? ` (cut to ${this.store.header.outputs!.maxBytesPerTask} bytes per task by --trace-outputs-max-bytes)` : ''}`,
      });
      this.pointSeq = start;
      return;
    }
    let reference: TaskResult | null = null;
    let referenceNote: string;
    try {
      const copy = await this.guard(this.vm.replayCopy([unit.entries], false));
      const ref = copy.results[0] ?? null;
      if (ref && !ref.divergence) {
        reference = ref;
        referenceNote = 'expected outputs from a re-run of this task without fault injection (it reproduces the recorded output hash)';
      } else {
        referenceNote = this.store.keepsOutputs
          ? 'the trace keeps no outputs for this task (it was replayed, not run, by the node that recorded it) and no re-execution reproduces its recorded output hash: the expected outputs are not available'
          : "this trace records only a hash of each task's outputs (it was written by an older ftjs or with --trace-outputs-max-bytes 0), and no re-execution reproduces it: the expected outputs are not available";
      }
    } catch (error) {
      referenceNote = `the reference re-execution failed: ${(error as Error).message}`;
    }
    this.report = buildDivergenceReport({ divergence: result.divergence!, task: unit.entries, clockBefore, actual: result, reference, referenceNote });
    this.pointSeq = start;
  }

  /** The latest checkpoint at or before `seq`. */
  private checkpointAtOrBefore(seq: number): Checkpoint | null {
    let cp: Checkpoint | null = null;
    for (const c of this.checkpoints) if (c.seq <= seq) cp = c;
    return cp;
  }

  /**
   * Puts the VM at the start of the unit that begins at `seq`, from the latest checkpoint at or before
   * it (or from boot), replaying forward. Also used to jump forward over tasks executed before.
   */
  private async rewindTo(seq: number): Promise<void> {
    await this.restore(this.checkpointAtOrBefore(seq));
    if (this.vmSeq < seq) {
      this.rewinding = true;
      try {
        await this.advance((u) => unitStart(u) >= seq);
      } finally {
        this.rewinding = false;
      }
    }
  }

  /** Puts the VM where checkpoint `cp` was taken (null: before the boot task). */
  private async restore(cp: Checkpoint | null): Promise<void> {
    // Jumping forward leaves a gap in the history of outputs: start it afresh.
    if (cp && cp.seq > this.vmSeq) {
      this.outputHistory.length = 0;
      this.consoleHistory.length = 0;
    }
    if (cp) {
      this.vmState = await this.guard(this.vm.checkpointRestore(cp.id));
      this.vmSeq = cp.seq;
      this.tasksDone = cp.tasks;
    } else {
      this.vmState = await this.guard(this.vm.reset());
      this.vmSeq = 1;
      this.tasksDone = 0;
    }
    this.replayMsSinceCheckpoint = 0;
    this.forgetFrom(this.vmSeq);
    this.repositionCursor(this.vmSeq);
  }

  private async maybeCheckpoint(): Promise<void> {
    const every = this.opts.checkpointTasks;
    const due = this.tasksDone === 1 || (every !== undefined ? this.tasksDone % every === 0 : this.replayMsSinceCheckpoint >= this.opts.checkpointMs);
    if (!due) return;
    this.replayMsSinceCheckpoint = 0;
    if (this.checkpoints.some((c) => c.seq === this.vmSeq)) return;
    const id = this.checkpointIdNext++;
    // Deflate costs time: only once checkpoints fill a quarter of their budget.
    const reply = await this.guard(this.vm.checkpointSave(id, this.checkpointBytes > this.opts.maxCheckpointBytes / 4));
    this.checkpointsTaken++;
    const at = { id, seq: this.vmSeq, tasks: this.tasksDone };
    const index = this.checkpoints.findIndex((c) => c.seq > at.seq);
    if (index < 0) this.checkpoints.push(at);
    else this.checkpoints.splice(index, 0, at);
    this.checkpointBytes = reply.bytes;
    // Over a bound: drop the checkpoint whose neighbours are closest together (never the newest one).
    while (this.checkpoints.length > 1 && (this.checkpoints.length > this.opts.maxCheckpoints || this.checkpointBytes > this.opts.maxCheckpointBytes)) {
      let victim = 0;
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.checkpoints.length; i++) {
        if (this.checkpoints[i] === at) continue;
        const before = i === 0 ? 0 : this.checkpoints[i - 1]!.tasks;
        const after = i === this.checkpoints.length - 1 ? this.tasksDone : this.checkpoints[i + 1]!.tasks;
        if (after - before < best) {
          best = after - before;
          victim = i;
        }
      }
      const [dropped] = this.checkpoints.splice(victim, 1);
      this.checkpointBytes = (await this.guard(this.vm.checkpointDrop([dropped!.id]))).bytes;
    }
  }

  /** The unit start of the unit holding `seq`, for a seq at or before the frontier read so far. */
  private unitStartOf(seq: number): number {
    const i = this.taskStarts.lastAtOrBelow(seq);
    if (i >= 0 && this.taskEnds.get(i) >= seq) return this.taskStarts.get(i);
    return seq;
  }

  /** Moves the point to `seq` (forward or backward). */
  async goto(target: number): Promise<MoveOutcome> {
    target = Math.max(1, Math.floor(target));
    if (this.blockedAt !== null && target > this.blockedAt) {
      // Cannot pass the divergent task: stop at its start (inside it, logically, if asked).
      const outcome = await this.goto(this.blockedAt);
      if (outcome !== 'ok') return outcome;
      const unit = await this.peek();
      if (unit && target <= unitEnd(unit)) {
        this.pointSeq = target;
        return 'ok';
      }
      return 'diverged';
    }
    if (target < this.vmSeq) {
      // Back: restore the latest checkpoint before the unit holding the target, replay forward.
      await this.rewindTo(this.unitStartOf(target));
    } else {
      // Forward over tasks executed before: jump by a checkpoint when one lies on the way.
      const cp = this.checkpointAtOrBefore(this.unitStartOf(target));
      if (cp && cp.seq > this.vmSeq) await this.restore(cp);
    }
    const outcome = await this.advance((u) => unitEnd(u) >= target);
    if (outcome === 'ok') this.pointSeq = target;
    else if (outcome === 'end') this.pointSeq = this.vmSeq;
    else this.pointSeq = this.blockedAt ?? this.vmSeq;
    return outcome;
  }

  /** Moves to the first entry at VM position `pos` or later. */
  async gotoPos(pos: number): Promise<MoveOutcome> {
    let i = this.store.blockIndexOfPos(pos);
    while (i < 0) {
      if (!(await this.store.scanNext())) return this.goto(this.store.indexedLastSeq + 1);
      if (this.store.block(this.store.blockCount - 1).lastPos >= pos) i = this.store.blockCount - 1;
    }
    const entries = await this.store.blockEntries(i);
    const entry = entries.find((e) => e.pos >= pos)!;
    return this.goto(entry.seq);
  }

  /** Moves `count` entries on (executing each task whose end it passes). */
  step(count = 1): Promise<MoveOutcome> {
    return this.goto(this.pointSeq + count);
  }

  /** Runs to the start of the next task (executing the one the point is in). */
  async next(count = 1): Promise<MoveOutcome> {
    let outcome: MoveOutcome = 'ok';
    for (let k = 0; k < count && outcome === 'ok'; k++) {
      const from = this.pointSeq;
      if (this.blockedAt !== null && from >= this.blockedAt) return 'diverged';
      outcome = await this.advance((u) => u.type === 'task' && unitStart(u) > from);
      this.pointSeq = outcome === 'diverged' ? (this.blockedAt ?? this.vmSeq) : this.vmSeq;
    }
    return outcome;
  }

  /** Runs to the end of the trace (or the first divergence). */
  async continue(): Promise<MoveOutcome> {
    if (this.blockedAt !== null) {
      await this.goto(this.blockedAt);
      return 'diverged';
    }
    const latest = this.checkpoints[this.checkpoints.length - 1];
    if (latest && latest.seq > this.vmSeq) await this.restore(latest);
    const outcome = await this.advance(() => false);
    this.pointSeq = outcome === 'diverged' ? (this.blockedAt ?? this.vmSeq) : this.vmSeq;
    return outcome;
  }

  // ------------------------------------------------------------------ looking

  async info(): Promise<PointInfo> {
    const seq = this.pointSeq;
    const entry = await this.store.entry(seq);
    const unit = await this.peek();
    let task: PointInfo['task'] = null;
    if (unit && unit.type === 'task' && unitStart(unit) <= seq && seq <= unitEnd(unit)) {
      const start = unitStart(unit);
      task = {
        number: this.tasksDone + 1,
        startSeq: start,
        endSeq: unitEnd(unit),
        entryIndex: seq - start + 1,
        entryCount: unit.entries.length,
        start: describeEntry(unit.entries[0]!, await this.store.clockAt(start)),
      };
    }
    const state = this.vmState ?? (await this.guard(this.vm.state(false)));
    this.vmState = state;
    const clock = await this.store.clockAt(Math.min(seq, this.store.indexedLastSeq));
    return {
      seq,
      lastSeq: this.lastSeq,
      atEnd: entry === null,
      entry: entry ? describeEntry(entry, await this.store.clockAt(seq)) : null,
      task,
      vm: { pos: state.pos, tasks: state.tasks, guestTimeMs: state.guestTimeMs, memoryBytes: state.memoryBytes, booted: this.tasksDone > 0 },
      epoch: await this.store.epochAt(Math.max(1, Math.min(seq, this.store.indexedLastSeq))),
      guestTimeMs: clock,
      checkpoints: { count: this.checkpoints.length, bytes: this.checkpointBytes },
      divergence: this.report,
    };
  }

  /** The entries from `before` entries before the point to `after` entries after it. */
  async events(before: number, after: number): Promise<Array<EntryView & { current: boolean }>> {
    const from = Math.max(1, this.pointSeq - before);
    const entries = await this.store.range(from, this.pointSeq + after);
    let clock = from > 1 ? await this.store.clockAt(from - 1) : 0;
    return entries.map((e) => {
      const view = describeEntry(e, clock);
      if (e.kind === Kind.Clock) clock = view.timeMs;
      return { ...view, timeMs: e.kind === Kind.Clock ? view.timeMs : clock, current: e.seq === this.pointSeq };
    });
  }

  /** The last `count` outputs of the tasks replayed up to the point. */
  outputs(count: number): { records: OutputRecord[]; total: number; forgotten: number } {
    const total = this.outputsUpTo.get(this.tasksDone);
    return { records: this.outputHistory.slice(-count), total, forgotten: total - this.outputHistory.length };
  }

  consoleLines(count: number): { records: ConsoleRecord[]; total: number; forgotten: number } {
    const total = this.consoleUpTo.get(this.tasksDone);
    return { records: this.consoleHistory.slice(-count), total, forgotten: total - this.consoleHistory.length };
  }

  /** Evaluates `code` in a copy of the VM at the point (hypervisor/vm/vm-eval.ts). */
  async eval(code: string): Promise<EvalResult> {
    if (this.tasksDone === 0) {
      return { ok: false, value: 'the guest has not booted yet: the VM is before the boot task (seq 1); step past it first', type: 'error', console: [], interrupted: false, outputsDiscarded: 0 };
    }
    return this.guard(this.vm.eval(code, this.opts.evalBudgetMs));
  }

  async summary(): Promise<ReplaySummary> {
    const state = this.report ? (this.vmState ?? (await this.guard(this.vm.state(false)))) : await this.guard(this.vm.state(true));
    const lastSeq = this.store.indexedLastSeq;
    return {
      trace: this.store.path,
      guest: this.config.entry,
      segments: this.store.segments.length,
      tasks: this.frontierTasks,
      entries: lastSeq === 0 ? 0 : lastSeq - this.store.firstSeq + 1,
      outputsVerified: this.outputsVerified,
      stateHashesVerified: this.stateHashesVerified,
      finalStateHash: this.report ? '' : (state.stateHash ?? ''),
      finalPos: state.pos,
      lastSeq,
      replayMs: performance.now() - this.startedAt,
      truncated: this.store.truncated,
      incompleteTaskFromSeq: this.cursorDone && !this.report ? this.cursor.openTaskSeq : null,
      divergence: this.report?.divergence ?? null,
      checkpoints: { count: this.checkpoints.length, bytes: this.checkpointBytes, taken: this.checkpointsTaken },
    };
  }

  async close(): Promise<void> {
    await this.vm.terminate();
    await this.store.close();
  }
}

/** Re-executing verified tasks from a checkpoint diverged: the replay is not deterministic. */
export class ReplayNotReproducibleError extends Error {
  override name = 'ReplayNotReproducibleError';
}
