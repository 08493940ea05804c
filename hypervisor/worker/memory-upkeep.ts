// The VM worker's idle time: between requests, the page hashes and the kept copy of the VM's memory
// (hypervisor/vm/memory-tracker.ts) catch up in slices of about a millisecond, so that a state hash or
// a snapshot only finishes what was written since the last slice. A request that arrives meanwhile
// waits at most one slice. Pre-copy requests (a join or a checkpoint coming, or a state hash: the page
// hashes only) are answered from here once what is left for the request itself is at most
// PRECOPY_DONE_PAGES pages, or after MAX_PRECOPY_SLICES slices (a guest that writes more pages per
// request than a slice takes never converges: the request then pays for the rest, as VMotion's final
// stop-and-copy does).

import { PRECOPY_DONE_PAGES } from '../vm/memory-tracker.js';
import type { Snapshot, Vm } from '../vm/vm.js';
import type { PrecopyReply } from './vm-protocol.js';

/**
 * How often, at most, the end of a request looks for upkeep when no pre-copy waits: looking scans the
 * write map, one byte per page (~15 µs at 200 MiB), too much to do after every request.
 */
export const UPKEEP_CHECK_MS = 5;

/** Slices a pre-copy waits at most before it is answered anyway. */
export const MAX_PRECOPY_SLICES = 200;
/**
 * Time a pre-copy waits at most: slices run only when no request is queued, and a worker that always
 * has one queued would otherwise never answer (a status would hang). The request then pays for the rest.
 */
export const MAX_PRECOPY_WAIT_MS = 2000;

export class MemoryUpkeep {
  /** Requests queued or in progress: idle slices run only when none is. */
  busy = 0;
  private scheduled = false;
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  /** A slice found a request under way: the request's end resumes the work unthrottled. */
  private interrupted = false;
  private waiters: Array<{ id: number; slices: number; copy: boolean }> = [];

  constructor(
    private readonly vm: () => Vm | null,
    private readonly answer: (id: number, value: PrecopyReply) => void,
  ) {}

  /** Answers request `id` once the page hashes (and with `copy`, the kept copy) are nearly current. */
  precopy(id: number, copy: boolean): void {
    if (copy) this.vm()?.memoryTracker.keepCopy();
    const waiter = { id, slices: 0, copy };
    this.waiters.push(waiter);
    this.schedule();
    setTimeout(() => {
      const at = this.waiters.indexOf(waiter);
      if (at < 0) return;
      this.waiters.splice(at, 1);
      this.answer(id, { backlogPages: -1, slices: waiter.slices });
    }, MAX_PRECOPY_WAIT_MS).unref();
  }

  /** The snapshot for the 'snapshot' request: the kept copy, or a private copy while it is leased. */
  snapshot(vm: Vm): Snapshot {
    if (!vm.memoryTracker.copyLeased) return vm.leaseSnapshot();
    return { ...vm.snapshot(), stateHash: vm.stateHash(), pageHashes: vm.memoryTracker.pageHashes() };
  }

  /** After a request (throttled), or `again` after a slice that left work. */
  schedule(again = false): void {
    if (this.scheduled) return;
    const vm = this.vm();
    if (!vm) return;
    if (this.waiters.length === 0 && !again && !this.interrupted) {
      const now = performance.now();
      if (now - this.checkedAtMs < UPKEEP_CHECK_MS) return;
      this.checkedAtMs = now;
      if (!vm.memoryTracker.needsUpkeep()) return;
    }
    this.interrupted = false;
    this.scheduled = true;
    // setImmediate: messages that arrived meanwhile are handled first.
    setImmediate(() => {
      this.scheduled = false;
      this.slice();
    });
  }

  private slice(): void {
    const vm = this.vm();
    if (!vm) {
      // The VM is gone: nothing to copy; the snapshot that follows reports why.
      for (const w of this.waiters.splice(0)) this.answer(w.id, { backlogPages: 0, slices: w.slices });
      return;
    }
    if (this.busy > 0) {
      this.interrupted = true; // the request's end schedules again
      return;
    }
    const tracker = vm.memoryTracker;
    const left = tracker.idle();
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      w.slices++;
      const backlog = w.copy ? Math.max(left.hash, left.copy) : left.hash;
      if (backlog <= PRECOPY_DONE_PAGES || w.slices >= MAX_PRECOPY_SLICES) this.answer(w.id, { backlogPages: backlog, slices: w.slices });
      else this.waiters.push(w);
    }
    this.schedule(this.waiters.length > 0 || Math.max(left.hash, left.copy) > PRECOPY_DONE_PAGES);
  }
}
