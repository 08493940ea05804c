// The main thread's handle on a VM worker: request/reply over postMessage, one request at a time
// in order (the worker serialises them), and a loud, single fatal signal if the VM dies.

import type { Worker } from 'node:worker_threads';
import type { Entry } from '../../logging-channel/entry.js';
import { BOOT_FORMAT, guestImageKey, readVerifiedImage } from '../vm/boot-image.js';
import { type VmLimits, workerStackSizeMb } from '../vm/limits.js';
import type { BootConfig, LiveEvent, Snapshot } from '../vm/vm.js';
import type { EvalResult } from '../vm/vm-eval.js';
import { decodeRunReply, encodeEvents, encodeTasks } from './run-wire.js';
import type { CheckpointReply, PendingFetch, PrecopyReply, RunReply, VmFatalMessage, VmReply, VmRequest, VmState } from './vm-protocol.js';
import { spawnWorker, takePrestarted } from './worker-spawn.js';

export class VmError extends Error {
  constructor(
    name: string,
    message: string,
    readonly remoteStack?: string,
  ) {
    super(message);
    this.name = name;
  }
}

export class VmHost {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private dead: Error | null = null;
  /** Called once if the worker dies or reports a fatal error. */
  onFatal: (error: Error) => void = () => {};

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: VmReply | VmFatalMessage) => {
      if ('fatal' in message) {
        this.die(new VmError(message.fatal.name, `VM fatal: ${message.fatal.message}`, message.fatal.stack));
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new VmError(message.error.name, message.error.message, message.error.stack));
    });
    worker.on('error', (error) => this.die(error));
    worker.on('exit', (code) => this.die(new VmError('VmExit', `VM worker exited with code ${code}`)));
  }

  static start(limits: VmLimits): VmHost {
    const stackSizeMb = workerStackSizeMb(limits);
    return new VmHost(takePrestarted(stackSizeMb) ?? spawnWorker(stackSizeMb));
  }

  private die(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.onFatal(error);
  }

  get alive(): boolean {
    return this.dead === null;
  }

  private call<T>(request: VmRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ id, request }, transfer);
    });
  }

  /**
   * A live boot of a guest whose boot image is in the cache: this thread reads and verifies the image
   * and hands it over (transferred) with the request. The worker is the slower to get ready at a cold
   * start, and the image's read and checksum (~3 ms) are then off its path (issue 19).
   */
  boot(config: BootConfig, mode: 'live' | 'replay', snapshot?: Snapshot): Promise<RunReply> {
    const image = mode === 'live' && !snapshot && config.bootFormat === BOOT_FORMAT ? readVerifiedImage(guestImageKey(config)) : null;
    // The file's own buffers, never Node's shared pool (buffers of at most Buffer.poolSize): detaching that would break other Buffers.
    const transfer = image ? [...new Set([image.data.buffer, image.pages.buffer])].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && b.byteLength > Buffer.poolSize) : [];
    return this.call({ op: 'boot', config, mode, ...(snapshot ? { snapshot } : {}), ...(image ? { image } : {}) }, transfer);
  }

  /** The events go encoded, their buffer transferred (run-wire.ts); so does the reply. */
  async run(events: LiveEvent[]): Promise<RunReply> {
    const encoded = encodeEvents(events);
    const reply = encoded ? this.call<Uint8Array>({ op: 'run', events: encoded }, [encoded.buffer as ArrayBuffer]) : this.call<Uint8Array | RunReply>({ op: 'run', events });
    return decodeRunReply(await reply);
  }

  /** Replays `tasks`, or only a prefix of them once `sliceMs` has passed (see the results' length). */
  async replay(tasks: Entry[][], sliceMs?: number): Promise<RunReply> {
    const encoded = encodeTasks(tasks);
    return decodeRunReply(await this.call<Uint8Array | RunReply>({ op: 'replay', tasks: encoded, ...(sliceMs === undefined ? {} : { sliceMs }) }, [encoded.buffer as ArrayBuffer]));
  }

  goLive(limits?: Partial<VmLimits>): Promise<VmState> {
    return this.call({ op: 'go-live', ...(limits ? { limits } : {}) });
  }

  /**
   * With `hash`: the page hashes catch up in idle slices first (memory-upkeep.ts), so the state hash
   * itself stalls the VM only for the pages written since.
   */
  async state(hash = false): Promise<VmState> {
    if (hash) await this.call({ op: 'precopy', copy: false });
    return this.call({ op: 'state', hash });
  }

  /**
   * The VM as it is now. Its memory is usually the worker's kept copy, shared: call releaseSnapshot()
   * once done with it (until then the copy is not brought up to date, and a further snapshot is copied whole).
   */
  snapshot(): Promise<Snapshot> {
    return this.call({ op: 'snapshot' });
  }

  releaseSnapshot(snapshot: Snapshot): void {
    if (snapshot.lease !== undefined && this.alive) void this.call({ op: 'snapshot-release', lease: snapshot.lease }).catch(() => {});
  }

  /**
   * Pre-copy before a snapshot (a join, a checkpoint): resolves once the worker's kept copy of the
   * memory is within a few hundred pages of the memory, copied in idle slices while requests go on.
   */
  precopy(): Promise<PrecopyReply> {
    return this.call({ op: 'precopy', copy: true });
  }

  pendingFetches(): Promise<PendingFetch[]> {
    return this.call({ op: 'pending-fetches' });
  }

  // The replay debugger's operations (replay mode).

  reset(): Promise<VmState> {
    return this.call({ op: 'reset' });
  }

  checkpointSave(id: number, compress: boolean): Promise<CheckpointReply> {
    return this.call({ op: 'checkpoint-save', id, compress });
  }

  checkpointRestore(id: number): Promise<VmState> {
    return this.call({ op: 'checkpoint-restore', id });
  }

  checkpointDrop(ids: number[]): Promise<CheckpointReply> {
    return this.call({ op: 'checkpoint-drop', ids });
  }

  eval(code: string, budgetMs: number): Promise<EvalResult> {
    return this.call({ op: 'eval', code, budgetMs });
  }

  replayCopy(tasks: Entry[][], faultInjection: boolean): Promise<RunReply> {
    return this.call({ op: 'replay-copy', tasks, faultInjection });
  }

  async terminate(): Promise<void> {
    this.dead ??= new VmError('VmStopped', 'VM stopped');
    this.onFatal = () => {};
    await this.worker.terminate();
  }
}
