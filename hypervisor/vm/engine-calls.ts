// The VM's per-event crossings into the engine, made on quickjs-emscripten's low-level FFI (the QTS_*
// exports) instead of through its handle API. Issue 19: the handle API wraps every value in a Lifetime,
// every host call in a Scope run by a generator, every job drain in a result object; per kv request
// that glue cost more than the crossings themselves.
//
// Determinism: each method makes exactly the engine calls, allocations and writes into linear memory
// that the handle API makes for the same operation, in the same order (the comments name the API call
// each step mirrors). So the VM's memory, and with it every state hash, snapshot and trace, is the
// same bit for bit as before; test/engine-calls.test.ts runs both side by side and compares memory
// after every task. What goes is only host-side JS: handle objects, scopes, generators, lookups.
// The module's private shape is checked at construction, against the pinned engine version.

import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten-core';

/** The QTS_* exports used here (emscripten cwrap of all-number signatures: the wasm functions themselves). */
interface Ffi {
  QTS_NewFloat64(ctx: number, value: number): number;
  QTS_NewString(ctx: number, chars: number): number;
  QTS_NewArrayBuffer(ctx: number, bytes: number, length: number): number;
  QTS_Call(ctx: number, fn: number, thisVal: number, argc: number, argv: number): number;
  QTS_ResolveException(ctx: number, value: number): number;
  QTS_FreeValuePointer(ctx: number, value: number): void;
  QTS_FreeValuePointerRuntime(rt: number, value: number): void;
  QTS_DupValuePointer(ctx: number, value: number): number;
  QTS_Throw(ctx: number, error: number): number;
  QTS_GetUndefined(): number;
  QTS_GetFloat64(ctx: number, value: number): number;
  QTS_Typeof(ctx: number, value: number): number;
  QTS_IsJobPending(rt: number): number;
  QTS_ExecutePendingJob(rt: number, maxJobs: number, lastContext: number): number;
  QTS_ArgvGetJSValueConstPointer(argv: number, index: number): number;
}

interface EmscriptenModule {
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  HEAPU8: Uint8Array;
  lengthBytesUTF8(text: string): number;
  stringToUTF8(text: string, pointer: number, maxBytes: number): void;
}

/** What quickjs-emscripten 0.32's QuickJSContext holds privately, as far as it is used here. */
interface ContextInternals {
  ffi: Ffi;
  module: EmscriptenModule;
  ctx: { value: number };
  rt: { value: number };
  memory: { heapValueHandle(pointer: number): QuickJSHandle };
  cToHostCallbacks: { callFunction: (ctx: number, thisPtr: number, argc: number, argv: number, fnId: number) => number };
  errorToHandle(error: unknown): QuickJSHandle;
  getFunction(fnId: number): (this: QuickJSHandle, ...args: QuickJSHandle[]) => HostResult;
}

/** What a host function (context.newFunction) may return: a handle, a call result, or nothing. */
type HostResult = QuickJSHandle | { value: QuickJSHandle; error?: undefined } | { error: QuickJSHandle } | undefined;

/** The outcome of a call or a job drain: null, or the guest's exception (an owned handle). */
export type GuestException = QuickJSHandle | null;

export class EngineCalls {
  private readonly ffi: Ffi;
  private readonly module: EmscriptenModule;
  private readonly internals: ContextInternals;
  private readonly ctx: number;
  private readonly rt: number;
  private readonly undefinedPointer: number;

