// One guest VM: a QuickJS runtime + context in its own WebAssembly instance, its devices (clock,
// entropy, timers, inbound requests, outbound fetch, console), and the task loop. It runs inside the VM
// worker. The same code serves the live and the replay role; only the input port differs.
//
// Snapshot rules (DESIGN.md, rule 4): exactly one host function, registered at boot in a fixed order;
// per-request objects live in guest-side tables; device tables here are plain data.

import { createHash } from 'node:crypto';
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten-core';
import {
  decodeFetchResultEvent,
  decodeRequestEvent,
  decodeScheduledEvent,
  decodeStreamCancelEvent,
  decodeTaskEnd,
  decodeTimerEvent,
  encodeFetchResultEvent,
  encodeRequestEvent,
  encodeScheduledEvent,
  encodeStreamCancelEvent,
  encodeTaskEnd,
  encodeTimerEvent,
} from '../../logging-channel/codec.js';
import { type Entry, type FetchResultEvent, type HeaderList, Kind, kindName, type RawEntry, type RequestEvent, type ScheduledEvent } from '../../logging-channel/entry.js';
import { taskHash } from '../../logging-channel/task-outputs.js';
import {
  applyImageMemory,
  BOOT_FORMAT,
  type BootImage,
  type BootImageCache,
  type BootImageUse,
  type BootLayout,
  bootImageKey,
  captureMemory,
  defaultBootImageCache,
  guestImageKey,
  nonZeroPages,
} from './boot-image.js';
import { bootEngine, DEFAULT_INITIAL_MEMORY_BYTES, ENGINE_NAME, ENGINE_VERSION, type Engine } from './engine.js';
import { EngineCalls } from './engine-calls.js';
import { type Glue, lazyGlueSource, splitWebGlue } from './glue.js';
import { assertLimits, type VmLimits } from './limits.js';
import { MemoryTracker, withoutTrackingMap } from './memory-tracker.js';
import type { Divergence, InputPort } from './port.js';
import { Position, type PositionState } from './position.js';
import { RandomState } from './random-state.js';
import type { GuestSource } from './sources.js';
import { isSourceMapName, resolveModuleName } from './sources.js';
import { StackMapper } from './stack-map.js';
import { subtleHostOp } from './subtle/host-op.js';
import type { ScratchScope } from './vm-eval.js';

export interface BootConfig {
  entry: string;
  /** Cron triggers (--cron, Workers syntax): the live node delivers each firing to scheduled(). */
  crons?: string[];
  sources: GuestSource[];
  guestHash: string;
  env: Record<string, string>;
  limits: VmLimits;
  /** The hypervisor's guest-side code the VM boots with (hypervisor/vm/glue.ts). */
  glue: Glue;
  /** The boot sequence (hypervisor/vm/boot-image.ts BOOT_FORMAT); absent in traces written before it. */
  bootFormat?: number;
  /**
   * Lazy web modules the boot task loads before the guest's module (boot-config.ts preloadFor), so that
   * they are in the guest's boot image instead of the first request that touches them. Absent: none.
   */
  preload?: string[];
}

export interface BootTimings {
  /** WebAssembly instance and quickjs-emscripten module (and the engine's compile, if not done before). */
  engineMs?: number;
  /** Runtime, context and host function. */
  contextMs?: number;
  /** Position counter calibration and the Math.random state's identification. */
  calibrateMs?: number;
  /** The hypervisor's glue (web platform and runtime). */
  glueMs?: number;
  /** Copying a boot image in, instead of calibrating and evaluating the glue. */
  imageMs?: number;
  /** The guest module: its compile and top-level evaluation (the boot task's guest part). */
  guestMs?: number;
}

export interface VmOptions {
  /** Where boot images come from and go (boot format 2); null boots in full every time. Default: this thread's cache. */
  bootImages?: BootImageCache | null;
  /**
   * Tests only: make the per-event engine calls through quickjs-emscripten's handle API, as before
   * engine-calls.ts, instead of its low-level FFI: the reference the direct calls are compared with.
   */
  handleApi?: boolean;
}

export type Output =
  | { kind: 'response'; requestId: number; status: number; statusText: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: HeaderList; body: Uint8Array }
  // A streamed response (body a ReadableStream): its head, then its chunks, each from the task that
  // produced it, then its end (error: the stream failed or was stopped; the HTTP response is cut off).
  | { kind: 'head'; requestId: number; status: number; statusText: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'chunk'; requestId: number; body: Uint8Array }
  | { kind: 'end'; requestId: number; error: string | null; body: Uint8Array };

export const CONSOLE_LEVELS = ['debug', 'log', 'info', 'warn', 'error'] as const;
export type ConsoleLevel = (typeof CONSOLE_LEVELS)[number];
export interface ConsoleLine {
  level: ConsoleLevel;
  text: string;
}

export interface TaskResult {
  /** Live: the entries this task appended, in order (start, inputs, task end). Replay: empty. */
  entries: RawEntry[];
  kind: string;
  /** For request tasks: the request id the VM gave the request. */
  requestId: number;
  outputs: Output[];
  /** Outbound fetches the guest aborted in this task: the node cancels them (after the task's outputs). */
  fetchAborts: number[];
  console: ConsoleLine[];
  preempted: boolean;
  pos: number;
  divergence: Divergence | null;
}

/** Inputs of a live task, before the VM turns them into a start entry. */
export type LiveEvent =
  | { kind: 'request'; method: string; url: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'timer'; timerId: number }
  | { kind: 'fetch-result'; result: FetchResultEvent }
  | { kind: 'scheduled'; event: ScheduledEvent }
  | { kind: 'stream-cancel'; requestId: number };

export interface DeviceState {
  position: PositionState;
  clockReads: number;
  clockLastMs: number;
  entropyPool: string; // base64
  entropyOffset: number;
  nextRequestId: number;
  pendingRequests: number[];
  timers: Array<[id: number, deadlineMs: number, owner: number]>;
  /** Streamed responses in progress: request id and body bytes sent so far (absent in older snapshots). */
  streams?: Array<[requestId: number, bytes: number]>;
  fetches: Array<[id: number, owner: number, method: string, url: string, headers: HeaderList, body: string]>;
  tasks: number;
}

export interface Snapshot {
  engine: string;
  guestHash: string;
  memory: Uint8Array;
  devices: DeviceState;
  /** The state hash (state-hash.ts) of this memory and devices, when the VM that took it knew it. */
  stateHash?: string;
  /** SHA-256 of each 4 KiB page (page-delta.ts pageHashes), when the VM that took it knew them. */
  pageHashes?: Uint8Array;
  /** Set when `memory` is the VM's kept copy, shared: the id to release it by (memory-tracker.ts). */
  lease?: number;
}

export class VmFatal extends Error {
  override name = 'VmFatal';
}

export class BootError extends Error {
  override name = 'BootError';
}

// Host operations the guest glue may call (hypervisor/guest/runtime.js).
// Crypto (13) is crypto.subtle (hypervisor/guest/web/subtle.js): a pure function of its arguments.
const HostOp = {
  Respond: 1,
  Fetch: 2,
  TimerSet: 3,
  TimerClear: 4,
  Console: 5,
  Entropy: 6,
  Booted: 7,
  FetchAbort: 8,
  LazyModule: 9,
  RespondHead: 10,
  RespondChunk: 11,
  RespondEnd: 12,
  Crypto: 13,
  LazyGlue: 14,
} as const;
// Events the host delivers to the guest glue's dispatch function.
const GuestEvent = { Request: 1, Timer: 2, FetchResult: 3, Aborted: 4, Scheduled: 5, StreamCancel: 6, Boot: 9 } as const;

/**
 * Loading lazy glue (the Intl polyfill and its data, hypervisor/vm/lazy-glue-build.ts) is the hypervisor's
 * work, not the guest's: over a VM's lifetime, loads may take up to this many task budgets of wall time
 * beyond the guest's own budget. Past that (a guest that keeps a load from finishing, say by patching
 * a builtin the polyfill calls) they count against the task budget like guest code.
 */
