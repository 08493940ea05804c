// Binary codecs for log entry payloads and for batches of entries.
//
// A batch is the unit that crosses the wire and the unit stored on disk: the same bytes are a
// logging-channel frame payload and a trace-file block. It carries its own length and CRC-32, so a
// receiver or a reader can tell a whole batch from a damaged or partial one without context.
//
// Batch layout (format 1), all integers varuint unless noted:
//
//   u8   magic 0xF1 (format 1)
//        restLength   bytes after this field, up to and including the CRC
//        firstSeq     >= 1; entry i has seq firstSeq + i (seqs are dense)
//        count        >= 1
//        posBase      pos of the first entry
//   per entry:
//   u8   kind
//        posDelta     pos minus the previous entry's pos (the first entry's minus posBase); positions
//                     never go backwards within a batch, so the delta is unsigned and usually 1 byte
//        payloadLength
//        payload
//   u32  CRC-32 (zlib) of every byte of the batch before it
//
// Decoding checks the length and the CRC first, so damage is reported as "checksum mismatch"
// rather than as whatever nonsense the damaged bytes happen to parse as; the structural checks after
// it catch encoder bugs and hand-made input.
//
// Payload strings that repeat in nearly every request (HTTP methods, common header names) are
// written as a "tabled string": one varuint tag that is either 2*index+1 (an entry of a fixed table)
// or 2*byteLength (a literal follows). A literal costs the same one-byte prefix as a plain string, a
// table hit saves the name's bytes. The tables are part of format 1: append only, never reorder.

import { crc32 } from 'node:zlib';
import { ByteReader, ByteWriter, CodecError, MAX_VARUINT, utf8Length, varuintSize } from './bytes.js';
import {
  type ClockReading,
  type Entry,
  type EpochMark,
  type FetchResultEvent,
  type HeaderList,
  isKnownKind,
  Kind,
  type KindCode,
  kindName,
  type RequestEvent,
  type ScheduledEvent,
  type StreamCancelEvent,
  type TaskEnd,
  type TimerEvent,
} from './entry.js';

export { CodecError } from './bytes.js';

/** Default upper bound on one encoded batch (frame / trace block), in bytes. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** Format byte at the start of every batch. */
export const BATCH_MAGIC = 0xf1;

/** magic, restLength, firstSeq, count, posBase, one empty entry (kind, delta, length), CRC. */
export const MIN_BATCH_BYTES = 1 + 1 + 1 + 1 + 1 + 3 + 4;

/** Size of the output hash carried by a TaskEnd entry. */
export const TASK_END_HASH_BYTES = 16;

const CRC_BYTES = 4;
/** The smallest possible entry: kind, posDelta, payloadLength, no payload. */
const MIN_ENTRY_BYTES = 3;

// ---------------------------------------------------------------------------------------------
// Tabled strings

/** Format-1 method table. Append only. Exact, case-sensitive match ("get" is a literal). */
const METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'];

/**
 * Format-1 header-name table (lower case, as Node and fetch report them). Append only; at most 64
 * names so that every tag stays one byte.
 */
const HEADER_NAMES: readonly string[] = [
  'host',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-length',
  'connection',
  'cache-control',
  'authorization',
  'cookie',
  'set-cookie',
  'date',
  'etag',
  'if-none-match',
  'if-modified-since',
  'last-modified',
  'location',
  'origin',
  'referer',
  'server',
  'transfer-encoding',
  'vary',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
  'idempotency-key',
  'keep-alive',
  'pragma',
  'expires',
  'content-encoding',
  'access-control-allow-origin',
];

function indexOf(table: readonly string[]): ReadonlyMap<string, number> {
  if (table.length > 64) throw new Error('codec: a string table must stay under 64 entries (one-byte tags)');
  return new Map(table.map((text, i) => [text, i]));
}
const METHOD_INDEX = indexOf(METHODS);
const HEADER_NAME_INDEX = indexOf(HEADER_NAMES);

