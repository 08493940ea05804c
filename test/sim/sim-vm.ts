// The simulator's VM factory: the real QuickJS VM (hypervisor/vm/vm.ts) run in this process, not in a
// worker, behind the same request/reply shape as VmHost. Each call takes virtual time (so a slow
// guest or a slow backup is a fault the seed chooses), and its reply arrives as a world event.

import type { VmHandle } from '../../hypervisor/node/env.js';
import type { BootConfig, LiveEvent, Snapshot } from '../../hypervisor/vm/vm.js';
import { Vm } from '../../hypervisor/vm/vm.js';
import type { PendingFetch, RunReply, VmState } from '../../hypervisor/worker/vm-protocol.js';
import type { Entry } from '../../logging-channel/entry.js';
import { LivePort, type LivePortWorld } from '../../recorder/live-port.js';
import { ReplayPort } from '../../replayer/replay-port.js';
import type { Owner, World } from './world.js';

export interface SimVmTiming {
  /** Virtual ms one task takes live. */
  taskMs: number;
  /** Virtual ms one task takes in replay (a slow backup: larger). */
  replayTaskMs: number;
  /** Virtual ms a boot takes (default: one task's). */
  bootMs?: number;
}

export class SimVm implements VmHandle {
  private vm: Vm | null = null;
  private dead: Error | null = null;
  /** Calls are served one at a time, in order, like the worker's queue. */
  private busyUntilMs = 0;
  onFatal: (error: Error) => void = () => {};
  /** Called once a boot completed (the simulator's slow-join fault stalls the host there). */
  afterBoot: ((fromSnapshot: boolean) => void) | null = null;

  constructor(
    private readonly world: World,
    private readonly owner: Owner,
    private readonly port: LivePortWorld,
    readonly timing: SimVmTiming,
  ) {}

  get alive(): boolean {
    return this.dead === null && !this.owner.crashed;
  }

  /** The VM itself, for the checks (state hashes); null before boot. */
  get inner(): Vm | null {
    return this.vm;
  }

  private call<T>(costMs: number, work: () => T | Promise<T>): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const startMs = Math.max(this.world.nowMs, this.busyUntilMs);
    this.busyUntilMs = startMs + costMs;
    return new Promise<T>((resolve, reject) => {
      this.world.at(this.busyUntilMs - this.world.nowMs, this.owner, () => {
        if (this.dead) return reject(this.dead);
        this.world.track(Promise.resolve().then(work)).then(resolve, reject);
      });
    });
  }

  private livePort(v: () => Vm): LivePort {
    return new LivePort({ push: (e) => v().sink.push(e) }, { taskBudgetMs: 1_000, world: this.port });
  }

  async boot(config: BootConfig, mode: 'live' | 'replay', snapshot?: Snapshot): Promise<RunReply> {
    return this.call(this.timing.bootMs ?? this.timing.taskMs, async () => {
      let v: Vm;
      const port = mode === 'live' ? this.livePort(() => v) : new ReplayPort();
      v = await Vm.create(config, port, snapshot);
      this.vm = v;
      this.afterBoot?.(snapshot !== undefined);
      if (mode === 'live' && !snapshot) return { results: [v.bootLive()], state: this.stateOf(v, false) };
      return { results: [], state: this.stateOf(v, false) };
    });
  }

  run(events: LiveEvent[]): Promise<RunReply> {
    return this.call(this.timing.taskMs * events.length, () => {
      const v = this.need();
      return { results: events.map((e) => v.runLive(e)), state: this.stateOf(v, false) };
    });
  }

  replay(tasks: Entry[][]): Promise<RunReply> {
    // One task per call: the backup's pump asks again for the rest (its slices). The worker gets its
    // tasks by structured clone: plain Uint8Arrays, never the Buffer views the channel decoded.
    const batch = tasks.slice(0, 1).map((task) => task.map((e) => ({ ...e, payload: new Uint8Array(e.payload) })));
    return this.call(this.timing.replayTaskMs * batch.length, () => {
      const v = this.need();
      const results = [];
      for (const task of batch) {
        const result = v.replay(task);
        results.push(result);
        if (result.divergence) break;
      }
      return { results, state: this.stateOf(v, false) };
    });
  }

  goLive(): Promise<VmState> {
    return this.call(0, () => {
      const v = this.need();
      v.setPort(this.livePort(() => v));
      return this.stateOf(v, false);
    });
  }

  state(hash = false): Promise<VmState> {
    return this.call(0, () => this.stateOf(this.need(), hash));
  }

  snapshot(): Promise<Snapshot> {
    return this.call(1, () => this.need().snapshot());
  }

  pendingFetches(): Promise<PendingFetch[]> {
    return this.call(0, () => this.need().pendingFetches());
  }

  async terminate(): Promise<void> {
    this.dead ??= new Error('VM stopped');
    this.vm = null;
  }

  private need(): Vm {
    if (!this.vm) throw new Error('VM not booted');
    return this.vm;
  }

  private stateOf(v: Vm, hash: boolean): VmState {
    return { pos: v.pos, tasks: v.taskCount, guestTimeMs: v.guestTimeMs, memoryBytes: v.memoryBytes, nextTimer: v.nextTimer(), ...(hash ? { stateHash: v.stateHash() } : {}) };
  }
}