const LAZY_GLUE_GRACE_BUDGETS = 10;
const ENTROPY_POOL_BYTES = 256;
const MAX_ENTROPY_REQUEST_BYTES = 65536;
/** A task whose job queue does not drain within this many rounds is a wedged VM. */
const MAX_DRAIN_ROUNDS = 100_000;
const EMPTY = new Uint8Array(0);
/** Module name the normalizer gives an import it cannot resolve (see bootSequence). */
const UNRESOLVED_MODULE = '/unresolved';
const utf8 = new TextEncoder();

class Clock {
  reads = 0;
  lastMs = 0;
}

export class Vm {
  private readonly position: Position;
  private readonly clockState = new Clock();
  private port: InputPort;
  private runtime!: QuickJSRuntime;
  private context!: QuickJSContext;
  private dispatch!: QuickJSHandle;
  /** The per-event engine calls on the low-level FFI (engine-calls.ts); null: through the handle API. */
  private calls: EngineCalls | null = null;
  private handleApi = false;
  private handlerCalls = 0;
  private engineBooted = false;
  private calibrating = false;
  private readonly randomState: RandomState;
  /** Boot format 2: the engine's own clock read in JS_NewContext gets a constant, not an input. */
  private fixedClock = false;
  /**
   * Host calls so far that may carry an input: a boot that made one before the guest is not captured
   * as an image. A lazy web module's code (HostOp.LazyModule) is a pure function of the boot config
   * and does not count: the glue loads streams at boot, and a guest may touch them at its top level.
   */
  private hostCallCount = 0;
  private bootImages: BootImageCache | null = null;
  private image: BootImage | null = null;
  /** A snapshot is about to replace the memory: from the image take only where things are. */
  private layoutOnly = false;
  /** The pages the boot's prefix wrote (kept in images: see applyImageMemory). */
  private prefixPages: number[] = [];
  /** The pre-guest boot took no input (it came from an image, or could have been kept as one). */
  private preGuestPure = false;
  /** An image of the guest's whole boot task (its memory is `image`'s): the guest module is not evaluated. */
  private guestImage: BootImage | null = null;
  /** The inputs and state when the guest's boot began, to tell whether its end state can be kept. */
  private guestMark: { reads: number; hostCalls: number; pool: Uint8Array; offset: number; random: bigint; position: PositionState; pos: number } | null = null;
  /** What this VM's boot did with boot images. */
  imageUse: BootImageUse = { source: 'none' };
  /** Where this VM's boot spent its time, in ms (diagnostics only: never reaches the guest). */
  readonly bootTimings: BootTimings = {};

  // Device tables (snapshot state).
  private entropyPool: Uint8Array = EMPTY;
  private entropyOffset = 0;
  private nextRequestId = 1;
  private readonly pendingRequests = new Set<number>();
  /** Streamed responses whose head went out and whose end has not: request id -> body bytes so far. */
  private readonly streams = new Map<number, number>();
  private readonly timers = new Map<number, { deadlineMs: number; owner: number }>();
  private readonly fetches = new Map<number, { owner: number; method: string; url: string; headers: HeaderList; body: Uint8Array }>();
  private tasks = 0;
  // Live-only accounting of lazy glue loads (not guest state: it only moves the live port's deadline).
  private lazyGraceLeftMs = Number.NaN;
  private lazyGrace: { startMs: number; grantedMs: number } | null = null;

  // Per-task scratch (not state: empty between tasks).
  private inTask = false;
  private preempted = false;
  private outputs: Output[] = [];
  private fetchAborts: number[] = [];
  private consoleLines: ConsoleLine[] = [];
  private consoleDropped = 0;
  private entries: RawEntry[] = [];
  private bootMessage: string | null = null;
  /** Code of the web glue's lazy modules, by name (hypervisor/vm/glue.ts splitWebGlue). Not state: from the boot config. */
  private lazyModules: Record<string, string> = {};
  private booted = false;

  private constructor(
    private readonly engine: Engine,
    readonly config: BootConfig,
    port: InputPort,
  ) {
    this.port = port;
    this.position = new Position(engine.memory);
    this.stacks = new StackMapper(config.sources);
    this.randomState = new RandomState(engine.memory);
    this.memoryTracker = new MemoryTracker(engine.memory, engine.dirty, engine.maxMemoryBytes, () => [
      { address: this.position.address, bytes: 4 },
      { address: this.randomState.stateAddress, bytes: 8 },
    ]);
  }

  /** Page hashes and kept copy of the memory, updated from the pages written (memory-tracker.ts). */
  readonly memoryTracker: MemoryTracker;

  /** Maps guest stack frames to the original files (the bundle's source map); display only, never hashed. */
  private readonly stacks: StackMapper;

  /** The live port appends here; the VM hands the entries out with the task result. */
  readonly sink = { push: (entry: RawEntry) => void this.entries.push(entry) };

  /**
   * Boots a VM. With `snapshot`, boots the identical sequence and then copies the snapshot's memory
   * and device tables in; the VM then continues exactly where the snapshotted one was.
   */
  static async create(config: BootConfig, port: InputPort, snapshot?: Snapshot, options: VmOptions = {}): Promise<Vm> {
    if (snapshot && snapshot.guestHash !== config.guestHash) throw new BootError('snapshot was taken of another guest');
    // Limits that bypassed the CLI's checks (programmatic use, a trace header) fail here, by name.
    assertLimits(config.limits);
    let vm: Vm | undefined;
    const maximumBytes = DEFAULT_INITIAL_MEMORY_BYTES + config.limits.memoryLimitBytes;
    // Boot format 2 may start from an image of the pre-guest boot; the memory must be created at its size.
    const images = config.bootFormat === BOOT_FORMAT ? (options.bootImages === undefined ? defaultBootImageCache() : options.bootImages) : null;
    const guestFound = images && !snapshot ? images.get(guestImageKey(config)) : null;
    const found = guestFound ?? images?.get(bootImageKey(config)) ?? null;
    const initialBytes = snapshot ? snapshot.memory.byteLength : (found?.image.memoryBytes ?? DEFAULT_INITIAL_MEMORY_BYTES);
    const engineStarted = performance.now();
    const engine = await bootEngine({ nowMs: () => vm!.readClock() }, initialBytes, maximumBytes);
    const engineMs = performance.now() - engineStarted;
    if (snapshot) {
      // The restore boots the identical sequence with a port that answers nothing real (every value
      // it hands out is overwritten by the snapshot's memory), then copies the snapshot in. With a
      // boot image's layout the glue need not run: the snapshot's memory replaces its work anyway.
      vm = new Vm(engine, config, new NullPort());
      vm.handleApi = options.handleApi === true;
      vm.bootImages = images;
      vm.image = found?.image ?? null;
      vm.layoutOnly = vm.image !== null;
      vm.bootSequence();
      vm.restore(snapshot);
      vm.port = port;
    } else {
      // The engine boot itself happens inside the Boot task (format 1: its clock read seeds Math.random).
      vm = new Vm(engine, config, port);
      vm.handleApi = options.handleApi === true;
      vm.bootTimings.engineMs = engineMs;
      vm.bootImages = images;
      vm.image = found?.image ?? null;
      vm.guestImage = guestFound?.image ?? null;
      if (found) vm.imageUse = { source: found.source, ...(guestFound ? { guest: guestFound.source } : {}) };
      else if (!images) vm.imageUse = { source: 'none', reason: config.bootFormat === BOOT_FORMAT ? 'boot images disabled' : `boot format ${config.bootFormat ?? 1} has no images` };
      const problems = images?.problems.splice(0) ?? [];
      if (problems.length > 0) vm.imageUse.problems = problems;
    }
    return vm;
  }