function writeTabled(w: ByteWriter, text: string, index: ReadonlyMap<string, number>, what: string): void {
  const hit = index.get(text);
  if (hit !== undefined) {
    w.varuint(hit * 2 + 1, what);
    return;
  }
  const byteLength = utf8Length(text, what, w.length);
  w.varuint(byteLength * 2, what);
  w.utf8(text, byteLength, what);
}

function readTabled(r: ByteReader, table: readonly string[], what: string): string {
  const start = r.offset;
  const tag = r.varuint(what);
  if (tag % 2 === 1) {
    const text = table[(tag - 1) / 2];
    if (text === undefined) r.fail(`${what} refers to unknown table entry ${(tag - 1) / 2}`, start);
    return text;
  }
  return r.utf8(tag / 2, what, start);
}

// ---------------------------------------------------------------------------------------------
// Payload codecs. Encoders return a fresh Uint8Array the caller owns (it becomes an entry payload).
// Decoders take exactly one payload, reject trailing bytes, and return byte fields as views into it.

/** One writer reused by all payload encoders: they run synchronously and copy out at the end. */
const payloadWriter = new ByteWriter(512);
/** Above this capacity the shared writers are dropped after use so one huge value is not kept forever. */
const KEEP_WRITER_BYTES = 1024 * 1024;

function encodeWith(body: (w: ByteWriter) => void): Uint8Array {
  const w = payloadWriter;
  w.reset();
  body(w);
  const out = w.finish();
  w.reset();
  return out;
}

function writeHeaders(w: ByteWriter, headers: HeaderList, what: string): void {
  if (!Array.isArray(headers)) throw new CodecError(`cannot encode ${what}: not an array`, w.length);
  w.varuint(headers.length, `${what} count`);
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new CodecError(`cannot encode ${what}: each header must be a [name, value] pair`, w.length);
    }
    writeTabled(w, pair[0], HEADER_NAME_INDEX, 'header name');
    w.str(pair[1], 'header value');
  }
}

function readHeaders(r: ByteReader): HeaderList {
  const start = r.offset;
  const count = r.varuint('header count');
  // Each header takes at least two bytes; refuse an absurd count before looping over it.
  if (count * 2 > r.remaining) r.fail(`header count ${count} cannot fit in ${r.remaining} bytes`, start);
  const headers: HeaderList = [];
  for (let i = 0; i < count; i++) {
    const name = readTabled(r, HEADER_NAMES, 'header name');
    const value = r.str('header value');
    headers.push([name, value]);
  }
  return headers;
}

function payloadReader(payload: Uint8Array, kind: string): ByteReader {
  if (!(payload instanceof Uint8Array)) throw new CodecError(`${kind} payload: not a Uint8Array`, 0);
  return new ByteReader(payload, 0, payload.byteLength, `${kind} payload`);
}

// Request: varuint requestId, tabled method, str url, headers, bytes body.

export function encodeRequestEvent(event: RequestEvent): Uint8Array {
  return encodeWith((w) => {
    w.varuint(event.requestId, 'requestId');
    writeTabled(w, event.method, METHOD_INDEX, 'method');
    w.str(event.url, 'url');
    writeHeaders(w, event.headers, 'headers');
    w.bytes(event.body, 'body');
  });
}

export function decodeRequestEvent(payload: Uint8Array): RequestEvent {
  const r = payloadReader(payload, 'Request');
  const requestId = r.varuint('requestId');
  const method = readTabled(r, METHODS, 'method');
  const url = r.str('url');
  const headers = readHeaders(r);
  const body = r.bytes('body');
  r.expectEnd('Request');
  return { requestId, method, url, headers, body };
}

// Timer: varuint timerId.

export function encodeTimerEvent(event: TimerEvent): Uint8Array {
  return encodeWith((w) => w.varuint(event.timerId, 'timerId'));
}

export function decodeTimerEvent(payload: Uint8Array): TimerEvent {
  const r = payloadReader(payload, 'Timer');
  const timerId = r.varuint('timerId');
  r.expectEnd('Timer');
  return { timerId };
}

