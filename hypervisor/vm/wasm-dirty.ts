// Write tracking for the engine's linear memory, by rewriting its wasm: every store (and memory.fill,
// memory.copy, memory.init) also writes a 1 into a byte map, one byte per 4 KiB page, that lives in a
// part of linear memory the engine never uses (the bottom of its C stack: limits.ts keeps the guest's
// stack clear of it). WASM gives no dirty bits (no mprotect on linear memory; this host has no
// soft-dirty page tracking either), and without them every state hash and every snapshot copy is
// proportional to memory: 130 ms of stalled guest traffic at 207 MiB.
//
// Measured (bench micro-loop, Node 20): a byte store costs ~0.8 ns, where a call out to a JS import
// costs ~20 ns and a funcref table.set ~150 ns; a one-page cache in front of a JS call still missed
// ~6,000 times per kv request (the stack page and heap pages alternate). So: two plain stores, no branch.
//
// What the rewrite adds, and nothing else: one helper function (appended: no index shifts), its type,
// and scratch locals per function. The map's pages are not state: hashes and copies treat them as
// zero (state-hash.ts, kept-copy.ts), so the memory's meaning, hashes, snapshots and boot images are
// the same as the plain engine's. Writes the host makes from JS (the glue's strings and buffers, our
// clock and seed writes) are not stores of the module: those callers mark what they write
// (dirty-pages.ts).

export class WasmRewriteError extends Error {
  override name = 'WasmRewriteError';
}

/** Bytes per tracked page. */
export const TRACK_PAGE_BYTES = 4096;
const PAGE_SHIFT = 12;
/** Largest memory the map covers (the wasm32 limit the engine is built with: 32768 pages of 64 KiB). */
export const TRACK_MAX_MEMORY_BYTES = 2 * 1024 * 1024 * 1024;
/**
 * Where the map lives: a page-aligned address above the engine's static data (which ends at 88 KiB in
 * the pinned build) and in the bottom of its 5 MiB C stack, far below any frame a bounded guest reaches.
 */
export const TRACK_MAP_ADDRESS = 0x17000;
/** Bytes of the map: one per page of the largest memory. */
export const TRACK_MAP_BYTES = TRACK_MAX_MEMORY_BYTES / TRACK_PAGE_BYTES;
/** Pages of linear memory the map occupies: never state. */
export const TRACK_MAP_FIRST_PAGE = TRACK_MAP_ADDRESS / TRACK_PAGE_BYTES;
export const TRACK_MAP_END_PAGE = (TRACK_MAP_ADDRESS + TRACK_MAP_BYTES) / TRACK_PAGE_BYTES;

const I32 = 0x7f;
const I64 = 0x7e;
const F32 = 0x7d;
const F64 = 0x7c;

/** Store opcodes (0x36 i32.store .. 0x3e i64.store32): value type and bytes written. */
const STORES = new Map<number, [type: number, bytes: number]>([
  [0x36, [I32, 4]],
  [0x37, [I64, 8]],
  [0x38, [F32, 4]],
  [0x39, [F64, 8]],
  [0x3a, [I32, 1]],
  [0x3b, [I32, 2]],
  [0x3c, [I64, 1]],
  [0x3d, [I64, 2]],
  [0x3e, [I64, 4]],
]);

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new WasmRewriteError(`unexpected end of module at byte ${this.at}`);
    return this.bytes[this.at++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new WasmRewriteError(`u32 LEB too long at byte ${this.at}`);
    }
  }
  /** Skips a signed LEB of any width. */
  sleb(): void {
    while (this.byte() & 0x80) {
      // continuation bytes
    }
  }
  skip(n: number): void {
    this.at += n;
    if (this.at > this.bytes.length) throw new WasmRewriteError('unexpected end of module');
  }
  name(): string {
    const n = this.u32();
    const s = Buffer.from(this.bytes.subarray(this.at, this.at + n)).toString('utf8');
    this.skip(n);
    return s;
  }
}

class Writer {
  private buf = new Uint8Array(1024);
  private n = 0;
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    bigger.set(this.buf.subarray(0, this.n));
    this.buf = bigger;
  }
  byte(b: number): this {
    this.room(1);
    this.buf[this.n++] = b;
    return this;
  }
  bytes(b: Uint8Array | number[]): this {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    return this;
  }
  u32(v: number): this {
    this.room(5);
    do {
      let b = v & 0x7f;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.buf[this.n++] = b;
    } while (v !== 0);
    return this;
  }
  s32(v: number): this {
    this.room(5);
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.buf[this.n++] = b;
        return this;
      }
      this.buf[this.n++] = b | 0x80;
    }
  }
  out(): Uint8Array {
    return this.buf.slice(0, this.n);
  }
}

interface Section {
  id: number;
  body: Uint8Array;
}

