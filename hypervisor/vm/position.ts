// The VM's position: the exact number of QuickJS interrupt polls executed since boot.
//
// QuickJS decrements `ctx->interrupt_counter` at every poll point (calls, backward and conditional
// jumps...). When it drops to zero or below, the engine resets it to JS_INTERRUPT_COUNTER_INIT and calls
// our handler. So position = polls accounted at the last handler call + (counter start - counter now).
// The counter's offset inside JSContext is found at boot by scanning for the reset value inside the
// handler, then verified with loops of known cost: never hard-coded (notes/quickjs.md).

export const INTERRUPT_COUNTER_INIT = 10_000;
/** How far into JSContext the counter may lie; the measured offset was 232 bytes. */
const CONTEXT_SCAN_BYTES = 1024;

export class PositionError extends Error {
  override name = 'PositionError';
}

export interface PositionState {
  /** Polls accounted up to the last handler call (or counter write). */
  basePolls: number;
  /** The counter's value right after the last reset or write. */
  counterStart: number;
}

export class Position {
  private basePolls = 0;
  // A fresh context's counter is 0: the very first poll calls the handler.
  private counterStart = 0;
  private counterAddress = -1;
  private candidates: number[] | null = null;

  constructor(private readonly memory: WebAssembly.Memory) {}

  get calibrated(): boolean {
    return this.counterAddress >= 0;
  }

  /** Byte address of the counter in linear memory (part of a boot image's layout). */
  get address(): number {
    return this.counterAddress;
  }

  /** Takes the counter's address from a boot image of the same engine and glue instead of calibrating. */
  adopt(address: number): void {
    if (!(address > 0 && address % 4 === 0)) throw new PositionError(`interrupt counter address ${address} is not an aligned address`);
    this.counterAddress = address;
    this.candidates = null;
  }

  private heap(): Int32Array {
    return new Int32Array(this.memory.buffer);
  }

  /** Must be the first thing the interrupt handler does: accounts the polls that led to this call. */
  onHandler(): void {
    // Decrementing from `counterStart` to <= 0 takes max(counterStart, 1) polls.
    this.basePolls += Math.max(this.counterStart, 1);
    this.counterStart = INTERRUPT_COUNTER_INIT;
  }

  /** Current exact position. Zero until calibrated (boot is identical on every run, so that is exact too). */
  read(): number {
    if (this.counterAddress < 0) return 0;
    const counter = this.heap()[this.counterAddress >> 2]!;
    const pos = this.basePolls + (this.counterStart - counter);
    return pos;
  }

  /** Make the handler fire after exactly `polls` more polls (polls >= 1). */
  fireAfter(polls: number): void {
    if (!(polls >= 1 && polls <= INTERRUPT_COUNTER_INIT)) throw new PositionError(`fireAfter(${polls}) out of range`);
    if (this.counterAddress < 0) throw new PositionError('position not calibrated');
    const pos = this.read();
    this.heap()[this.counterAddress >> 2] = polls;
    this.basePolls = pos;
    this.counterStart = polls;
  }

  /** Called inside the handler during calibration: the counter equals INTERRUPT_COUNTER_INIT right now. */
  scanForCounter(contextPointer: number): void {
    const heap = this.heap();
    const found: number[] = [];
    for (let offset = 0; offset < CONTEXT_SCAN_BYTES; offset += 4) {
      const address = contextPointer + offset;
      if (heap[address >> 2] === INTERRUPT_COUNTER_INIT) found.push(address);
    }
    this.candidates = found;
  }

  /**
   * Picks the counter among the scanned candidates: `run(n)` runs a guest loop of n iterations (2n+2
   * polls plus a fixed overhead), so the true counter drops by exactly 2*(n2-n1) more for n2 than n1.
   * Returns the counter's byte offset from the context pointer.
   */
  settle(contextPointer: number, run: (iterations: number) => void, handlerCalls: () => number): number {
    const candidates = this.candidates;
    if (!candidates || candidates.length === 0) {
      throw new PositionError(`no interrupt counter candidate with value ${INTERRUPT_COUNTER_INIT} within ${CONTEXT_SCAN_BYTES} bytes of the context; engine build mismatch?`);
    }
    const small = 10;
    const large = 60;
    for (let attempt = 0; attempt < 4; attempt++) {
      const calls = handlerCalls();
      const before = candidates.map((a) => this.heap()[a >> 2]!);
      run(small);
      const mid = candidates.map((a) => this.heap()[a >> 2]!);
      run(large);
      const after = candidates.map((a) => this.heap()[a >> 2]!);
      if (handlerCalls() !== calls) continue; // the counter wrapped during the measurement; measure again
      const matches = candidates.filter((_, i) => before[i]! - mid[i]! + 2 * (large - small) === mid[i]! - after[i]!);
      if (matches.length !== 1) {
        throw new PositionError(`interrupt counter not identified: ${matches.length} of ${candidates.length} candidates behave like it`);
      }
      this.counterAddress = matches[0]!;
      this.candidates = null;
      return this.counterAddress - contextPointer;
    }
    throw new PositionError('interrupt counter calibration kept wrapping; engine build mismatch?');
  }

  /** Makes read() give `pos` with the counter as it is in memory now (no polls may happen before the next restore). */
  pin(pos: number): void {
    if (this.counterAddress < 0) throw new PositionError('position not calibrated');
    const counter = this.heap()[this.counterAddress >> 2]!;
    this.basePolls = pos - (this.counterStart - counter);
  }

  state(): PositionState {
    return { basePolls: this.basePolls, counterStart: this.counterStart };
  }

  restore(state: PositionState): void {
    this.basePolls = state.basePolls;
    this.counterStart = state.counterStart;
  }
}