  setPort(port: InputPort): void {
    if (this.inTask) throw new VmFatal('cannot switch ports inside a task');
    this.port = port;
  }

  get mode(): 'live' | 'replay' {
    return this.port.mode;
  }

  get pos(): number {
    return this.position.read();
  }

  get taskCount(): number {
    return this.tasks;
  }

  get memoryBytes(): number {
    return this.engine.memory.buffer.byteLength;
  }

  // ---------------------------------------------------------------- boot

  private bootSequence(): void {
    if (this.config.bootFormat !== undefined && this.config.bootFormat !== BOOT_FORMAT) {
      throw new BootError(`boot format ${this.config.bootFormat} is not one this ftjs knows (it knows 1 and ${BOOT_FORMAT})`);
    }
    this.engineBooted = true;
    const { module } = this.engine;
    const limits = this.config.limits;
    const runtime = module.newRuntime();
    this.runtime = runtime;
    runtime.setMemoryLimit(limits.memoryLimitBytes);
    runtime.setMaxStackSize(limits.maxStackBytes);
    const sources = new Map(this.config.sources.filter((s) => !isSourceMapName(s.name)).map((s) => [s.name, s.text]));
    // An error from the normalizer is lost: the engine goes on to load the module named "" and the
    // guest sees that load's error. So a failed resolve hands the loader a name no guest module can
    // have (resolved names are relative) and the loader, called right after, reports the resolve
    // error, which names the specifier.
    let resolveError: Error | null = null;
    runtime.setModuleLoader(
      (name) => {
        if (name === UNRESOLVED_MODULE && resolveError) {
          const error = resolveError;
          resolveError = null;
          return { error };
        }
        const text = sources.get(name);
        return text === undefined ? { error: new Error(`guest module "${name}" was not loaded at boot (missing file?)`) } : text;
      },
      (base, requested) => {
        try {
          return resolveModuleName(base, requested);
        } catch (error) {
          resolveError = error as Error;
          return UNRESOLVED_MODULE;
        }
      },
    );
    runtime.setInterruptHandler(() => this.onInterrupt());
    if (this.config.bootFormat === BOOT_FORMAT) return this.bootFormat2(runtime);
    const context = runtime.newContext();
    this.context = context;
    this.useEngineCalls();
    this.calibrate();

    const hostFn = context.newFunction('host', (...args) => this.onHostCall(args));
    context.setProp(context.global, '__ftjs_host', hostFn);
    hostFn.dispose();
    const web = splitWebGlue(this.config.glue.web);
    this.lazyModules = web.lazy;
    this.evalScript(web.boot, 'ftjs:web.js').dispose();
    this.dispatch = this.evalScript(this.config.glue.runtime, 'ftjs:runtime.js');
    if (context.typeof(this.dispatch) !== 'function') throw new VmFatal('guest runtime did not return its dispatch function');
  }

  /**
   * Compiles a lazy glue chunk (an expression, see hypervisor/vm/lazy-glue-build.ts) from the boot config,
   * so replay compiles the same text; the guest glue runs what it evaluates to. A chunk that fails to
   * compile (out of memory) is handed back as the error value, for the glue to throw.
   * Like the glue at boot, loading it is not the guest's work: from here until the glue says the chunk
   * has run (name ""), the task's CPU budget is extended by what is left of the VM's lazy-glue grace
   * (LAZY_GLUE_GRACE_BUDGETS), and then it starts again. Past the grace a load is preempted like guest
   * code, and the glue retries it at the next use.
   */
  private compileLazyGlue(name: string): QuickJSHandle | undefined {
    if (this.inTask) {
      this.settleLazyGrace();
      if (name === '') {
        this.port.restartBudget?.();
      } else {
        if (Number.isNaN(this.lazyGraceLeftMs)) this.lazyGraceLeftMs = LAZY_GLUE_GRACE_BUDGETS * this.config.limits.taskBudgetMs;
        this.lazyGrace = { startMs: performance.now(), grantedMs: this.lazyGraceLeftMs };
        this.lazyGraceLeftMs = 0;
        this.port.restartBudget?.(this.lazyGrace.grantedMs);
      }
    }
    if (name === '') return undefined;
    const code = lazyGlueSource(this.config.glue, name);
    if (code === undefined) return undefined;
    const result = this.context.evalCode(code, `ftjs:${name}.js`, { type: 'global', strict: true });
    return result.error ?? result.value;
  }

  /** Gives back the part of the last grant a load did not use (a preempted load used it all). */
  private settleLazyGrace(): void {
    if (!this.lazyGrace) return;
    const usedMs = Math.min(this.lazyGrace.grantedMs, performance.now() - this.lazyGrace.startMs);
    this.lazyGraceLeftMs += this.lazyGrace.grantedMs - usedMs;
    this.lazyGrace = null;
  }

  /**
   * Boot format 2, after the runtime is set up. Every path runs the same steps up to the host function,
   * so that every pointer the host holds (context, global object) is the same; then either the glue
   * runs (and the result may be kept as an image), or an image's memory is copied in, or (restoring a
   * snapshot) only the image's layout is taken. The guest's Math.random seed comes after (seedRandom).
   */
  private bootFormat2(runtime: QuickJSRuntime): void {
    // The lazy modules' code is the guest's to ask for whichever way the VM booted (image or glue).
    this.lazyModules = splitWebGlue(this.config.glue.web).lazy;
    const timings = this.bootTimings;
    let mark = performance.now();
    const lap = () => {
      const now = performance.now();
      const ms = now - mark;
      mark = now;
      return ms;
    };
    this.fixedClock = true;
    try {
      this.context = runtime.newContext();
    } finally {
      this.fixedClock = false;
    }
    const context = this.context;
    this.useEngineCalls();
    const hostFn = context.newFunction('host', (...args) => this.onHostCall(args));
    context.setProp(context.global, '__ftjs_host', hostFn);
    hostFn.dispose();
    timings.contextMs = lap();
    if (this.image) {
      if (!this.layoutOnly) applyImageMemory(this.engine.memory, this.image);
      this.adoptLayout(this.image);
      // A guest image's memory holds the counter as it is after the guest's boot: the seed is still drawn where it was.
      if (this.image.guest && !this.layoutOnly) this.position.pin(this.image.guest.seedPos);
      timings.imageMs = lap();
      this.preGuestPure = true;
      this.prefixPages = this.image.prefixPages;
      return;
    }
    if (this.bootImages) this.prefixPages = nonZeroPages(this.engine.memory);
    this.calibrate();
    this.randomState.locate(contextPointerOf(context), () => {
      const r = context.evalCode('Math.random()', 'ftjs:random-check.js');
      if (r.error) {
        r.error.dispose();
        throw new VmFatal('Math.random() failed at boot');
      }
      return r.value.consume((v) => context.getNumber(v));
    });
    timings.calibrateMs = lap();
    const inputsBefore = this.clockState.reads + this.hostCallCount + this.entropyPool.byteLength;
    this.evalScript(splitWebGlue(this.config.glue.web).boot, 'ftjs:web.js').dispose();
    this.dispatch = this.evalScript(this.config.glue.runtime, 'ftjs:runtime.js');
    if (context.typeof(this.dispatch) !== 'function') throw new VmFatal('guest runtime did not return its dispatch function');
    timings.glueMs = lap();
    if (!this.bootImages) return;
    if (this.clockState.reads + this.hostCallCount + this.entropyPool.byteLength !== inputsBefore || this.consoleLines.length > 0) {
      this.imageUse = { ...this.imageUse, source: 'none', reason: 'the glue read the clock, drew entropy, called the host or logged while booting: no image kept' };
      return;
    }
    this.preGuestPure = true;
    const { pages, data } = captureMemory(this.engine.memory);
    this.bootImages.put({
      key: bootImageKey(this.config),
      memoryBytes: this.engine.memory.buffer.byteLength,
      layout: this.layout(),
      position: this.position.state(),
      handlerCalls: this.handlerCalls,
      prefixPages: this.prefixPages,
      pages,
      data,
    });
    this.imageUse = { ...this.imageUse, source: 'captured' };
  }