function sections(bytes: Uint8Array): Section[] {
  const r = new Reader(bytes);
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  for (const m of magic) if (r.byte() !== m) throw new WasmRewriteError('not a wasm module (version 1)');
  const out: Section[] = [];
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    out.push({ id, body: bytes.subarray(r.at, r.at + size) });
    r.skip(size);
  }
  return out;
}

/** Parsed facts the rewrite needs. */
interface ModuleFacts {
  /** Params per type index. */
  typeParams: number[];
  importedFuncs: number;
  /** Type index of each defined function. */
  funcTypes: number[];
  types: number;
}

function facts(secs: Section[]): ModuleFacts {
  const f: ModuleFacts = { typeParams: [], importedFuncs: 0, funcTypes: [], types: 0 };
  for (const s of secs) {
    const r = new Reader(s.body);
    if (s.id === 1) {
      const n = r.u32();
      f.types = n;
      for (let i = 0; i < n; i++) {
        if (r.byte() !== 0x60) throw new WasmRewriteError('type section: only function types are supported');
        const params = r.u32();
        r.skip(params);
        const results = r.u32();
        r.skip(results);
        f.typeParams.push(params);
      }
    } else if (s.id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        r.name();
        r.name();
        const kind = r.byte();
        if (kind === 0) {
          r.u32();
          f.importedFuncs++;
        } else if (kind === 1) {
          r.byte();
          limits(r);
        } else if (kind === 2) {
          limits(r);
        } else if (kind === 3) {
          r.byte();
          r.byte();
        } else throw new WasmRewriteError(`import kind ${kind} not supported`);
      }
    } else if (s.id === 3) {
      const n = r.u32();
      for (let i = 0; i < n; i++) f.funcTypes.push(r.u32());
    }
  }
  return f;
}

function limits(r: Reader): void {
  const flags = r.byte();
  r.u32();
  if (flags & 1) r.u32();
}

/** Local indices of the scratch locals added to each function, relative to the first added one. */
const SCRATCH = { addr: 0, n: 1, x: 2, i32: 3, i64: 4, f32: 5, f64: 6, e: 7 } as const;
const SCRATCH_DECL: Array<[number, number]> = [
  [4, I32], // addr, n, x, i32 value
  [1, I64],
  [1, F32],
  [1, F64],
  [1, I32], // e
];

export interface InstrumentResult {
  bytes: Uint8Array;
  /** Stores rewritten (for the record: an engine upgrade that changes this wants a look). */
  stores: number;
  bulk: number;
}

/**
 * Rewrites `wasm` so that every write to memory 0 marks its pages in the map (see the file comment).
 * Fails loudly on anything it does not understand (SIMD, atomics, multiple memories): a store it could
 * not see would be a page whose change no hash notices.
 */
export function instrumentStores(wasm: Uint8Array): InstrumentResult {
  const secs = sections(wasm);
  const f = facts(secs);
  checkMapIsFree(secs);
  const helperType = f.types; // (i32 address, i32 bytes) -> ()
  const helperFunc = f.importedFuncs + f.funcTypes.length; // appended after the defined functions
  let stores = 0;
  let bulk = 0;
  let sawTypes = false;
  let sawFuncs = false;
  let sawCode = false;

  const out = new Writer().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const emit = (id: number, body: Uint8Array): void => {
    out.byte(id).u32(body.length).bytes(body);
  };

  for (const s of secs) {
    const r = new Reader(s.body);
    const w = new Writer();
    switch (s.id) {
      case 0: // custom sections (names, producers) refer to old code offsets: dropped
        continue;
      case 1: {
        sawTypes = true;
        const n = r.u32();
        w.u32(n + 1).bytes(s.body.subarray(r.at));
        w.bytes([0x60, 2, I32, I32, 0]);
        emit(1, w.out());
        continue;
      }
      case 3: {
        sawFuncs = true;
        const n = r.u32();
        w.u32(n + 1)
          .bytes(s.body.subarray(r.at))
          .u32(helperType);
        emit(3, w.out());
        continue;
      }
      case 10: {
        sawCode = true;
        const n = r.u32();
        w.u32(n + 1);
        for (let i = 0; i < n; i++) {
          const size = r.u32();
          const end = r.at + size;
          const params = f.typeParams[f.funcTypes[i]!]!;
          const body = rewriteBody(new Reader(s.body.subarray(r.at, end)), params, helperFunc, (kind) => (kind === 'store' ? stores++ : bulk++));
          r.at = end;
          w.u32(body.length).bytes(body);
        }
        const helper = rangeHelper();
        w.u32(helper.length).bytes(helper);
        emit(10, w.out());
        continue;
      }
      default:
        emit(s.id, s.body);
    }
  }
  if (!(sawTypes && sawFuncs && sawCode)) throw new WasmRewriteError('module lacks a type, function or code section');
  return { bytes: out.out(), stores, bulk };
}

