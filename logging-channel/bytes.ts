// A small binary writer/reader for the log codecs.
//
// Byte order is little-endian throughout. Integers that can grow (ids, seqs, positions, lengths) are
// unsigned LEB128 "varuints" up to 2^53-1 (Number.MAX_SAFE_INTEGER), encoded canonically (no
// redundant trailing 0x80 groups) so that one value has exactly one encoding: equal entries give
// equal bytes, which keeps hashes and checksums over the log meaningful.
//
// Every read is bounds-checked and fails with a CodecError that names what was being read and the
// byte offset, because a malformed frame or trace must produce a clear error at the edge (DESIGN
// rule 6), never a RangeError from deep inside a DataView or a silently wrong value.

/** Largest value a varuint may carry: 2^53-1. */
export const MAX_VARUINT = Number.MAX_SAFE_INTEGER;

/** A varuint of 2^53-1 needs 8 groups of 7 bits (56 bits); more is malformed. */
export const MAX_VARUINT_BYTES = 8;

const TWO_POW_7 = 128;
const TWO_POW_31 = 0x8000_0000;

/** A malformed or unencodable value. `offset` is the byte offset in the buffer being read/written. */
export class CodecError extends Error {
  override name = 'CodecError';
  constructor(
    message: string,
    /** Byte offset (in the buffer being read or written) where the problem was found. */
    readonly offset: number,
    /** The message without its context prefix and location, for callers that re-frame it. */
    readonly detail: string = message,
  ) {
    super(message);
  }
}

/** Number of bytes the varuint encoding of `value` takes (value must be a valid varuint). */
export function varuintSize(value: number): number {
  let size = 1;
  while (value >= TWO_POW_7) {
    value = Math.floor(value / TWO_POW_7);
    size++;
  }
  return size;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Throws on a lone surrogate: it has no UTF-8 form, so it could not round-trip exactly. */
function assertWellFormed(text: string, what: string, offset: number): void {
  // Fast path: most strings (methods, urls, header names) contain no surrogates at all.
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    const next = text.charCodeAt(i + 1);
    if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    throw new CodecError(`cannot encode ${what}: lone surrogate U+${unit.toString(16).toUpperCase()} at index ${i} has no exact UTF-8 form`, offset);
  }
}