// Scheduled: str cron, varuint scheduledTimeMs.

export function encodeScheduledEvent(event: ScheduledEvent): Uint8Array {
  return encodeWith((w) => {
    w.str(event.cron, 'cron');
    w.varuint(event.scheduledTimeMs, 'scheduledTimeMs');
  });
}

export function decodeScheduledEvent(payload: Uint8Array): ScheduledEvent {
  const r = payloadReader(payload, 'Scheduled');
  const cron = r.str('cron');
  const scheduledTimeMs = r.varuint('scheduledTimeMs');
  r.expectEnd('Scheduled');
  return { cron, scheduledTimeMs };
}

// StreamCancel: varuint requestId.

export function encodeStreamCancelEvent(event: StreamCancelEvent): Uint8Array {
  return encodeWith((w) => w.varuint(event.requestId, 'requestId'));
}

export function decodeStreamCancelEvent(payload: Uint8Array): StreamCancelEvent {
  const r = payloadReader(payload, 'StreamCancel');
  const requestId = r.varuint('requestId');
  r.expectEnd('StreamCancel');
  return { requestId };
}

// FetchResult: varuint fetchId, u8 outcome (0 response, 1 error), then either
// str error, or varuint status, str statusText, headers, bytes body.

const FETCH_RESPONSE = 0;
const FETCH_ERROR = 1;
/** HTTP status codes are three digits; 0 is what fetch reports for opaque responses. */
const MAX_HTTP_STATUS = 999;

export function encodeFetchResultEvent(event: FetchResultEvent): Uint8Array {
  return encodeWith((w) => {
    w.varuint(event.fetchId, 'fetchId');
    if (event.error !== null) {
      // The type promises empty fields beside an error; refusing otherwise keeps the record exact.
      if (event.status !== 0 || event.statusText !== '' || event.headers.length !== 0 || event.body.byteLength !== 0) {
        throw new CodecError('cannot encode FetchResult: an error result must have status 0 and empty statusText, headers and body', w.length);
      }
      w.u8(FETCH_ERROR, 'outcome');
      w.str(event.error, 'error');
      return;
    }
    if (!Number.isInteger(event.status) || event.status < 0 || event.status > MAX_HTTP_STATUS) {
      throw new CodecError(`cannot encode FetchResult: status ${event.status} is not in 0..${MAX_HTTP_STATUS}`, w.length);
    }
    w.u8(FETCH_RESPONSE, 'outcome');
    w.varuint(event.status, 'status');
    w.str(event.statusText, 'statusText');
    writeHeaders(w, event.headers, 'headers');
    w.bytes(event.body, 'body');
  });
}

export function decodeFetchResultEvent(payload: Uint8Array): FetchResultEvent {
  const r = payloadReader(payload, 'FetchResult');
  const fetchId = r.varuint('fetchId');
  const outcomeAt = r.offset;
  const outcome = r.u8('outcome');
  let result: FetchResultEvent;
  if (outcome === FETCH_ERROR) {
    const error = r.str('error');
    result = { fetchId, error, status: 0, statusText: '', headers: [], body: new Uint8Array(0) };
  } else if (outcome === FETCH_RESPONSE) {
    const statusAt = r.offset;
    const status = r.varuint('status');
    if (status > MAX_HTTP_STATUS) r.fail(`status ${status} is not in 0..${MAX_HTTP_STATUS}`, statusAt);
    const statusText = r.str('statusText');
    const headers = readHeaders(r);
    const body = r.bytes('body');
    result = { fetchId, error: null, status, statusText, headers, body };
  } else {
    return r.fail(`unknown outcome ${outcome}`, outcomeAt);
  }
  r.expectEnd('FetchResult');
  return result;
}

// Clock: varuint (readIndex * 2 + isFloat), then the time: a varuint when it is a non-negative
// integer number of ms (Date.now(), the common case: 6 bytes instead of 8), else the exact f64.