  /** Host calls, event delivery and job drains go through the low-level FFI from here on (unless handleApi). */
  private useEngineCalls(): void {
    if (this.handleApi) return;
    this.calls = new EngineCalls(this.runtime, this.context);
    this.calls.routeHostCalls();
  }

  private layout(): BootLayout {
    return {
      contextPointer: contextPointerOf(this.context),
      globalPointer: this.context.global.value as number,
      dispatchPointer: this.dispatch.value as number,
      counterAddress: this.position.address,
      randomStateAddress: this.randomState.stateAddress,
    };
  }

  /** The guest's boot task is about to run: what it starts from, to tell later whether it took any input. */
  private markGuestPhase(): void {
    this.guestMark = {
      reads: this.clockState.reads,
      hostCalls: this.hostCallCount,
      pool: this.entropyPool,
      offset: this.entropyOffset,
      random: this.randomState.read(),
      position: this.position.state(),
      pos: this.position.read(),
    };
  }

  /**
   * After the guest's boot task: keeps an image of the VM if the task took no input but the seed (so
   * that its end state, Math.random's state aside, is the same on every boot) and did nothing but log
   * and report that it booted.
   */
  private keepGuestImage(preempted: boolean): void {
    const mark = this.guestMark;
    this.guestMark = null;
    if (!mark || !this.bootImages || !this.preGuestPure || this.port.divergence()) return;
    const why = !this.booted
      ? 'the guest did not boot'
      : preempted
        ? 'the boot was preempted'
        : this.clockState.reads !== mark.reads || this.entropyPool !== mark.pool || this.entropyOffset !== mark.offset
          ? 'the guest read the clock or drew entropy at its top level'
          : this.randomState.read() !== mark.random
            ? 'the guest called Math.random at its top level'
            : this.hostCallCount !== mark.hostCalls + 1 + this.consoleLines.length || this.outputs.length > 0 || this.timers.size > 0 || this.fetches.size > 0
              ? 'the guest set a timer or fetched at its top level'
              : this.consoleLines.length >= this.config.limits.maxConsoleLinesPerTask
                ? 'the guest logged more lines than a task keeps'
                : null;
    if (why) {
      this.imageUse = { ...this.imageUse, guest: 'none', guestReason: why };
      return;
    }
    const { pages, data } = captureMemory(this.engine.memory);
    this.bootImages.put({
      key: guestImageKey(this.config),
      memoryBytes: this.engine.memory.buffer.byteLength,
      layout: this.layout(),
      position: mark.position,
      handlerCalls: this.handlerCalls,
      prefixPages: this.prefixPages,
      guest: { position: this.position.state(), seedPos: mark.pos, booted: this.booted, bootMessage: this.bootMessage, console: this.consoleLines.map((line) => ({ ...line })) },
      pages,
      data,
    });
    this.imageUse = { ...this.imageUse, guest: 'captured' };
  }

  /** The guest's boot task from an image of its end: its memory is in, the seed written; the rest is host-side. */
  private finishBootFromImage(image: BootImage): void {
    const guest = image.guest!;
    this.position.restore(guest.position);
    this.booted = guest.booted;
    this.bootMessage = guest.bootMessage;
    for (const line of guest.console) this.consoleLines.push({ ...line });
  }

  /** Takes the pointers and positions of an image's boot; the prefix must have put the host's own pointers where the image has them. */
  private adoptLayout(image: BootImage): void {
    const layout = image.layout;
    const context = this.context;
    if (contextPointerOf(context) !== layout.contextPointer || context.global.value !== layout.globalPointer) {
      throw new VmFatal(`boot image does not fit this boot: context ${contextPointerOf(context)}/${layout.contextPointer}, global ${String(context.global.value)}/${layout.globalPointer}`);
    }
    this.position.adopt(layout.counterAddress);
    this.position.restore(image.position);
    this.handlerCalls = image.handlerCalls;
    this.randomState.adopt(layout.randomStateAddress);
    const memory = (context as unknown as { memory?: { heapValueHandle?: (ptr: number) => QuickJSHandle } }).memory;
    if (typeof memory?.heapValueHandle !== 'function') throw new VmFatal('quickjs-emscripten has no heapValueHandle: cannot boot from an image with this version');
    this.dispatch = memory.heapValueHandle(layout.dispatchPointer);
  }

  /** Boot format 2: Math.random's seed, from the entropy input, after the boot's clock reading (which starts the guest's clock). */
  private seedRandom(): void {
    this.readClock();
    this.randomState.seed(this.drawEntropy(8));
  }

  private evalScript(code: string, filename: string): QuickJSHandle {
    const result = this.context.evalCode(code, filename, { type: 'global', strict: true });
    if (result.error) {
      const detail = this.context.dump(result.error);
      result.error.dispose();
      throw new VmFatal(`${filename} failed to evaluate: ${JSON.stringify(detail)}`);
    }
    return result.value;
  }

  private calibrate(): void {
    const context = this.context;
    const contextPointer = (context as unknown as { ctx: { value: number } }).ctx.value;
    const run = (iterations: number) => {
      const r = context.evalCode(`for (let i = 0; i < ${iterations}; i++) {}`, 'ftjs:calibrate.js');
      if (r.error) {
        // Say what failed: an engine that cannot run an empty loop is misconfigured (its stack or
        // memory limit), not a guest problem.
        // Plain property reads: dump() runs JSON.stringify, which fails too when the stack limit is broken.
        const read = (key: string) => context.getProp(r.error!, key).consume((h) => (context.typeof(h) === 'string' ? context.getString(h) : ''));
        const why = `${read('name')}: ${read('message')}`;
        r.error.dispose();
        const limits = this.config.limits;
        throw new VmFatal(
          `calibration loop failed at boot (the engine could not run an empty loop): ${why}; limits --max-stack-kb ${limits.maxStackBytes / 1024}, --memory-limit-mb ${limits.memoryLimitBytes / 1024 / 1024}`,
        );
      }
      r.value.dispose();
    };
    this.calibrating = true;
    run(INTERRUPT_SCAN_ITERATIONS);
    this.calibrating = false;
    this.position.settle(contextPointer, run, () => this.handlerCalls);
    // Verify the arithmetic across handler calls: n iterations cost exactly 2n+2 polls plus a fixed overhead.
    const cost = (n: number) => {
      const before = this.position.read();
      run(n);
      return this.position.read() - before;
    };
    const base = cost(0);
    const long = cost(7_000);
    if (long - base !== 14_000) throw new VmFatal(`position arithmetic check failed: 7000 iterations cost ${long - base} polls, expected 14000`);
  }

  private onInterrupt(): boolean {
    this.handlerCalls++;
    this.position.onHandler();
    if (this.calibrating) {
      const contextPointer = (this.context as unknown as { ctx: { value: number } }).ctx.value;
      this.position.scanForCounter(contextPointer);
      return false;
    }
    if (!this.inTask) return false;
    if (this.preempted) {
      // Once preempted, stop every poll of the task until it drains: the rest of the task is then
      // determined by the preemption position alone, on both sides.
      this.position.fireAfter(1);
      return true;
    }
    if (this.port.preempt(this.position.read())) {
      this.preempted = true;
      this.position.fireAfter(1);
      return true;
    }
    return false;
  }

  private readClock(): number {
    if (this.fixedClock) return BOOT_CLOCK_MS;
    const index = this.clockState.reads++;
    const timeMs = this.port.clock(index, this.position.read(), this.clockState.lastMs);
    // The first read (format 1: the Math.random seed inside JS_NewContext; format 2: the boot's clock
    // reading in seedRandom) carries a random fraction; the guest's millisecond clock continues from its
    // integer part.
    this.clockState.lastMs = index === 0 ? Math.floor(timeMs) : timeMs;
    return timeMs;
  }

