// The node's log: gives each entry the VM produced its dense `seq` and hands the entries, in order,
// to every sink (the trace file, the logging channel). The log is the one place seqs are assigned.

import type { Entry, KindCode, RawEntry } from '../logging-channel/entry.js';

export type LogSink = (entries: readonly Entry[]) => void;

export class Log {
  private last: number;
  private lastPos: number;
  private readonly sinks: LogSink[] = [];

  /** `afterSeq`/`afterPos`: where the log continues (0 for a fresh VM; the drained seq after go-live). */
  constructor(afterSeq = 0, afterPos = 0) {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new RangeError(`Log: bad start seq ${afterSeq}`);
    this.last = afterSeq;
    this.lastPos = afterPos;
  }

  get lastSeq(): number {
    return this.last;
  }

  get pos(): number {
    return this.lastPos;
  }

  addSink(sink: LogSink): void {
    this.sinks.push(sink);
  }

  append(raw: readonly RawEntry[]): Entry[] {
    const entries: Entry[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const r = raw[i]!;
      if (r.pos < this.lastPos) throw new Error(`log: entry ${this.last + 1} moves pos backwards (${r.pos} < ${this.lastPos})`);
      this.lastPos = r.pos;
      entries[i] = { seq: ++this.last, pos: r.pos, kind: r.kind, payload: r.payload };
    }
    for (const sink of this.sinks) sink(entries);
    return entries;
  }

  /** A control entry (no-op heartbeat, epoch mark, state hash) at the current position. */
  appendControl(kind: KindCode, payload: Uint8Array): Entry {
    return this.append([{ kind, pos: this.lastPos, payload }])[0]!;
  }
}

/**
 * A sink that writes `trace` once per tick (after every batch of tasks appended in it): one write
 * per batch rather than per entry, and a crash loses at most the batch in flight.
 */
export function traceSink(trace: { append(entries: readonly Entry[]): void; flush(): void }): { sink: LogSink; close(): void } {
  let queued = false;
  let closed = false;
  return {
    sink: (entries) => {
      trace.append(entries);
      if (queued) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        if (!closed) trace.flush();
      });
    },
    close: () => {
      closed = true;
    },
  };
}