/** UTF-8 byte length of `text`; throws on lone surrogates (they have no exact UTF-8 form). */
export function utf8Length(text: string, what = 'string', offset = 0): number {
  if (typeof text !== 'string') {
    throw new CodecError(`cannot encode ${what}: ${typeof text} is not a string`, offset);
  }
  assertWellFormed(text, what, offset);
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Growable byte writer. It reuses one buffer across `reset()`s, so encoding many batches with one
 * writer allocates only when a batch is larger than any before it.
 */
export class ByteWriter {
  private buf: Uint8Array;
  private dv: DataView;
  /** A Buffer over the same memory, used only to write strings in place (no temporary copy). */
  private nodeBuf: Buffer;
  private len = 0;

  constructor(initialCapacityBytes = 256) {
    if (!Number.isSafeInteger(initialCapacityBytes) || initialCapacityBytes < 1) {
      throw new RangeError(`ByteWriter: initial capacity must be a positive integer, got ${initialCapacityBytes}`);
    }
    this.buf = new Uint8Array(initialCapacityBytes);
    this.dv = new DataView(this.buf.buffer);
    this.nodeBuf = Buffer.from(this.buf.buffer, 0, this.buf.byteLength);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.len;
  }

  /** Bytes the writer can hold before it has to grow. */
  get capacity(): number {
    return this.buf.byteLength;
  }

  /** Forget the contents but keep the buffer. Views handed out by `view()` become invalid. */
  reset(): void {
    this.len = 0;
  }

  /** Drop everything written after `length` (to undo a partly written value). */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.len) {
      throw new RangeError(`ByteWriter.truncate(${length}) outside the ${this.len} bytes written`);
    }
    this.len = length;
  }

  /** Make room for `n` more bytes, doubling so that appends are amortised O(1). */
  private ensure(n: number): void {
    const needed = this.len + n;
    if (needed <= this.buf.byteLength) return;
    let capacity = this.buf.byteLength * 2;
    while (capacity < needed) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.dv = new DataView(next.buffer);
    this.nodeBuf = Buffer.from(next.buffer, 0, next.byteLength);
  }

  u8(value: number, what = 'u8'): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new CodecError(`cannot encode ${what}: ${value} is not a u8`, this.len);
    }
    this.ensure(1);
    this.buf[this.len++] = value;
  }

  u32(value: number, what = 'u32'): void {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new CodecError(`cannot encode ${what}: ${value} is not a u32`, this.len);
    }
    this.ensure(4);
    this.dv.setUint32(this.len, value, true);
    this.len += 4;
  }

  /** Unsigned LEB128, 0..2^53-1. No allocation: groups are peeled off with arithmetic. */
  varuint(value: number, what = 'varuint'): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new CodecError(`cannot encode ${what}: ${value} is not an integer in 0..2^53-1`, this.len);
    }
    this.ensure(MAX_VARUINT_BYTES);
    const buf = this.buf;
    let at = this.len;
    // Above 2^31 the 32-bit bit operators would truncate, so use division until the value fits.
    while (value >= TWO_POW_31) {
      buf[at++] = (value % TWO_POW_7) | 0x80;
      value = Math.floor(value / TWO_POW_7);
    }
    while (value >= TWO_POW_7) {
      buf[at++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[at++] = value;
    this.len = at;
  }

  f64(value: number, what = 'f64'): void {
    if (typeof value !== 'number') {
      throw new CodecError(`cannot encode ${what}: ${String(value)} is not a number`, this.len);
    }
    this.ensure(8);
    this.dv.setFloat64(this.len, value, true);
    this.len += 8;
  }

  /** Raw bytes, no length prefix. */
  raw(bytes: Uint8Array, what = 'raw bytes'): void {
    if (!(bytes instanceof Uint8Array)) {
      throw new CodecError(`cannot encode ${what}: not a Uint8Array`, this.len);
    }
    this.ensure(bytes.byteLength);
    this.buf.set(bytes, this.len);
    this.len += bytes.byteLength;
  }

  /** Length-prefixed bytes (varuint length, then the bytes). */
  bytes(bytes: Uint8Array, what = 'bytes'): void {
    if (!(bytes instanceof Uint8Array)) {
      throw new CodecError(`cannot encode ${what}: not a Uint8Array`, this.len);
    }
    this.varuint(bytes.byteLength, what);
    this.raw(bytes, what);
  }

  /** Length-prefixed UTF-8. Throws on lone surrogates (they could not round-trip exactly). */
  str(text: string, what = 'string'): void {
    // Short ASCII (methods, header names and values, status texts) byte by byte: the general path's
    // surrogate scan, Buffer.byteLength and Buffer.write cost more than the copy for these. Same bytes.
    const n = typeof text === 'string' ? text.length : 0xff;
    if (n < TWO_POW_7) {
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.len;
      let i = 0;
      for (; i < n; i++) {
        const unit = text.charCodeAt(i);
        if (unit >= TWO_POW_7) break;
        buf[start + 1 + i] = unit;
      }
      if (i === n) {
        buf[start] = n;
        this.len = start + 1 + n;
        return;
      }
    }
    const byteLength = utf8Length(text, what, this.len);
    this.varuint(byteLength, what);
    this.utf8(text, byteLength, what);
  }

  /**
   * UTF-8 without a length prefix, for callers that fold the length into a tag of their own.
   * `byteLength` must come from `utf8Length(text)`, which also rejects lone surrogates.
   */
  utf8(text: string, byteLength: number, what = 'string'): void {
    this.ensure(byteLength);
    // Written in place through a Buffer view of our own memory: no temporary encoded copy.
    const written = this.nodeBuf.write(text, this.len, byteLength, 'utf8');
    if (written !== byteLength) {
      throw new CodecError(`cannot encode ${what}: wrote ${written} UTF-8 bytes, expected ${byteLength}`, this.len);
    }
    this.len += byteLength;
  }

  /** Reserve `n` bytes to be filled later with `setU8At`/`setU32At`/`setVaruintAt`; returns their offset. */
  skip(n: number): number {
    this.ensure(n);
    const at = this.len;
    this.buf.fill(0, at, at + n);
    this.len += n;
    return at;
  }

  setU8At(offset: number, value: number): void {
    this.assertWritten(offset, 1);
    this.buf[offset] = value;
  }

  setU32At(offset: number, value: number): void {
    this.assertWritten(offset, 4);
    this.dv.setUint32(offset, value, true);
  }

  /** Write a varuint into already-written space (a reservation); returns the bytes it took. */
  setVaruintAt(offset: number, value: number): number {
    const size = varuintSize(value);
    this.assertWritten(offset, size);
    const saved = this.len;
    this.len = offset;
    this.varuint(value);
    this.len = saved;
    return size;
  }

  private assertWritten(offset: number, n: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + n > this.len) {
      throw new RangeError(`ByteWriter: patch of ${n} bytes at ${offset} is outside the ${this.len} bytes written`);
    }
  }

  /**
   * The bytes written, from `start`, WITHOUT copying. The view aliases the writer's buffer: it is
   * valid only until the next write or `reset()`. Use it to hand bytes straight to a syscall.
   */
  view(start = 0, end = this.len): Uint8Array {
    if (start < 0 || start > end || end > this.len) {
      throw new RangeError(`ByteWriter.view(${start}, ${end}) outside the ${this.len} bytes written`);
    }
    return this.buf.subarray(start, end);
  }

  /**
   * A COPY of the bytes written, from `start`. The copy is owned by the caller, so the writer can be
   * reset and reused at once (which is the point of reusing one buffer).
   */
  finish(start = 0): Uint8Array {
    return this.view(start).slice();
  }
}