  // ---------------------------------------------------------------- host calls

  private onHostCall(args: QuickJSHandle[]): QuickJSHandle | undefined {
    const c = this.context;
    const op = c.getNumber(args[0]!);
    if (op !== HostOp.LazyModule) this.hostCallCount++;
    switch (op) {
      case HostOp.Respond:
        this.respond(c.getNumber(args[1]!), c.getString(args[2]!), this.bytesArg(args[3]));
        return undefined;
      case HostOp.Fetch:
        this.startFetch(c.getNumber(args[1]!), c.getString(args[2]!), this.bytesArg(args[3]), c.getNumber(args[4]!));
        return undefined;
      case HostOp.TimerSet:
        this.setTimer(c.getNumber(args[1]!), c.getNumber(args[2]!), c.getNumber(args[3]!));
        return undefined;
      case HostOp.TimerClear:
        this.timers.delete(c.getNumber(args[1]!));
        return undefined;
      case HostOp.Console:
        this.addConsole(CONSOLE_LEVELS[c.getNumber(args[1]!)] ?? 'log', c.getString(args[2]!));
        return undefined;
      case HostOp.Entropy:
        return c.newArrayBuffer(this.drawEntropy(c.getNumber(args[1]!)).slice().buffer);
      case HostOp.RespondHead:
        return this.respondHead(c.getNumber(args[1]!), c.getString(args[2]!)) ? c.true : c.false;
      case HostOp.RespondChunk:
        return this.respondChunk(c.getNumber(args[1]!), this.bytesArg(args[2])) ? c.true : c.false;
      case HostOp.RespondEnd:
        this.respondEnd(c.getNumber(args[1]!), args[2] && c.typeof(args[2]) === 'string' ? c.getString(args[2]) : null);
        return undefined;
      case HostOp.LazyModule: {
        // A pure function of the boot config: the same code at the same position on every node.
        const code = this.lazyModules[c.getString(args[1]!)];
        return code === undefined ? undefined : c.newString(code);
      }
      case HostOp.Booted:
        this.booted = c.getNumber(args[1]!) === 1;
        this.bootMessage = c.getString(args[2]!);
        return undefined;
      case HostOp.FetchAbort: {
        // The guest aborted an outbound fetch: it is no longer pending (go-live will not re-issue
        // it), and the node cancels it once the task's entries are safe (TaskResult.fetchAborts).
        const fetchId = c.getNumber(args[1]!);
        if (!this.fetches.delete(fetchId)) return undefined;
        // Started in this same task: it never leaves at all.
        const started = this.outputs.findIndex((o) => o.kind === 'fetch' && o.fetchId === fetchId);
        if (started >= 0) this.outputs.splice(started, 1);
        else this.fetchAborts.push(fetchId);
        return undefined;
      }
      case HostOp.Crypto:
        return this.cryptoCall(args);
      case HostOp.LazyGlue:
        return this.compileLazyGlue(c.getString(args[1]!));
      default:
        throw new VmFatal(`guest runtime called unknown host op ${op}`);
    }
  }

  /**
   * crypto.subtle: (op, json, ...buffers) → an ArrayBuffer, 0/1 (verify), or [json, ...buffers]
   * (hypervisor/subtle/host-op.ts). Buffers are copied: a node Buffer may be a view of a shared pool.
   */
  private cryptoCall(args: QuickJSHandle[]): QuickJSHandle {
    const c = this.context;
    const buffers = args.slice(2).map((handle) => this.bytesArg(handle));
    const answer = subtleHostOp({ json: c.getString(args[1]!), buffers });
    if (answer instanceof Uint8Array) return c.newArrayBuffer(new Uint8Array(answer).buffer);
    if (typeof answer === 'boolean') return c.newNumber(answer ? 1 : 0);
    const result = c.newArray();
    const parts = [c.newString(answer.json), ...answer.buffers.map((bytes) => c.newArrayBuffer(new Uint8Array(bytes).buffer))];
    parts.forEach((part, index) => {
      c.setProp(result, index, part);
      part.dispose();
    });
    return result;
  }

  /** A body from the guest: an ArrayBuffer, or a string the host encodes as UTF-8 (faster than the interpreter). */
  private bytesArg(handle: QuickJSHandle | undefined): Uint8Array {
    if (!handle) return EMPTY;
    const type = this.context.typeof(handle);
    if (type === 'undefined') return EMPTY;
    if (type === 'string') return utf8.encode(this.context.getString(handle));
    const view = this.context.getArrayBuffer(handle);
    const copy = view.value.slice();
    view.dispose();
    return copy;
  }

  private respond(requestId: number, meta: string, body: Uint8Array): void {
    if (!this.pendingRequests.delete(requestId)) {
      this.addConsole('warn', `ftjs: response to request ${requestId} ignored: it was already answered`);
      return;
    }
    const [status, statusText, headers] = JSON.parse(meta) as [number, string, HeaderList];
    const limit = this.config.limits.maxResponseBytes;
    if (body.byteLength > limit) {
      const message = `response body of ${body.byteLength} bytes exceeds the limit of ${limit} bytes (--max-response-bytes)`;
      this.addConsole('error', `ftjs: request ${requestId}: ${message}`);
      this.outputs.push(errorResponse(requestId, 500, 'Internal Server Error', message));
      return;
    }
    this.outputs.push({ kind: 'response', requestId, status, statusText, headers, body });
  }

  /** The head of a streamed response; false tells the guest to stop reading its stream (no chunk will go out). */
  private respondHead(requestId: number, meta: string): boolean {
    if (!this.pendingRequests.delete(requestId)) {
      this.addConsole('warn', `ftjs: response to request ${requestId} ignored: it was already answered`);
      return false;
    }
    const limit = this.config.limits.maxOpenStreams;
    if (this.streams.size >= limit) {
      const message = `too many streamed responses in progress (limit ${limit}, --max-open-streams)`;
      this.addConsole('error', `ftjs: request ${requestId}: ${message}`);
      this.outputs.push(errorResponse(requestId, 503, 'Service Unavailable', message));
      return false;
    }
    const [status, statusText, headers] = JSON.parse(meta) as [number, string, HeaderList];
    this.streams.set(requestId, 0);
    this.outputs.push({ kind: 'head', requestId, status, statusText, headers, body: EMPTY });
    return true;
  }

  /** One chunk of a streamed response; false (the stream ended, or it ran past its limit) stops the guest reading. */
  private respondChunk(requestId: number, body: Uint8Array): boolean {
    const sent = this.streams.get(requestId);
    if (sent === undefined) return false;
    const limit = this.config.limits.maxStreamedResponseBytes;
    if (sent + body.byteLength > limit) {
      const message = `streamed response body passed the limit of ${limit} bytes (--max-streamed-response-bytes); the response was cut off`;
      this.addConsole('error', `ftjs: request ${requestId}: ${message}`);
      this.endStream(requestId, message);
      return false;
    }
    this.streams.set(requestId, sent + body.byteLength);
    if (body.byteLength > 0) this.outputs.push({ kind: 'chunk', requestId, body });
    return true;
  }

  private respondEnd(requestId: number, error: string | null): void {
    if (this.streams.has(requestId)) this.endStream(requestId, error);
  }

  private endStream(requestId: number, error: string | null): void {
    this.streams.delete(requestId);
    this.outputs.push({ kind: 'end', requestId, error, body: EMPTY });
  }

  private startFetch(fetchId: number, meta: string, body: Uint8Array, owner: number): void {
    const [method, url, headers] = JSON.parse(meta) as [string, string, HeaderList];
    if (this.fetches.size >= this.config.limits.maxPendingFetches) {
      // Completed at once with an error, through the same path as a network failure.
      throw new Error(`too many outbound fetches in flight (limit ${this.config.limits.maxPendingFetches}, --max-pending-fetches)`);
    }
    this.fetches.set(fetchId, { owner, method, url, headers, body });
    this.outputs.push({ kind: 'fetch', fetchId, method, url, headers, body });
  }