/** readIndex shares its varuint with a flag bit, so it must stay below 2^52. */
export const MAX_CLOCK_READ_INDEX = (MAX_VARUINT - 1) / 2;

export function encodeClockReading(reading: ClockReading): Uint8Array {
  return encodeWith((w) => {
    const { readIndex, timeMs } = reading;
    if (!Number.isSafeInteger(readIndex) || readIndex < 0 || readIndex > MAX_CLOCK_READ_INDEX) {
      throw new CodecError(`cannot encode Clock: readIndex ${readIndex} is not an integer in 0..2^52-1`, w.length);
    }
    if (typeof timeMs !== 'number') throw new CodecError('cannot encode Clock: timeMs is not a number', w.length);
    // -0 is an integer to Number.isSafeInteger but would come back as +0; keep it exact as an f64.
    const asInteger = Number.isSafeInteger(timeMs) && timeMs >= 0 && !Object.is(timeMs, -0);
    w.varuint(readIndex * 2 + (asInteger ? 0 : 1), 'readIndex');
    if (asInteger) w.varuint(timeMs, 'timeMs');
    else w.f64(timeMs, 'timeMs');
  });
}

export function decodeClockReading(payload: Uint8Array): ClockReading {
  const r = payloadReader(payload, 'Clock');
  const tag = r.varuint('readIndex');
  const readIndex = Math.floor(tag / 2);
  const timeMs = tag % 2 === 0 ? r.varuint('timeMs') : r.f64('timeMs');
  r.expectEnd('Clock');
  return { readIndex, timeMs };
}

// TaskEnd: varuint outputCount, then exactly TASK_END_HASH_BYTES of hash (fixed size, no prefix).

export function encodeTaskEnd(end: TaskEnd): Uint8Array {
  return encodeWith((w) => {
    w.varuint(end.outputCount, 'outputCount');
    if (!(end.hash instanceof Uint8Array) || end.hash.byteLength !== TASK_END_HASH_BYTES) {
      throw new CodecError(`cannot encode TaskEnd: hash must be ${TASK_END_HASH_BYTES} bytes`, w.length);
    }
    w.raw(end.hash, 'hash');
  });
}

export function decodeTaskEnd(payload: Uint8Array): TaskEnd {
  const r = payloadReader(payload, 'TaskEnd');
  const outputCount = r.varuint('outputCount');
  const hash = r.raw(TASK_END_HASH_BYTES, 'hash');
  r.expectEnd('TaskEnd');
  return { outputCount, hash };
}

// Epoch: varuint epoch, str nodeId.

export function encodeEpochMark(mark: EpochMark): Uint8Array {
  return encodeWith((w) => {
    w.varuint(mark.epoch, 'epoch');
    w.str(mark.nodeId, 'nodeId');
  });
}

export function decodeEpochMark(payload: Uint8Array): EpochMark {
  const r = payloadReader(payload, 'Epoch');
  const epoch = r.varuint('epoch');
  const nodeId = r.str('nodeId');
  r.expectEnd('Epoch');
  return { epoch, nodeId };
}

/** Any entry's payload, decoded by kind (for tools such as `inspect`). */
export type DecodedPayload =
  | { kind: 'Request'; value: RequestEvent }
  | { kind: 'Timer'; value: TimerEvent }
  | { kind: 'Scheduled'; value: ScheduledEvent }
  | { kind: 'StreamCancel'; value: StreamCancelEvent }
  | { kind: 'FetchResult'; value: FetchResultEvent }
  | { kind: 'Clock'; value: ClockReading }
  | { kind: 'Entropy'; value: Uint8Array }
  | { kind: 'TaskEnd'; value: TaskEnd }
  | { kind: 'Epoch'; value: EpochMark }
  | { kind: 'Preempt' | 'Noop' | 'Boot'; value: null };

