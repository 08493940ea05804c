// The VM worker's idle time: between requests, the page hashes and the kept copy of the VM's memory
// (hypervisor/vm/memory-tracker.ts) catch up in slices of about a millisecond, so that a state hash or
// a snapshot only finishes what was written since the last slice. A request that arrives meanwhile
// waits at most one slice. Pre-copy requests (a join or a checkpoint coming) are answered from here
// once the kept copy is within PRECOPY_DONE_PAGES of the memory.

import { PRECOPY_DONE_PAGES } from '../vm/memory-tracker.js';
import type { Snapshot, Vm } from '../vm/vm.js';
import type { PrecopyReply } from './vm-protocol.js';

export class MemoryUpkeep {
  /** Requests queued or in progress: idle slices run only when none is. */
  busy = 0;
  private scheduled = false;
  private waiters: Array<{ id: number; slices: number }> = [];

  constructor(
    private readonly vm: () => Vm | null,
    private readonly answer: (id: number, value: PrecopyReply) => void,
  ) {}

  precopy(id: number): void {
    this.vm()?.memoryTracker.keepCopy();
    this.waiters.push({ id, slices: 0 });
    this.schedule();
  }

  /** The snapshot for the 'snapshot' request: the kept copy, or a private copy while it is leased. */
  snapshot(vm: Vm): Snapshot {
    if (!vm.memoryTracker.copyLeased) return vm.leaseSnapshot();
    return { ...vm.snapshot(), stateHash: vm.stateHash(), pageHashes: vm.memoryTracker.pageHashes() };
  }

  schedule(): void {
    if (this.scheduled) return;
    const vm = this.vm();
    if (!vm || (this.waiters.length === 0 && !vm.memoryTracker.needsUpkeep())) return;
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
      this.waiters = [];
      return;
    }
    if (this.busy > 0) return; // the request's end schedules again
    const tracker = vm.memoryTracker;
    if (this.waiters.length > 0) tracker.keepCopy();
    tracker.idle();
    const backlog = tracker.copyBacklog();
    for (const w of this.waiters) w.slices++;
    if (this.waiters.length > 0 && backlog <= PRECOPY_DONE_PAGES) {
      for (const w of this.waiters.splice(0)) this.answer(w.id, { backlogPages: backlog, slices: w.slices });
    }
    this.schedule();
  }
}