  private setTimer(timerId: number, delayMs: number, owner: number): void {
    if (!this.timers.has(timerId) && this.timers.size >= this.config.limits.maxTimers) {
      throw new Error(`too many timers (limit ${this.config.limits.maxTimers}, --max-timers)`);
    }
    this.timers.set(timerId, { deadlineMs: this.readClock() + delayMs, owner });
  }

  private addConsole(level: ConsoleLevel, text: string): void {
    const limits = this.config.limits;
    if (this.consoleLines.length >= limits.maxConsoleLinesPerTask) {
      this.consoleDropped++;
      return;
    }
    if (text.length > limits.maxConsoleLineBytes) text = `${text.slice(0, limits.maxConsoleLineBytes)}… [${text.length - limits.maxConsoleLineBytes} more characters cut]`;
    this.consoleLines.push({ level, text });
  }

  private drawEntropy(length: number): Uint8Array {
    if (!(length >= 0 && length <= MAX_ENTROPY_REQUEST_BYTES)) throw new RangeError(`entropy request of ${length} bytes`);
    if (length > ENTROPY_POOL_BYTES) return this.port.entropy(length, this.position.read());
    if (this.entropyPool.byteLength - this.entropyOffset < length) {
      this.entropyPool = this.port.entropy(ENTROPY_POOL_BYTES, this.position.read());
      this.entropyOffset = 0;
    }
    const bytes = this.entropyPool.subarray(this.entropyOffset, this.entropyOffset + length);
    this.entropyOffset += length;
    return bytes;
  }

  // ---------------------------------------------------------------- tasks

  /** Live: runs one event as a task, recording every input. */
  runLive(event: LiveEvent): TaskResult {
    this.assertMode('live');
    const pos = this.position.read();
    switch (event.kind) {
      case 'request': {
        const request: RequestEvent = { requestId: this.nextRequestId, method: event.method, url: event.url, headers: event.headers, body: event.body };
        return this.execute({ kind: Kind.Request, pos, payload: encodeRequestEvent(request) }, { kind: Kind.Request, event: request }, null);
      }
      case 'timer':
        return this.execute({ kind: Kind.Timer, pos, payload: encodeTimerEvent({ timerId: event.timerId }) }, { kind: Kind.Timer, event }, null);
      case 'fetch-result':
        return this.execute({ kind: Kind.FetchResult, pos, payload: encodeFetchResultEvent(event.result) }, { kind: Kind.FetchResult, event: event.result }, null);
      case 'scheduled':
        return this.execute({ kind: Kind.Scheduled, pos, payload: encodeScheduledEvent(event.event) }, { kind: Kind.Scheduled, event: event.event }, null);
      case 'stream-cancel':
        return this.execute({ kind: Kind.StreamCancel, pos, payload: encodeStreamCancelEvent({ requestId: event.requestId }) }, { kind: Kind.StreamCancel, event }, null);
    }
  }

  /** Live: the boot task (evaluation of the guest module). */
  bootLive(): TaskResult {
    this.assertMode('live');
    return this.execute({ kind: Kind.Boot, pos: this.position.read(), payload: EMPTY }, { kind: Kind.Boot }, null);
  }

  /** Replay: runs one recorded task (its start entry through its TaskEnd entry). */
  replay(task: Entry[]): TaskResult {
    this.assertMode('replay');
    const start = task[0]!;
    const pos = this.position.read();
    if (start.pos !== pos) {
      this.port.diverge(start.seq, pos, kindName[start.kind] ?? '?', `task start at pos ${start.pos}`, `VM is at pos ${pos}`);
      return { entries: [], kind: kindName[start.kind] ?? '?', requestId: 0, outputs: [], fetchAborts: [], console: [], preempted: false, pos, divergence: this.port.divergence() };
    }
    return this.execute(start, decodeStart(start), task);
  }

  private assertMode(mode: 'live' | 'replay'): void {
    if (this.port.mode !== mode) throw new VmFatal(`VM is in ${this.port.mode} mode, asked to run a ${mode} task`);
    if (this.inTask) throw new VmFatal('task started inside a task');
  }