export function decodePayload(kind: number, payload: Uint8Array): DecodedPayload {
  switch (kind) {
    case Kind.Request:
      return { kind: 'Request', value: decodeRequestEvent(payload) };
    case Kind.Timer:
      return { kind: 'Timer', value: decodeTimerEvent(payload) };
    case Kind.Scheduled:
      return { kind: 'Scheduled', value: decodeScheduledEvent(payload) };
    case Kind.StreamCancel:
      return { kind: 'StreamCancel', value: decodeStreamCancelEvent(payload) };
    case Kind.FetchResult:
      return { kind: 'FetchResult', value: decodeFetchResultEvent(payload) };
    case Kind.Clock:
      return { kind: 'Clock', value: decodeClockReading(payload) };
    case Kind.Entropy:
      return { kind: 'Entropy', value: payload };
    case Kind.TaskEnd:
      return { kind: 'TaskEnd', value: decodeTaskEnd(payload) };
    case Kind.Epoch:
      return { kind: 'Epoch', value: decodeEpochMark(payload) };
    case Kind.Preempt:
    case Kind.Noop:
    case Kind.Boot: {
      const name = kindName[kind]! as 'Preempt' | 'Noop' | 'Boot';
      if (payload.byteLength !== 0) {
        throw new CodecError(`${name} payload: must be empty, has ${payload.byteLength} bytes at byte 0`, 0);
      }
      return { kind: name, value: null };
    }
    default:
      throw new CodecError(`unknown kind ${kind} at byte 0`, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Batches

/** One writer reused by encodeBatch; it grows to the largest batch seen (dropped above 1 MiB). */
let batchWriter = new ByteWriter(64 * 1024);

/**
 * Append one batch to `w` (which may already hold bytes) and return where it starts and ends.
 * At least `headroomBytes` bytes of reserved, writable space are left right before `start`, so a
 * caller can put its own framing there (the trace file's u32 block length) and hand the whole range
 * to one write() without copying the batch.
 */
export function encodeBatchInto(w: ByteWriter, entries: readonly Entry[], opts: { maxBytes?: number; headroomBytes?: number } = {}): { start: number; end: number } {
  const maxBytes = opts.maxBytes ?? MAX_BATCH_BYTES;
  const headroomBytes = opts.headroomBytes ?? 0;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MIN_BATCH_BYTES) {
    throw new RangeError(`encodeBatch: maxBytes ${maxBytes} must be an integer >= ${MIN_BATCH_BYTES}`);
  }
  if (!Array.isArray(entries) || entries.length === 0) {
    // An empty batch has no seq to name; an idle primary sends Noop entries instead.
    throw new CodecError('encodeBatch: a batch must hold at least one entry', w.length);
  }
  const first = entries[0]!;
  const firstSeq = first.seq;
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) {
    throw new CodecError(`encodeBatch: first seq ${firstSeq} is not an integer >= 1`, w.length);
  }
  // Written as a subtraction: firstSeq + count - 1 can round back under the limit near 2^53.
  if (firstSeq > MAX_VARUINT - (entries.length - 1)) {
    throw new CodecError(`encodeBatch: seqs from first seq ${firstSeq} for ${entries.length} entries exceed 2^53-1`, w.length);
  }
  // Reserve room for the magic and the longest restLength a batch under maxBytes can need; the
  // real header is written right-aligned into it once the length is known.
  const reserveAt = w.skip(headroomBytes + 1 + varuintSize(maxBytes));
  try {
    const bodyAt = w.length;
    w.varuint(firstSeq, 'firstSeq');
    w.varuint(entries.length, 'count');
    w.varuint(checkPos(first.pos, firstSeq, w), 'posBase');
    let prevPos = first.pos;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const seq = firstSeq + i;
      if (entry.seq !== seq) {
        throw new CodecError(`encodeBatch: seqs must be dense: entry ${i} has seq ${entry.seq}, expected ${seq}`, w.length);
      }
      if (!isKnownKind(entry.kind)) {
        throw new CodecError(`encodeBatch: entry seq ${seq} has unknown kind ${String(entry.kind)}`, w.length);
      }
      const pos = checkPos(entry.pos, seq, w);
      if (pos < prevPos) {
        throw new CodecError(`encodeBatch: pos goes backwards at seq ${seq}: ${pos} after ${prevPos}`, w.length);
      }
      if (!(entry.payload instanceof Uint8Array)) {
        throw new CodecError(`encodeBatch: entry seq ${seq} payload is not a Uint8Array`, w.length);
      }
      w.u8(entry.kind, 'kind');
      w.varuint(pos - prevPos, 'posDelta');
      w.bytes(entry.payload, 'payload');
      prevPos = pos;
      // Checked per entry so an oversized batch fails before the writer grows far past the limit.
      const bodyBytes = w.length - bodyAt + CRC_BYTES;
      const sizeSoFar = 1 + varuintSize(bodyBytes) + bodyBytes;
      if (sizeSoFar > maxBytes) {
        throw new CodecError(`encodeBatch: batch of ${entries.length} entries exceeds the ${maxBytes}-byte batch limit (MAX_BATCH_BYTES) at seq ${seq}`, sizeSoFar);
      }
    }
    const restLength = w.length - bodyAt + CRC_BYTES;
    const start = bodyAt - 1 - varuintSize(restLength);
    if (start < reserveAt + headroomBytes) throw new Error('encodeBatch: header reservation too small (bug)');
    w.setU8At(start, BATCH_MAGIC);
    w.setVaruintAt(start + 1, restLength);
    w.u32(crc32(w.view(start, w.length)), 'crc');
    return { start, end: w.length };
  } catch (err) {
    // Leave the caller's writer as it was before this batch.
    w.truncate(reserveAt);
    throw err;
  }
}

