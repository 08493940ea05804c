// Math.random's generator state inside the engine, so that the hypervisor can seed it from the input
// port after the glue has booted (boot format 2, hypervisor/vm/boot-image.ts).
//
// QuickJS keeps one 64-bit xorshift64* state per context (`ctx->random_state`), seeded in
// JS_NewContext from the clock. Boot format 2 gives that first clock read a constant, so everything up
// to the guest is a pure function of the engine and the glue (and can be cached), then writes a seed
// drawn from the entropy input into the state. The field is found at boot the way the position
// counter is (position.ts): by watching the engine, never by a hard-coded offset.

/** How far into JSContext the state may lie. */
const CONTEXT_SCAN_BYTES = 1024;
const MASK_64 = (1n << 64n) - 1n;
/** A state written to check the identification: any non-zero value. */
const CHECK_STATE = 0x0123_4567_89ab_cdefn;

export class RandomStateError extends Error {
  override name = 'RandomStateError';
}

/** One step of QuickJS's xorshift64*: the next state, and the double Math.random returns for it. */
export function xorshift64star(state: bigint): { state: bigint; value: number } {
  let x = state;
  x ^= x >> 12n;
  x = (x ^ (x << 25n)) & MASK_64;
  x ^= x >> 27n;
  const out = (x * 0x2545_f491_4f6c_dd1dn) & MASK_64;
  // 1.0 <= d < 2.0 from the top 52 bits, minus one: as js_math_random does.
  const bits = (0x3ffn << 52n) | (out >> 12n);
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, bits, true);
  return { state: x, value: view.getFloat64(0, true) - 1 };
}

export class RandomState {
  private address = -1;

  constructor(private readonly memory: WebAssembly.Memory) {}

  get located(): boolean {
    return this.address >= 0;
  }

  /** Byte address of the state in linear memory (part of a boot image's layout). */
  get stateAddress(): number {
    return this.address;
  }

  adopt(address: number): void {
    if (!(address > 0 && address % 8 === 0)) throw new RandomStateError(`random state address ${address} is not an aligned address`);
    this.address = address;
  }

  /**
   * Finds the state: `random()` evaluates `Math.random()` in the guest context. The one 8-byte field
   * of the context that moved by exactly one xorshift64* step, to the state whose output is the
   * number the guest saw, is it. Then writing a known state must give the predicted next number.
   */
  locate(contextPointer: number, random: () => number): void {
    if (contextPointer % 8 !== 0) throw new RandomStateError(`context pointer ${contextPointer} is not 8-byte aligned`);
    const words = CONTEXT_SCAN_BYTES / 8;
    const read = () => new BigUint64Array(this.memory.buffer, contextPointer, words).slice();
    const before = read();
    const value = random();
    const after = read();
    const matches: number[] = [];
    for (let i = 0; i < words; i++) {
      const step = xorshift64star(before[i]!);
      if (step.state === after[i] && step.value === value) matches.push(contextPointer + i * 8);
    }
    if (matches.length !== 1) {
      throw new RandomStateError(`Math.random state not identified: ${matches.length} fields of the context behave like it; engine build mismatch?`);
    }
    this.address = matches[0]!;
    this.write(CHECK_STATE);
    const expected = xorshift64star(CHECK_STATE).value;
    const got = random();
    if (got !== expected) throw new RandomStateError(`Math.random state check failed: after seeding, Math.random() gave ${got}, expected ${expected}`);
  }

  /** Seeds the generator from 8 bytes (little-endian); a zero state would stick at zero, so it becomes 1. */
  seed(bytes: Uint8Array): void {
    if (bytes.byteLength !== 8) throw new RandomStateError(`a seed is 8 bytes, got ${bytes.byteLength}`);
    const state = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    this.write(state === 0n ? 1n : state);
  }

  /** The current state (to tell whether the guest drew from Math.random). */
  read(): bigint {
    if (this.address < 0) throw new RandomStateError('random state not located');
    return new BigUint64Array(this.memory.buffer, this.address, 1)[0]!;
  }

  private write(state: bigint): void {
    if (this.address < 0) throw new RandomStateError('random state not located');
    new BigUint64Array(this.memory.buffer, this.address, 1)[0] = state;
  }
}