/** The engine's C stack size in the pinned build (limits.ts ENGINE_STACK_BYTES). */
const ENGINE_STACK_BYTES = 5 * 1024 * 1024;

/**
 * The map must lie in memory the engine never uses: above every data segment and inside the C stack's
 * bottom (the stack grows down from __stack_pointer's initial value, global 0, over ENGINE_STACK_BYTES).
 */
function checkMapIsFree(secs: Section[]): void {
  const mapEnd = TRACK_MAP_ADDRESS + TRACK_MAP_BYTES;
  for (const s of secs) {
    const r = new Reader(s.body);
    if (s.id === 11) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        if (r.u32() !== 0 || r.byte() !== 0x41) throw new WasmRewriteError('data segment kinds other than active with an i32.const offset are not supported');
        const offset = readS32(r);
        if (r.byte() !== 0x0b) throw new WasmRewriteError('data segment offset is not a plain constant');
        const length = r.u32();
        r.skip(length);
        if (offset + length > TRACK_MAP_ADDRESS && offset < mapEnd)
          throw new WasmRewriteError(`data segment ${i} (${offset}..${offset + length}) overlaps the write-tracking map at ${TRACK_MAP_ADDRESS}`);
      }
    } else if (s.id === 6) {
      r.u32();
      r.byte();
      r.byte();
      if (r.byte() !== 0x41) throw new WasmRewriteError('global 0 (__stack_pointer) is not an i32 constant');
      const stackTop = readS32(r);
      if (stackTop - ENGINE_STACK_BYTES > TRACK_MAP_ADDRESS || stackTop - ENGINE_STACK_BYTES < 0) {
        throw new WasmRewriteError(`the C stack (${stackTop - ENGINE_STACK_BYTES}..${stackTop}) does not hold the write-tracking map at ${TRACK_MAP_ADDRESS}`);
      }
    }
  }
}