function checkPos(pos: number, seq: number, w: ByteWriter): number {
  if (!Number.isSafeInteger(pos) || pos < 0) {
    throw new CodecError(`encodeBatch: entry seq ${seq} has pos ${pos}, not an integer in 0..2^53-1`, w.length);
  }
  return pos;
}

/** Encode entries (dense seqs, non-decreasing pos) as one batch. The result is a fresh copy. */
export function encodeBatch(entries: readonly Entry[], opts: { maxBytes?: number } = {}): Uint8Array {
  const w = batchWriter;
  w.reset();
  try {
    const { start } = encodeBatchInto(w, entries, opts);
    return w.finish(start);
  } finally {
    w.reset();
    if (w.capacity > KEEP_WRITER_BYTES) batchWriter = new ByteWriter(64 * 1024);
  }
}

/** What a batch says about itself, read without checking the CRC (for messages and routing). */
export interface BatchHeader {
  /** Total bytes of the batch, magic to CRC. */
  byteLength: number;
  firstSeq: number;
  count: number;
  /** Derived: firstSeq + count - 1. */
  lastSeq: number;
}

/**
 * Read a batch's header fields without verifying it. Useful to name seqs in an error about a batch
 * whose checksum failed (the values may then be wrong, so say "declared"), or to route a frame.
 */
export function readBatchHeader(bytes: Uint8Array, offset = 0): BatchHeader {
  const r = new ByteReader(bytes, offset, bytes.byteLength, 'batch');
  const magic = r.u8('magic');
  if (magic !== BATCH_MAGIC) r.fail(`bad magic 0x${hex2(magic)} (expected 0x${hex2(BATCH_MAGIC)})`, offset);
  const restLength = r.varuint('batch length');
  const byteLength = r.offset - offset + restLength;
  const firstSeq = r.varuint('firstSeq');
  const count = r.varuint('count');
  return { byteLength, firstSeq, count, lastSeq: firstSeq + count - 1 };
}

/**
 * Decode one batch. Without `at`, `bytes` must hold exactly one batch. With `at`, decoding starts at
 * `at.offset`, which is advanced past the batch (trailing bytes are the caller's business).
 * Payloads are views into `bytes` (no copy): keep `bytes` unmodified while the entries are in use.
 * Every failure is a CodecError whose message says what and where (byte offset in `bytes`, and the
 * seq when known).
 */