  constructor(runtime: QuickJSRuntime, context: QuickJSContext) {
    const internals = context as unknown as ContextInternals;
    const rt = (runtime as unknown as { rt?: { value?: number } }).rt?.value;
    const ffi = internals.ffi;
    const module = internals.module;
    const missing = [
      ...[
        'QTS_NewFloat64',
        'QTS_NewString',
        'QTS_NewArrayBuffer',
        'QTS_Call',
        'QTS_ResolveException',
        'QTS_FreeValuePointer',
        'QTS_FreeValuePointerRuntime',
        'QTS_DupValuePointer',
        'QTS_Throw',
        'QTS_GetUndefined',
        'QTS_GetFloat64',
        'QTS_Typeof',
        'QTS_IsJobPending',
        'QTS_ExecutePendingJob',
        'QTS_ArgvGetJSValueConstPointer',
      ].filter((name) => typeof (ffi as unknown as Record<string, unknown>)?.[name] !== 'function'),
      ...['_malloc', '_free', 'lengthBytesUTF8', 'stringToUTF8'].filter((name) => typeof (module as unknown as Record<string, unknown>)?.[name] !== 'function'),
      ...(!(module?.HEAPU8 instanceof Uint8Array) ? ['HEAPU8'] : []),
      ...(typeof internals.cToHostCallbacks?.callFunction !== 'function' ? ['cToHostCallbacks.callFunction'] : []),
      ...(typeof internals.errorToHandle !== 'function' ? ['errorToHandle'] : []),
      ...(typeof internals.getFunction !== 'function' ? ['getFunction'] : []),
      ...(typeof internals.memory?.heapValueHandle !== 'function' ? ['memory.heapValueHandle'] : []),
      ...(typeof internals.ctx?.value !== 'number' ? ['ctx'] : []),
      ...(typeof rt !== 'number' ? ['runtime.rt'] : []),
    ];
    if (missing.length > 0) throw new Error(`quickjs-emscripten's internals are not the ones this VM was built on (missing ${missing.join(', ')}): pin the engine version`);
    this.internals = internals;
    this.ffi = ffi;
    this.module = module;
    this.ctx = internals.ctx.value;
    this.rt = rt!;
    this.undefinedPointer = ffi.QTS_GetUndefined();
  }

  /**
   * Calls `fn(kind, id, meta, body)` with this as undefined; as the handle API's
   * `callFunction(fn, undefined, newNumber(kind), newNumber(id), newString(meta), body handle)` then
   * disposing the result and the arguments would. If the guest threw, `onException` gets its
   * exception (to consume) before the arguments are freed, where vm.ts's handler ran on that path.
   */
  callEvent(fn: QuickJSHandle, kind: number, id: number, meta: string, body: Uint8Array | string, onException: (error: QuickJSHandle) => void): void {
    const { ffi, ctx } = this;
    // The body handle first (vm.ts built it before the others): newString, newArrayBuffer or undefined.
    const bodyPointer = typeof body === 'string' ? this.newString(body) : body.byteLength > 0 ? this.newArrayBuffer(body) : 0;
    const kindPointer = ffi.QTS_NewFloat64(ctx, kind);
    const idPointer = ffi.QTS_NewFloat64(ctx, id);
    const metaPointer = this.newString(meta);
    // memory.toPointerArray(args): the argument vector, malloc'd, freed after the call.
    const argv = this.module._malloc(16);
    const slots = new Int32Array(this.module.HEAPU8.buffer, argv, 4);
    slots[0] = kindPointer;
    slots[1] = idPointer;
    slots[2] = metaPointer;
    slots[3] = bodyPointer === 0 ? this.undefinedPointer : bodyPointer;
    try {
      const result = ffi.QTS_Call(ctx, fn.value as number, this.undefinedPointer, 4, argv);
      this.module._free(argv);
      const error = ffi.QTS_ResolveException(ctx, result);
      // Success: the caller disposed the result at once; failure: callFunction freed it and handed the error over.
      ffi.QTS_FreeValuePointer(ctx, result);
      if (error) onException(this.internals.memory.heapValueHandle(error));
    } finally {
      // The arguments' handles, disposed in order (undefined is static: nothing to free).
      ffi.QTS_FreeValuePointer(ctx, kindPointer);
      ffi.QTS_FreeValuePointer(ctx, idPointer);
      ffi.QTS_FreeValuePointer(ctx, metaPointer);
      if (bodyPointer !== 0) ffi.QTS_FreeValuePointer(ctx, bodyPointer);
    }
  }

  /** Whether the job queue holds a job (runtime.hasPendingJob). */
  hasPendingJob(): boolean {
    return this.ffi.QTS_IsJobPending(this.rt) !== 0;
  }