  private execute(start: RawEntry, decoded: StartEvent, recorded: Entry[] | null): TaskResult {
    if (!this.engineBooted && decoded.kind !== Kind.Boot) throw new VmFatal('the first task must be the boot task');
    this.inTask = true;
    this.preempted = false;
    this.outputs = [];
    this.fetchAborts = [];
    this.consoleLines = [];
    this.consoleDropped = 0;
    this.entries = recorded ? [] : [start];
    this.port.beginTask(recorded ? recorded.slice(1) : null);
    let owner = 0;
    let requestId = 0;
    let guestStarted = 0;
    try {
      switch (decoded.kind) {
        case Kind.Request: {
          const event = decoded.event;
          if (event.requestId !== this.nextRequestId) {
            this.port.diverge((start as Entry).seq, start.pos, 'Request', `request id ${event.requestId}`, `next request id ${this.nextRequestId}`);
          }
          this.nextRequestId = event.requestId + 1;
          requestId = owner = event.requestId;
          this.pendingRequests.add(requestId);
          // For an Idempotency-Key, the glue compares a retry's body by digest (hashed here, natively).
          const keyed = event.headers.some(([name]) => name === 'idempotency-key');
          const bodyDigest = keyed ? createHash('sha256').update(event.body).digest('hex').slice(0, 32) : '';
          this.deliver(GuestEvent.Request, requestId, JSON.stringify([event.method, event.url, event.headers, bodyDigest]), event.body);
          break;
        }
        case Kind.Timer: {
          const { timerId } = decoded.event;
          owner = this.timers.get(timerId)?.owner ?? 0;
          this.timers.delete(timerId);
          this.deliver(GuestEvent.Timer, timerId, '', EMPTY);
          break;
        }
        case Kind.StreamCancel: {
          // The client went away: the response ends here (nothing more can reach it) and the guest's
          // stream is cancelled. A stream that already ended makes this task a no-op.
          const { requestId: id } = decoded.event;
          owner = id;
          if (this.streams.has(id)) {
            this.endStream(id, 'the client went away');
            this.deliver(GuestEvent.StreamCancel, id, '', EMPTY);
          }
          break;
        }
        case Kind.FetchResult: {
          const result = decoded.event;
          owner = this.fetches.get(result.fetchId)?.owner ?? 0;
          this.fetches.delete(result.fetchId);
          this.deliver(GuestEvent.FetchResult, result.fetchId, JSON.stringify([result.error, result.status, result.statusText, result.headers]), result.body);
          break;
        }
        case Kind.Scheduled: {
          const { cron, scheduledTimeMs } = decoded.event;
          this.deliver(GuestEvent.Scheduled, scheduledTimeMs, cron, EMPTY);
          break;
        }
        case Kind.Boot:
          if (this.engineBooted) throw new VmFatal('the VM was booted twice');
          // The engine and the hypervisor's glue boot outside the guest's CPU budget (positions still
          // count, identically on both sides); the budget starts with the guest module's evaluation.
          this.inTask = false;
          this.bootSequence();
          this.inTask = true;
          this.port.restartBudget?.();
          if (this.config.bootFormat === BOOT_FORMAT) this.seedRandom();
          guestStarted = performance.now();
          if (this.guestImage) {
            this.finishBootFromImage(this.guestImage);
            break;
          }
          if (this.config.bootFormat === BOOT_FORMAT) this.markGuestPhase();
          if (this.config.preload?.includes('streams')) {
            // Reading the global loads the module (hypervisor/guest/web/lazy.js): what the guest's first
            // use would do, before any guest code, so that the guest's image holds it. Not the guest's work.
            this.evalScript('void globalThis.ReadableStream;', 'ftjs:preload.js').dispose();
            this.port.restartBudget?.();
          }
          this.deliver(
            GuestEvent.Boot,
            0,
            `./${this.config.entry}`,
            JSON.stringify({
              env: this.config.env,
              idempotency: { maxKeys: this.config.limits.idempotencyMaxKeys, ttlMs: this.config.limits.idempotencyTtlMs },
              responseTimeoutMs: this.config.limits.responseTimeoutMs,
            }),
          );
          break;
      }
      this.drainJobs();
    } finally {
      this.inTask = false;
    }
    const preempted = this.preempted;
    if (preempted) {
      const budget = this.config.limits.taskBudgetMs;
      const message = `the request ran past its CPU budget of ${budget} ms (--task-budget-ms) and was stopped`;
      this.addConsole('error', `ftjs: task preempted: it ran past its CPU budget of ${budget} ms (--task-budget-ms)`);
      // A streamed response whose producer was stopped is cut off (the guest's next chunk is refused).
      if (owner && this.streams.has(owner)) this.endStream(owner, message);
      if (owner && this.pendingRequests.delete(owner)) {
        this.outputs.push(errorResponse(owner, 503, 'Service Unavailable', message));
        // Tell the guest glue (still inside this task, so replay does the same): a retry of an
        // idempotent request must run afresh, and anyone waiting on it gets the 503 too.
        this.preempted = false;
        this.inTask = true;
        this.port.restartBudget?.();
        try {
          this.deliver(GuestEvent.Aborted, owner, message, EMPTY);
          this.drainJobs();
        } finally {
          this.inTask = false;
        }
      }
    }
    if (this.consoleDropped > 0) {
      this.consoleLines.push({ level: 'warn', text: `ftjs: ${this.consoleDropped} console lines dropped (limit ${this.config.limits.maxConsoleLinesPerTask} per task)` });
      this.consoleDropped = 0;
    }
    this.tasks++;
    const pos = this.position.read();
    // Console lines name original file:line (stack-map.ts) wherever they go: the log, a trace's outputs
    // record, a replay. The mapping is a pure function of the boot config, so the hash covers the
    // mapped lines, and a trace reader can check a whole record against it.
    const consoleLines = this.stacks.hasMaps ? this.consoleLines.map((l) => ({ level: l.level, text: this.stacks.mapText(l.text) })) : this.consoleLines;
    const hash = taskHash(this.outputs, consoleLines);
    const outputCount = this.outputs.length + this.consoleLines.length;
    const end = this.port.endTask(pos);
    if (end) {
      const expected = decodeTaskEnd(end.payload);
      if (end.pos !== pos) this.port.diverge(end.seq, pos, 'TaskEnd', `task end at pos ${end.pos}`, `task ended at pos ${pos}`);
      else if (!bytesEqual(expected.hash, hash) || expected.outputCount !== outputCount) {
        this.port.diverge(end.seq, pos, 'TaskEnd', `${expected.outputCount} outputs, hash ${hex(expected.hash)}`, `${outputCount} outputs, hash ${hex(hash)}`);
      }
    } else {
      this.entries.push({ kind: Kind.TaskEnd, pos, payload: encodeTaskEnd({ outputCount, hash }) });
    }
    if (decoded.kind === Kind.Boot) {
      this.bootTimings.guestMs = performance.now() - guestStarted;
      this.keepGuestImage(preempted);
    }
    if (decoded.kind === Kind.Boot && !this.booted && !this.port.divergence()) {
      throw new BootError(
        this.bootMessage
          ? this.stacks.mapText(this.bootMessage)
          : `the guest module "${this.config.entry}" did not finish evaluating in its boot task (top-level await on something that never settles?)`,
      );
    }
    const entries = this.entries;
    this.entries = [];
    return { entries, kind: kindName[start.kind] ?? '?', requestId, outputs: this.outputs, fetchAborts: this.fetchAborts, console: consoleLines, preempted, pos, divergence: this.port.divergence() };
  }

  private deliver(kind: number, id: number, meta: string, body: Uint8Array | string): void {
    if (this.calls) return this.calls.callEvent(this.dispatch, kind, id, meta, body, (error) => this.guestError('event delivery', error));
    const c = this.context;
    const bodyHandle = typeof body === 'string' ? c.newString(body) : body.byteLength > 0 ? c.newArrayBuffer(body.slice().buffer) : c.undefined;
    const args = [c.newNumber(kind), c.newNumber(id), c.newString(meta), bodyHandle];
    try {
      const result = c.callFunction(this.dispatch, c.undefined, ...args);
      if (result.error) this.guestError('event delivery', result.error);
      else result.value.dispose();
    } finally {
      for (const a of args) a.dispose();
    }
  }