export function decodeBatch(bytes: Uint8Array, at?: { offset: number }, opts: { maxBytes?: number } = {}): Entry[] {
  const maxBytes = opts.maxBytes ?? MAX_BATCH_BYTES;
  const start = at?.offset ?? 0;
  if (!(bytes instanceof Uint8Array)) throw new CodecError('batch: input is not a Uint8Array', 0);
  if (!Number.isInteger(start) || start < 0 || start > bytes.byteLength) {
    throw new CodecError(`batch: start offset ${start} is outside the ${bytes.byteLength} input bytes`, start);
  }
  const head = new ByteReader(bytes, start, bytes.byteLength, 'batch');
  const magic = head.u8('magic');
  if (magic !== BATCH_MAGIC) head.fail(`bad magic 0x${hex2(magic)} (expected 0x${hex2(BATCH_MAGIC)})`, start);
  const restLength = head.varuint('batch length');
  const byteLength = head.offset - start + restLength;
  if (byteLength > maxBytes) {
    head.fail(`declares ${byteLength} bytes, above the ${maxBytes}-byte batch limit (MAX_BATCH_BYTES)`, start);
  }
  if (byteLength < MIN_BATCH_BYTES) head.fail(`declares ${byteLength} bytes, below the minimum ${MIN_BATCH_BYTES}`, start);
  if (restLength > head.remaining) {
    head.fail(`truncated: declares ${byteLength} bytes, only ${bytes.byteLength - start} present`, start);
  }
  const end = start + byteLength;
  const crcAt = end - CRC_BYTES;
  const stored = new DataView(bytes.buffer, bytes.byteOffset + crcAt, CRC_BYTES).getUint32(0, true);
  const computed = crc32(bytes.subarray(start, crcAt));
  if (stored !== computed) {
    head.fail(`checksum mismatch (stored 0x${hex8(stored)}, computed 0x${hex8(computed)})`, crcAt);
  }

  const r = new ByteReader(bytes, head.offset, crcAt, 'batch');
  const seqAt = r.offset;
  const firstSeq = r.varuint('firstSeq');
  if (firstSeq < 1) r.fail('firstSeq is 0 (seqs start at 1)', seqAt);
  const countAt = r.offset;
  const count = r.varuint('count');
  if (count < 1) r.fail('count is 0 (a batch holds at least one entry)', countAt);
  if (firstSeq > MAX_VARUINT - (count - 1)) r.fail(`seqs from ${firstSeq} for ${count} entries exceed 2^53-1`, countAt);
  // Refuse an impossible count before allocating for it.
  if (count * MIN_ENTRY_BYTES > r.remaining - 1) r.fail(`count ${count} cannot fit in ${r.remaining} bytes`, countAt);
  let pos = r.varuint('posBase');
  const entries: Entry[] = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    const entryAt = r.offset;
    const kind = r.u8('kind');
    if (!isKnownKind(kind)) r.fail(`unknown kind ${kind} (0x${hex2(kind)}) in entry seq ${seq}`, entryAt);
    const deltaAt = r.offset;
    // posDelta is unsigned, so a pos cannot go backwards; it can only overflow.
    pos += r.varuint('posDelta');
    if (pos > MAX_VARUINT) r.fail(`pos of seq ${seq} exceeds 2^53-1`, deltaAt);
    const lengthAt = r.offset;
    const payloadLength = r.varuint('payload length');
    if (payloadLength > r.remaining) {
      r.fail(`payload of seq ${seq} declares ${payloadLength} bytes, only ${r.remaining} left in the batch`, lengthAt);
    }
    entries[i] = { seq, pos, kind: kind as KindCode, payload: r.raw(payloadLength, 'payload') };
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} unparsed bytes after the last entry (seq ${firstSeq + count - 1})`);
  if (at !== undefined) at.offset = end;
  else if (end !== bytes.byteLength) {
    throw new CodecError(`batch: ${bytes.byteLength - end} trailing bytes after the batch at byte ${end}`, end, `${bytes.byteLength - end} trailing bytes after the batch`);
  }
  return entries;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