  /**
   * Runs every pending job (runtime.executePendingJobs(-1)). Returns the exception that stopped the
   * queue, or null once it is empty. The engine's loop runs until no job is left, so after null the
   * queue is empty (test/engine-calls.test.ts checks this on chained promises).
   */
  executePendingJobs(): GuestException {
    const { ffi, module, rt } = this;
    // memory.newMutablePointerArray(1): a zeroed slot for the context of the last job.
    const slot = module._malloc(4);
    new Int32Array(module.HEAPU8.buffer, slot, 1)[0] = 0;
    const value = ffi.QTS_ExecutePendingJob(rt, -1, slot);
    const jobContext = new Int32Array(module.HEAPU8.buffer, slot, 1)[0]!;
    module._free(slot);
    if (jobContext === 0) {
      ffi.QTS_FreeValuePointerRuntime(rt, value);
      return null;
    }
    if (jobContext !== this.ctx) throw new Error(`a promise job ran in context ${jobContext}, not the guest's (${this.ctx})`);
    // context.typeof(result): the engine writes the type name into a fresh C string, the host frees it.
    // Only "number" starts with "n": the count of jobs run; anything else is the exception.
    const typeName = ffi.QTS_Typeof(this.ctx, value);
    const isNumber = module.HEAPU8[typeName] === 0x6e;
    module._free(typeName);
    if (!isNumber) return this.internals.memory.heapValueHandle(value);
    // context.getNumber(result): the count is not needed, but the call stays. Like every engine call it
    // leaves its locals on the wasm stack, in linear memory: without it the memory would differ.
    ffi.QTS_GetFloat64(this.ctx, value);
    ffi.QTS_FreeValuePointer(this.ctx, value);
    return null;
  }

  /**
   * Runs the context's host functions (newFunction) directly, instead of through the handle API's
   * generator-run Scope. As that path does: arguments are borrowed pointers (nothing to free); a result
   * handle is duplicated for the engine and then disposed; a thrown Error becomes a guest Error thrown
   * by QTS_Throw. The argument handles a function receives are valid only during the call.
   */
  routeHostCalls(): void {
    const { ffi, ctx } = this;
    this.internals.cToHostCallbacks.callFunction = (callCtx, thisPtr, argc, argv, fnId) => {
      if (callCtx !== ctx) throw new Error(`host call from context ${callCtx}, not the guest's (${ctx})`);
      const fn = this.internals.getFunction(fnId);
      const args = new Array<QuickJSHandle>(argc);
      for (let i = 0; i < argc; i++) args[i] = borrowed(ffi.QTS_ArgvGetJSValueConstPointer(argv, i));
      try {
        const result = fn.apply(borrowed(thisPtr), args);
        if (!result) return 0;
        if (!isHandle(result) && result.error) throw result.error;
        const handle = isHandle(result) ? result : result.value;
        const dup = ffi.QTS_DupValuePointer(ctx, handle.value as number);
        if (handle.alive) handle.dispose();
        return dup;
      } catch (error) {
        const handle = this.internals.errorToHandle(error);
        const thrown = ffi.QTS_Throw(ctx, handle.value as number);
        handle.dispose();
        return thrown;
      }
    };
  }

  /** context.newString: the text as a malloc'd C string, the engine's string made from it, the C string freed. */
  private newString(text: string): number {
    const module = this.module;
    const bytes = module.lengthBytesUTF8(text) + 1;
    const chars = module._malloc(bytes);
    module.stringToUTF8(text, chars, bytes);
    const value = this.ffi.QTS_NewString(this.ctx, chars);
    module._free(chars);
    return value;
  }

  /** context.newArrayBuffer: the bytes copied into a malloc'd buffer the engine's ArrayBuffer then owns. */
  private newArrayBuffer(bytes: Uint8Array): number {
    const module = this.module;
    const pointer = module._malloc(bytes.byteLength);
    module.HEAPU8.set(bytes, pointer);
    return this.ffi.QTS_NewArrayBuffer(this.ctx, pointer, bytes.byteLength);
  }
}

/**
 * A handle (a Lifetime), not a call result ({ value } or { error }). The handle API tests `instanceof
 * Lifetime`; only a Lifetime can dup (its results cannot), and this file does not load the library.
 */
function isHandle(result: NonNullable<HostResult>): result is QuickJSHandle {
  return typeof (result as { dup?: unknown }).dup === 'function';
}

/**
 * A borrowed argument, shaped as the handle API reads one (value; no owner, so any runtime accepts it;
 * alive). Its dispose does nothing, as a WeakLifetime's.
 */
function borrowed(pointer: number): QuickJSHandle {
  return { value: pointer, alive: true, owner: undefined, dispose() {} } as unknown as QuickJSHandle;
}