function readS32(r: Reader): number {
  let result = 0;
  let shift = 0;
  let b: number;
  do {
    b = r.byte();
    result |= (b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  if (shift < 32 && b & 0x40) result |= -1 << shift;
  return result;
}

/** i32.store8 offset=TRACK_MAP_ADDRESS of the value on the stack at the page index below it. */
function storeMark(w: Writer): void {
  w.byte(0x41).s32(1).byte(0x3a).u32(0).u32(TRACK_MAP_ADDRESS);
}

/** The helper bulk ops call: (address, bytes) -> marks every page of [address, address + bytes). */
function rangeHelper(): Uint8Array {
  const w = new Writer();
  w.u32(1).u32(2).byte(I32); // locals 2 (page), 3 (last page)
  // if bytes == 0: return
  w.byte(0x20).u32(1).byte(0x45).byte(0x04).byte(0x40).byte(0x0f).byte(0x0b);
  // last = (address + bytes - 1) >> 12
  w.byte(0x20).u32(0).byte(0x20).u32(1).byte(0x6a).byte(0x41).s32(1).byte(0x6b).byte(0x41).s32(PAGE_SHIFT).byte(0x76).byte(0x21).u32(3);
  // page = address >> 12
  w.byte(0x20).u32(0).byte(0x41).s32(PAGE_SHIFT).byte(0x76).byte(0x21).u32(2);
  // loop: map[page] = 1; page++; br_if page <= last
  w.byte(0x03).byte(0x40);
  w.byte(0x20).u32(2);
  storeMark(w);
  w.byte(0x20).u32(2).byte(0x41).s32(1).byte(0x6a).byte(0x22).u32(2);
  w.byte(0x20).u32(3).byte(0x4d).byte(0x0d).u32(0);
  w.byte(0x0b);
  w.byte(0x0b);
  return w.out();
}

function rewriteBody(r: Reader, params: number, helperFunc: number, count: (kind: 'store' | 'bulk') => void): Uint8Array {
  const w = new Writer();
  const groups = r.u32();
  let locals = params;
  w.u32(groups + SCRATCH_DECL.length);
  for (let i = 0; i < groups; i++) {
    const c = r.u32();
    locals += c;
    w.u32(c).byte(r.byte());
  }
  for (const [c, t] of SCRATCH_DECL) w.u32(c).byte(t);
  const L = (k: keyof typeof SCRATCH): number => locals + SCRATCH[k];
  const valueLocal: Record<number, number> = { [I32]: L('i32'), [I64]: L('i64'), [F32]: L('f32'), [F64]: L('f64') };
  const get = (l: number): void => void w.byte(0x20).u32(l);
  const set = (l: number): void => void w.byte(0x21).u32(l);
  const tee = (l: number): void => void w.byte(0x22).u32(l);

  /**
   * After a write of `bytes` at local addr + offset: mark its first and last page (at most two: bytes
   * <= 8). A store whose alignment hint is its size is aligned (the compiler emits such a hint only for
   * an access the C code promises is aligned; unaligned ones, as through packed structs, get hint 0),
   * and an aligned store of at most 8 bytes cannot cross a 4 KiB page: one mark.
   */
  const check = (offset: number, bytes: number, aligned: boolean): void => {
    const straddles = bytes > 1 && !aligned;
    get(L('addr'));
    if (offset !== 0) w.byte(0x41).s32(offset).byte(0x6a);
    if (straddles) tee(L('e'));
    w.byte(0x41).s32(PAGE_SHIFT).byte(0x76);
    storeMark(w);
    if (straddles) {
      get(L('e'));
      w.byte(0x41)
        .s32(bytes - 1)
        .byte(0x6a)
        .byte(0x41)
        .s32(PAGE_SHIFT)
        .byte(0x76);
      storeMark(w);
    }
  };
  /** After a bulk op with destination local addr and length local n: mark the range. */
  const checkRange = (): void => {
    get(L('addr'));
    get(L('n'));
    w.byte(0x10).u32(helperFunc);
  };

  // Unchanged instructions are copied in runs: only stores, bulk ops and function references are re-emitted.
  const code = r.bytes;
  let run = r.at;
  const flush = (to: number): void => {
    if (to > run) w.bytes(code.subarray(run, to));
  };
  while (r.at < code.length) {
    const start = r.at;
    const op = code[r.at++]!;
    const store = STORES.get(op);
    if (store) {
      const [type, bytes] = store;
      const align = r.u32();
      const offset = r.u32();
      if (align & 0x40) throw new WasmRewriteError('multiple memories are not supported');
      flush(start);
      set(valueLocal[type]!);
      tee(L('addr'));
      get(valueLocal[type]!);
      w.byte(op).u32(align).u32(offset);
      check(offset, bytes, 1 << align >= bytes);
      run = r.at;
      count('store');
      continue;
    }
    switch (op) {
      case 0x02:
      case 0x03:
      case 0x04:
      case 0x41:
      case 0x42:
        r.sleb();
        break;
      case 0x0c:
      case 0x0d:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x26:
        r.u32();
        break;
      case 0x0e: {
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        break;
      }
      case 0x10:
      case 0x12:
      case 0xd2:
        r.u32();
        break;
      case 0x11:
      case 0x13:
        r.u32();
        r.u32();
        break;
      case 0x1c:
        r.skip(r.u32());
        break;
      case 0x3f:
      case 0x40:
        if (r.byte() !== 0) throw new WasmRewriteError('multiple memories are not supported');
        break;
      case 0x43:
        r.skip(4);
        break;
      case 0x44:
        r.skip(8);
        break;
      case 0xd0:
        r.byte();
        break;
      case 0xfc: {
        const sub = r.u32();
        if (sub <= 7) {
          // saturating truncations: no immediates
        } else if (sub === 8 || sub === 10 || sub === 11) {
          // memory.init / copy / fill: [dest, src-or-value, n] -> the same op, then report [dest, dest + n)
          const segment = sub === 8 ? r.u32() : 0;
          const memories = sub === 10 ? [r.byte(), r.byte()] : [r.byte()];
          if (memories.some((b) => b !== 0)) throw new WasmRewriteError('multiple memories are not supported');
          flush(start);
          set(L('n'));
          set(L('x'));
          tee(L('addr'));
          get(L('x'));
          get(L('n'));
          w.byte(op).u32(sub);
          if (sub === 8) w.u32(segment);
          w.bytes(memories);
          checkRange();
          run = r.at;
          count('bulk');
        } else if (sub === 9 || sub === 13 || sub === 15 || sub === 16 || sub === 17) {
          r.u32();
        } else if (sub === 12 || sub === 14) {
          r.u32();
          r.u32();
        } else throw new WasmRewriteError(`opcode 0xfc ${sub} not supported`);
        break;
      }
      case 0xfd:
        throw new WasmRewriteError('SIMD is not supported by the store rewrite');
      case 0xfe:
        throw new WasmRewriteError('atomics are not supported by the store rewrite');
      default:
        if (op >= 0x28 && op <= 0x35) {
          // loads: memarg
          if (r.u32() & 0x40) throw new WasmRewriteError('multiple memories are not supported');
          r.u32();
        } else if (!(op <= 0x01 || op === 0x05 || op === 0x0b || op === 0x0f || op === 0x1a || op === 0x1b || (op >= 0x45 && op <= 0xc4) || op === 0xd1)) {
          throw new WasmRewriteError(`opcode 0x${op.toString(16)} not supported`);
        }
    }
  }
  flush(code.length);
  return w.out();
}