/** Strings up to this long are checked for ASCII and copied out as Latin-1 (past it the decoder is faster). */
const SHORT_STRING_BYTES = 256;
/** Node's own Latin-1 slice of a Uint8Array (what Buffer#toString('latin1') calls), without making a Buffer. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, start: number, end: number) => string }).latin1Slice;

/**
 * Bounds-checked reader over `bytes[offset, end)`. Byte and string reads return views into the
 * input (no copy); callers that keep them keep the input alive.
 */
export class ByteReader {
  private readonly view: DataView;
  private at: number;

  constructor(
    readonly input: Uint8Array,
    offset = 0,
    readonly end = input.byteLength,
    /** Prefix for error messages, e.g. "Request payload". */
    readonly context = '',
  ) {
    if (!(input instanceof Uint8Array)) throw new TypeError('ByteReader: input is not a Uint8Array');
    if (!Number.isInteger(offset) || !Number.isInteger(end) || offset < 0 || offset > end || end > input.byteLength) {
      throw new RangeError(`ByteReader: range ${offset}..${end} is outside the ${input.byteLength} input bytes`);
    }
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    this.at = offset;
  }

  /** Offset of the next byte to read, relative to `input`. */
  get offset(): number {
    return this.at;
  }

  get remaining(): number {
    return this.end - this.at;
  }

  /** Throw a CodecError prefixed with the context and suffixed with the byte offset. */
  fail(message: string, offset = this.at): never {
    const prefix = this.context === '' ? '' : `${this.context}: `;
    throw new CodecError(`${prefix}${message} at byte ${offset}`, offset, message);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.at) {
      this.fail(`truncated: ${what} needs ${n} bytes, only ${this.end - this.at} left`);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.input[this.at++]!;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const value = this.view.getUint32(this.at, true);
    this.at += 4;
    return value;
  }

  varuint(what = 'varuint'): number {
    const start = this.at;
    const input = this.input;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARUINT_BYTES; i++) {
      if (this.at >= this.end) this.fail(`truncated: varuint ${what} runs past the end`, start);
      const byte = input[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        // A zero last group after the first byte means a longer-than-needed encoding.
        if (byte === 0 && i > 0) this.fail(`non-canonical varuint ${what}`, start);
        if (value > MAX_VARUINT) this.fail(`varuint ${what} exceeds 2^53-1`, start);
        return value;
      }
      scale *= 128;
    }
    return this.fail(`varuint ${what} is longer than ${MAX_VARUINT_BYTES} bytes`, start);
  }

  f64(what = 'f64'): number {
    this.need(8, what);
    const value = this.view.getFloat64(this.at, true);
    this.at += 8;
    return value;
  }

  /** `n` raw bytes as a view into the input. */
  raw(n: number, what = 'raw bytes'): Uint8Array {
    this.need(n, what);
    const out = this.input.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** Length-prefixed bytes, as a view into the input. */
  bytes(what = 'bytes'): Uint8Array {
    const start = this.at;
    const n = this.varuint(what);
    if (n > this.end - this.at) {
      this.fail(`truncated: ${what} declares ${n} bytes, only ${this.end - this.at} left`, start);
    }
    return this.raw(n, what);
  }

  /** Length-prefixed UTF-8; invalid UTF-8 is an error, not a replacement character. */
  str(what = 'string'): string {
    const start = this.at;
    const n = this.varuint(what);
    return this.utf8(n, what, start);
  }

  /** `byteLength` bytes of UTF-8 (no prefix). `start` is the offset reported if they are invalid. */
  utf8(byteLength: number, what = 'string', start = this.at): string {
    if (byteLength > this.end - this.at) {
      this.fail(`truncated: ${what} declares ${byteLength} bytes, only ${this.end - this.at} left`, start);
    }
    const input = this.input;
    const from = this.at;
    const to = from + byteLength;
    // Short ASCII strings (methods, URLs, header names and values) are the common case; skip the
    // decoder for them. ASCII reads the same as Latin-1, which Node copies out in one native call
    // (issue 19: half the time of building the string a character at a time, and a flat string).
    if (byteLength <= SHORT_STRING_BYTES) {
      let i = from;
      while (i < to && input[i]! < 0x80) i++;
      if (i === to) {
        this.at = to;
        return latin1Slice.call(input, from, to);
      }
    }
    let text: string;
    try {
      text = utf8Decoder.decode(input.subarray(from, to));
    } catch {
      return this.fail(`${what} is not valid UTF-8`, start);
    }
    this.at = to;
    return text;
  }

  /** Assert that everything was consumed. */
  expectEnd(what = 'value'): void {
    if (this.at !== this.end) this.fail(`${this.end - this.at} trailing bytes after ${what}`);
  }
}
