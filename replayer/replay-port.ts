// The replay input port: serves a task's recorded entries to the VM at exactly the positions where
// the live port took them. It never invents a value: an input asked for at a different position, of a
// different kind, or not asked for at all is a divergence, recorded with the exact seq and position.
// After the first divergence it answers with harmless values and interrupts the task, so the VM stays
// consistent enough to report and inspect.

import type { Divergence, InputPort } from '../hypervisor/vm/port.js';
import { decodeClockReading } from '../logging-channel/codec.js';
import { type Entry, Kind, kindName } from '../logging-channel/entry.js';

/**
 * Test-only fault injection: FTJS_TEST_PERTURB_CLOCK_FROM_SEQ=N makes the first clock reading at or
 * after seq N one millisecond late on replay: a deliberately nondeterministic build, to prove that a
 * divergence is detected and reported. Never set in production.
 */
const PERTURB_FROM_SEQ = Number(process.env.FTJS_TEST_PERTURB_CLOCK_FROM_SEQ ?? 0);

export interface ReplayPortOptions {
  /** Apply the test-only fault injection (FTJS_TEST_PERTURB_CLOCK_FROM_SEQ) if it is set. Default true. */
  faultInjection?: boolean;
  /** The injected fault was already applied before this port took over (restored checkpoints). */
  perturbed?: boolean;
}

export class ReplayPort implements InputPort {
  readonly mode = 'replay' as const;
  private readonly perturbFromSeq: number;
  /** The test-only fault was applied (it is applied once per replay). */
  perturbed: boolean;
  private entries: Entry[] = [];
  private next = 0;
  private endPos = 0;
  private endSeq = 0;
  private first: Divergence | null = null;

  constructor(options: ReplayPortOptions = {}) {
    this.perturbFromSeq = options.faultInjection === false ? 0 : PERTURB_FROM_SEQ;
    this.perturbed = options.perturbed ?? false;
  }

  /** Loads the inputs of one task: every entry after the task-start entry, ending with its TaskEnd. */
  beginTask(inputs: Entry[] | null): void {
    const end = inputs?.[inputs.length - 1];
    if (!end || end.kind !== Kind.TaskEnd) throw new Error('replay port: a task must end with its TaskEnd entry');
    this.entries = inputs!;
    this.next = 0;
    this.endPos = end.pos;
    this.endSeq = end.seq;
    this.first = null;
  }

  /** The TaskEnd entry, once every input before it was consumed. Anything left over is a divergence. */
  endTask(pos: number): Entry {
    const end = this.entries[this.entries.length - 1]!;
    const pending = this.entries[this.next]!;
    if (pending !== end) {
      this.diverge(pending.seq, pos, kindName[pending.kind] ?? String(pending.kind), `${kindName[pending.kind]} at pos ${pending.pos}`, 'task ended without consuming it');
    }
    return end;
  }

  divergence(): Divergence | null {
    return this.first;
  }

  /** Records a divergence found by the VM itself (output hash, task-end position). */
  diverge(seq: number, pos: number, expectedKind: string, expected: string, actual: string): void {
    if (!this.first) this.first = { seq, pos, expectedKind, expected, actual };
  }

  private peek(): Entry | undefined {
    const entry = this.entries[this.next];
    return entry && entry.kind !== Kind.TaskEnd ? entry : undefined;
  }

  clock(readIndex: number, pos: number, lastMs: number): number {
    if (this.first) return lastMs;
    const entry = this.peek();
    if (!entry || entry.kind !== Kind.Clock) return lastMs; // the clock did not change at this read
    const reading = decodeClockReading(entry.payload);
    if (reading.readIndex > readIndex) return lastMs;
    if (reading.readIndex < readIndex || entry.pos !== pos) {
      this.diverge(entry.seq, pos, 'Clock', `clock read #${reading.readIndex} at pos ${entry.pos}`, `clock read #${readIndex} at pos ${pos}`);
      return lastMs;
    }
    this.next++;
    if (this.perturbFromSeq > 0 && !this.perturbed && entry.seq >= this.perturbFromSeq) {
      this.perturbed = true;
      return reading.timeMs + 1;
    }
    return reading.timeMs;
  }

  entropy(length: number, pos: number): Uint8Array {
    const entry = this.peek();
    if (!this.first && entry && entry.kind === Kind.Entropy && entry.pos === pos && entry.payload.length === length) {
      this.next++;
      return entry.payload;
    }
    if (!this.first) {
      const expected = entry ? `${kindName[entry.kind]} at pos ${entry.pos} (${entry.payload.length} bytes)` : `TaskEnd at pos ${this.endPos}`;
      this.diverge(entry?.seq ?? this.endSeq, pos, entry ? (kindName[entry.kind] ?? '?') : 'TaskEnd', expected, `entropy request of ${length} bytes at pos ${pos}`);
    }
    return new Uint8Array(length);
  }

  preempt(pos: number): boolean {
    if (this.first) return true;
    const entry = this.peek();
    if (entry && entry.kind === Kind.Preempt) {
      if (entry.pos === pos) {
        this.next++;
        return true;
      }
      if (entry.pos < pos) {
        this.diverge(entry.seq, pos, 'Preempt', `preemption at pos ${entry.pos}`, `still running at pos ${pos}`);
        return true;
      }
    }
    if (pos > this.endPos) {
      this.diverge(this.endSeq, pos, 'TaskEnd', `task end at pos ${this.endPos}`, `still running at pos ${pos}`);
      return true;
    }
    return false;
  }
}