  private drainJobs(): void {
    const calls = this.calls;
    if (calls) {
      // The engine runs jobs until none is left or one throws: a round ends empty or with an exception.
      for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
        if (!calls.hasPendingJob()) return;
        const error = calls.executePendingJobs();
        if (!error) return;
        this.guestError('promise job', error);
      }
      throw new VmFatal(`task did not reach quiescence within ${MAX_DRAIN_ROUNDS} job rounds`);
    }
    for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
      if (!this.runtime.hasPendingJob()) return;
      const result = this.runtime.executePendingJobs();
      if (result.error) this.guestError('promise job', result.error);
      else result.dispose();
    }
    throw new VmFatal(`task did not reach quiescence within ${MAX_DRAIN_ROUNDS} job rounds`);
  }

  private guestError(where: string, error: QuickJSHandle): void {
    const detail = this.context.dump(error) as { name?: string; message?: string; stack?: string } | string;
    error.dispose();
    const text = typeof detail === 'object' && detail !== null ? `${detail.name ?? 'Error'}: ${detail.message ?? ''}${detail.stack ? `\n${detail.stack}` : ''}` : String(detail);
    this.addConsole('error', `Uncaught (${where}) ${text}`);
  }

  // ---------------------------------------------------------------- inspection

  /**
   * Runs `body` on the guest's context outside any task, for a scratch copy of a VM only (the
   * debugger's eval, vm-eval.ts): a replaying or serving VM never calls it. Whatever `body` changes
   * stays in this VM; outputs are counted and dropped, console lines come back with stacks mapped.
   */
  runScratch<T>(body: (scope: ScratchScope) => T): { value: T; console: ConsoleLine[]; outputsDiscarded: number } {
    if (!this.engineBooted) throw new VmFatal('eval: the guest has not booted yet');
    if (this.inTask) throw new VmFatal('eval inside a task');
    this.inTask = true;
    this.preempted = false;
    this.outputs = [];
    this.consoleLines = [];
    this.consoleDropped = 0;
    this.port.restartBudget?.();
    const vm = this;
    const scope: ScratchScope = {
      context: this.context,
      entry: this.config.entry,
      get preempted() {
        return vm.preempted;
      },
      restartBudget: () => {
        this.preempted = false;
        this.port.restartBudget?.();
      },
      drainJobs: () => this.drainJobs(),
      evalScript: (code, filename) => this.evalScript(code, filename),
      mapText: (text) => this.stacks.mapText(text),
    };
    try {
      const value = body(scope);
      const console = this.consoleLines.map((l) => ({ level: l.level, text: this.stacks.mapText(l.text) }));
      return { value, console, outputsDiscarded: this.outputs.length };
    } finally {
      this.inTask = false;
      this.outputs = [];
      this.consoleLines = [];
    }
  }

  // ---------------------------------------------------------------- queries

  /** The next timer to fire: earliest deadline, then lowest id. */
  nextTimer(): { timerId: number; deadlineMs: number } | null {
    let best: { timerId: number; deadlineMs: number } | null = null;
    for (const [timerId, { deadlineMs }] of this.timers) {
      if (!best || deadlineMs < best.deadlineMs || (deadlineMs === best.deadlineMs && timerId < best.timerId)) best = { timerId, deadlineMs };
    }
    return best;
  }

  /** Streamed responses in progress: a node that goes live has no client for them (go-live cancels them). */
  get openStreams(): number[] {
    return [...this.streams.keys()];
  }

  /** Outbound fetches started and not completed (go-live re-issues them). */
  pendingFetches(): Array<Extract<Output, { kind: 'fetch' }>> {
    return [...this.fetches].map(([fetchId, f]) => ({ kind: 'fetch', fetchId, method: f.method, url: f.url, headers: f.headers, body: f.body }));
  }

  /** The time the guest last saw. */
  get guestTimeMs(): number {
    return this.clockState.lastMs;
  }

  devices(): DeviceState {
    return {
      position: this.position.state(),
      clockReads: this.clockState.reads,
      clockLastMs: this.clockState.lastMs,
      entropyPool: Buffer.from(this.entropyPool).toString('base64'),
      entropyOffset: this.entropyOffset,
      nextRequestId: this.nextRequestId,
      pendingRequests: [...this.pendingRequests],
      timers: [...this.timers].map(([id, t]) => [id, t.deadlineMs, t.owner]),
      ...(this.streams.size > 0 ? { streams: [...this.streams] } : {}),
      fetches: [...this.fetches].map(([id, f]) => [id, f.owner, f.method, f.url, f.headers, Buffer.from(f.body).toString('base64')]),
      tasks: this.tasks,
    };
  }

  /** The state hash over the whole VM state: linear memory and device tables (state-hash.ts). Only between tasks. */
  stateHash(): string {
    if (this.inTask) throw new VmFatal('stateHash inside a task');
    // The state changes only by running tasks: a hash at the same task count and position still holds.
    const at = `${this.tasks}:${this.position.read()}`;
    if (this.cachedHash?.at !== at) this.cachedHash = { at, hash: this.memoryTracker.stateHash(JSON.stringify(this.devices())) };
    return this.cachedHash.hash;
  }

  /**
   * A snapshot whose memory is the kept copy (memory-tracker.ts), brought up to date by copying only
   * the pages written since its last round; the copy is shared, and stays as it is until
   * memoryTracker.releaseCopy(). Carries its state hash and page hashes.
   */
  leaseSnapshot(): Snapshot {
    if (this.inTask) throw new VmFatal('snapshot inside a task');
    const stateHash = this.stateHash();
    const { memory, lease } = this.memoryTracker.leaseCopy();
    return {
      engine: `${ENGINE_NAME}@${ENGINE_VERSION}`,
      guestHash: this.config.guestHash,
      memory,
      devices: this.devices(),
      stateHash,
      pageHashes: this.memoryTracker.pageHashes(),
      lease,
    };
  }

  private cachedHash: { at: string; hash: string } | null = null;

  /**
   * The live linear memory, not copied: for comparing two VMs between tasks without copying each
   * (the simulator's divergence check). Its tracking map is not state (withoutTrackingMap). Read it
   * at once and never write it: the next task changes it, and a growth detaches it.
   */
  memoryView(): Uint8Array {
    if (this.inTask) throw new VmFatal('memory view inside a task');
    return new Uint8Array(this.engine.memory.buffer);
  }

  snapshot(): Snapshot {
    if (this.inTask) throw new VmFatal('snapshot inside a task');
    return {
      engine: `${ENGINE_NAME}@${ENGINE_VERSION}`,
      guestHash: this.config.guestHash,
      memory: withoutTrackingMap(new Uint8Array(this.engine.memory.buffer).slice()),
      devices: this.devices(),
    };
  }

  /**
   * The replay debugger's fast restore: puts this VM back to `snapshot` (taken of a VM of the same boot
   * config, between tasks) in place, without booting a new engine. Possible only while this VM's memory
   * is as large as the snapshot's (WASM memory never shrinks); returns false otherwise, and the caller
   * boots a fresh VM from the snapshot (Vm.create) instead.
   */
  rewindInPlace(snapshot: Snapshot): boolean {
    if (this.inTask) throw new VmFatal('rewind inside a task');
    if (!this.engineBooted || snapshot.guestHash !== this.config.guestHash || snapshot.memory.byteLength !== this.engine.memory.buffer.byteLength) return false;
    this.restore(snapshot);
    this.cachedHash = null;
    return true;
  }

  private restore(snapshot: Snapshot): void {
    const memory = new Uint8Array(this.engine.memory.buffer);
    if (memory.byteLength !== snapshot.memory.byteLength) {
      throw new BootError(`snapshot memory is ${snapshot.memory.byteLength} bytes, the fresh VM has ${memory.byteLength}`);
    }
    memory.set(snapshot.memory);
    this.memoryTracker.invalidateAll();
    const d = snapshot.devices;
    this.position.restore(d.position);
    this.clockState.reads = d.clockReads;
    this.clockState.lastMs = d.clockLastMs;
    this.entropyPool = new Uint8Array(Buffer.from(d.entropyPool, 'base64'));
    this.entropyOffset = d.entropyOffset;
    this.nextRequestId = d.nextRequestId;
    this.pendingRequests.clear();
    for (const id of d.pendingRequests) this.pendingRequests.add(id);
    this.timers.clear();
    for (const [id, deadlineMs, owner] of d.timers) this.timers.set(id, { deadlineMs, owner });
    this.streams.clear();
    for (const [id, bytes] of d.streams ?? []) this.streams.set(id, bytes);
    this.fetches.clear();
    for (const [id, owner, method, url, headers, body] of d.fetches) this.fetches.set(id, { owner, method, url, headers, body: new Uint8Array(Buffer.from(body, 'base64')) });
    this.tasks = d.tasks;
  }
}

const INTERRUPT_SCAN_ITERATIONS = 20_000;
/** Boot format 2: what the engine's clock read inside JS_NewContext returns (the real seed comes after the glue). */
const BOOT_CLOCK_MS = 0;

function contextPointerOf(context: QuickJSContext): number {
  return (context as unknown as { ctx: { value: number } }).ctx.value;
}

type StartEvent =
  | { kind: typeof Kind.Request; event: RequestEvent }
  | { kind: typeof Kind.Timer; event: { timerId: number } }
  | { kind: typeof Kind.FetchResult; event: FetchResultEvent }
  | { kind: typeof Kind.Scheduled; event: ScheduledEvent }
  | { kind: typeof Kind.StreamCancel; event: { requestId: number } }
  | { kind: typeof Kind.Boot };

function decodeStart(start: Entry): StartEvent {
  switch (start.kind) {
    case Kind.Request:
      return { kind: Kind.Request, event: decodeRequestEvent(start.payload) };
    case Kind.Timer:
      return { kind: Kind.Timer, event: decodeTimerEvent(start.payload) };
    case Kind.FetchResult:
      return { kind: Kind.FetchResult, event: decodeFetchResultEvent(start.payload) };
    case Kind.Scheduled:
      return { kind: Kind.Scheduled, event: decodeScheduledEvent(start.payload) };
    case Kind.StreamCancel:
      return { kind: Kind.StreamCancel, event: decodeStreamCancelEvent(start.payload) };
    case Kind.Boot:
      return { kind: Kind.Boot };
    default:
      throw new VmFatal(`seq ${start.seq}: entry kind ${kindName[start.kind] ?? start.kind} does not start a task`);
  }
}

/** Answers boot-time clock reads of a VM that is about to be overwritten by a snapshot. */
class NullPort implements InputPort {
  readonly mode = 'live' as const;
  beginTask(): void {}
  endTask(): null {
    return null;
  }
  diverge(): void {}
  clock(): number {
    return 0;
  }
  entropy(length: number): Uint8Array {
    return new Uint8Array(length);
  }
  preempt(): boolean {
    return false;
  }
  divergence(): Divergence | null {
    return null;
  }
}

function errorResponse(requestId: number, status: number, statusText: string, message: string): Output {
  return {
    kind: 'response',
    requestId,
    status,
    statusText,
    headers: [['content-type', 'application/json']],
    body: new TextEncoder().encode(JSON.stringify({ error: message })),
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
