// Logging-channel frames: one WebSocket binary message = 1 type byte + payload.
//
//   0x01 ENTRIES    payload = one batch (codec.ts encodeBatch), dense seqs, carries its own CRC
//   0x02 ACK        varuint seq: the backup has received every entry up to and including seq
//   0x03 HEARTBEAT  varuint seq: the sender's last seq (log seq on the primary, received seq on the backup);
//                   from a backup optionally followed by varuint replayedSeq, varuint backlogMs: how far it
//                   has replayed and its estimate of the time to replay the rest (the replay backlog)
//   0x10 CONTROL    UTF-8 JSON object with a string field `t` (the handshake: hello/auth/welcome/refuse)
//
// After the handshake each frame travels sealed: the frame, then a 16-byte tag (frame-mac.ts).
// maxFrameBytes bounds the frame; the tag comes on top.
//
// decodeFrame validates everything and throws a FrameError that names the problem, so a bad frame
// is refused at the edge (DESIGN rule 6) and never reaches the VM.

import { isUtf8 } from 'node:buffer';
import { ByteReader, ByteWriter, CodecError } from './bytes.js';
import { decodeBatch, encodeBatchInto, MAX_BATCH_BYTES } from './codec.js';
import type { Entry } from './entry.js';

export const FrameType = {
  Entries: 0x01,
  Ack: 0x02,
  Heartbeat: 0x03,
  /** A chunk of a VM snapshot (join by snapshot), sent between the welcome and the first entries. */
  Snapshot: 0x04,
  Control: 0x10,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Default bound on one frame (type byte + payload), in bytes: one full-size batch. */
export const DEFAULT_MAX_FRAME_BYTES = MAX_BATCH_BYTES + 1;
/** Smallest frame bound we accept: the handshake messages must fit comfortably. */
export const MIN_MAX_FRAME_BYTES = 4 * 1024;
/** Default period between heartbeats, in ms. */
export const DEFAULT_HEARTBEAT_MS = 200;
/** Default silence after which the peer is suspected (DESIGN: 3 heartbeat periods), in ms. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 3 * DEFAULT_HEARTBEAT_MS;

/** Upper bound of a batch's own framing: magic, restLength, firstSeq, count, posBase (varuints), CRC. */
export const BATCH_OVERHEAD_MAX_BYTES = 1 + 8 + 8 + 8 + 8 + 4;
const TYPE_BYTES = 1;

/**
 * Wire bytes of entries (RetainedLog.from's budget) that fit in one ENTRIES frame of `maxFrameBytes`.
 * An entry bigger than this can never be sent: the node must bound entries (request size, fetch
 * body size) below it.
 */
export function entriesBudgetBytes(maxFrameBytes: number): number {
  return maxFrameBytes - TYPE_BYTES - BATCH_OVERHEAD_MAX_BYTES;
}

/** A malformed frame. `frameType` is the type byte when one was read. */
export class FrameError extends Error {
  override name = 'FrameError';
  constructor(
    message: string,
    readonly frameType?: number,
  ) {
    super(message);
  }
}

export type Frame =
  | { type: 'entries'; entries: Entry[] }
  | { type: 'ack'; seq: number }
  | { type: 'heartbeat'; seq: number; replay?: ReplayProgress }
  | { type: 'snapshot'; bytes: Uint8Array }
  | { type: 'control'; message: ControlObject };

/** A CONTROL payload: a JSON object with a string `t`. Its fields are checked by auth.ts. */
export type ControlObject = { t: string } & Record<string, unknown>;

export function frameTypeName(code: number): string {
  switch (code) {
    case FrameType.Entries:
      return 'ENTRIES';
    case FrameType.Ack:
      return 'ACK';
    case FrameType.Heartbeat:
      return 'HEARTBEAT';
    case FrameType.Control:
      return 'CONTROL';
    case FrameType.Snapshot:
      return 'SNAPSHOT';
    default:
      return `0x${code.toString(16).padStart(2, '0')}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding. Every encoder returns a fresh buffer the caller owns: ws may keep a reference to it
// until the bytes are written out, so a shared buffer must never be handed to send().

/** Writer reused for ENTRIES frames; the batch is copied out once (as encodeBatch would). */
let entriesWriter = new ByteWriter(64 * 1024);
/** Above this capacity the writer is dropped after use so one huge frame is not kept forever. */
const KEEP_WRITER_BYTES = 1024 * 1024;

/** One ENTRIES frame holding `entries` (dense seqs). Throws CodecError if it exceeds maxFrameBytes. */
export function encodeEntriesFrame(entries: readonly Entry[], maxFrameBytes: number): Uint8Array {
  const w = entriesWriter;
  w.reset();
  try {
    // The type byte goes in the headroom right before the batch: no second copy of the batch.
    const { start } = encodeBatchInto(w, entries, { maxBytes: maxFrameBytes - TYPE_BYTES, headroomBytes: TYPE_BYTES });
    w.setU8At(start - TYPE_BYTES, FrameType.Entries);
    return w.finish(start - TYPE_BYTES);
  } finally {
    w.reset();
    if (w.capacity > KEEP_WRITER_BYTES) entriesWriter = new ByteWriter(64 * 1024);
  }
}

function encodeSeqFrame(type: number, seq: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`${what} frame: seq ${seq} is not an integer >= 0`);
  const w = new ByteWriter(TYPE_BYTES + 8);
  w.u8(type);
  w.varuint(seq, 'seq');
  return w.finish();
}

export function encodeAckFrame(seq: number): Uint8Array {
  return encodeSeqFrame(FrameType.Ack, seq, 'ACK');
}

/** A backup's replay progress, carried by its heartbeats. */
export interface ReplayProgress {
  replayedSeq: number;
  backlogMs: number;
}

export function encodeHeartbeatFrame(seq: number, replay?: ReplayProgress): Uint8Array {
  if (!replay) return encodeSeqFrame(FrameType.Heartbeat, seq, 'HEARTBEAT');
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`HEARTBEAT frame: seq ${seq} is not an integer >= 0`);
  const w = new ByteWriter(TYPE_BYTES + 24);
  w.u8(FrameType.Heartbeat);
  w.varuint(seq, 'seq');
  w.varuint(Math.max(0, Math.floor(replay.replayedSeq)), 'replayedSeq');
  w.varuint(Math.max(0, Math.min(0xffff_ffff, Math.round(replay.backlogMs))), 'backlogMs');
  return w.finish();
}

export function encodeSnapshotFrame(chunk: Uint8Array): Uint8Array {
  const out = new Uint8Array(TYPE_BYTES + chunk.byteLength);
  out[0] = FrameType.Snapshot;
  out.set(chunk, TYPE_BYTES);
  return out;
}

export function encodeControlFrame(message: ControlObject): Uint8Array {
  let encoded: EncodedJson | null = null;
  for (const key in message) {
    const value = message[key];
    if (!(value instanceof EncodedJson)) continue;
    if (encoded !== null) throw new RangeError(`CONTROL frame '${message.t}': more than one EncodedJson field`);
    encoded = value;
  }
  const json = JSON.stringify(message);
  if (encoded === null) {
    const out = new Uint8Array(TYPE_BYTES + Buffer.byteLength(json, 'utf8'));
    out[0] = FrameType.Control;
    Buffer.from(out.buffer, out.byteOffset, out.byteLength).write(json, TYPE_BYTES, 'utf8');
    return out;
  }
  const pieces = spliceEncodedJson(json, encoded);
  if (pieces === null) throw new RangeError(`CONTROL frame '${message.t}': the EncodedJson marker is not there exactly once`);
  const out = new Uint8Array(TYPE_BYTES + pieces.reduce((n, piece) => n + piece.byteLength, 0));
  out[0] = FrameType.Control;
  let at = TYPE_BYTES;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.byteLength;
  }
  return out;
}

/**
 * `json` (a JSON.stringify of a value holding `encoded` once) as UTF-8 pieces with the encoded bytes
 * where its marker is: the same text as JSON.stringify of the value with the original in its place.
 * Null when the marker is not there exactly once (a string of the value's own that spells it).
 */
export function spliceEncodedJson(json: string, encoded: EncodedJson): Uint8Array[] | null {
  const at = json.indexOf(MARKER_JSON);
  if (at < 0 || json.indexOf(MARKER_JSON, at + 1) >= 0) return null;
  return [Buffer.from(json.slice(0, at), 'utf8'), encoded.bytes, Buffer.from(json.slice(at + MARKER_JSON.length), 'utf8')];
}

/** What an EncodedJson stands for in its message's JSON text until its bytes are spliced in. */
const MARKER = '\u0000ftjs:encoded-json\u0000';
const MARKER_JSON = JSON.stringify(MARKER);

/**
 * A value's JSON text as UTF-8, encoded once, for a CONTROL frame field sent again and again: the
 * welcome's boot config (about 1 MB, mostly the glue) goes to every backup that connects, and
 * encoding it is most of a welcome's cost. Put it directly in the message (`{ t: 'welcome',
 * bootConfig: encoded }`); the frame's bytes are those of the message with the value itself.
 */
export class EncodedJson {
  readonly bytes: Buffer;
  constructor(value: unknown) {
    this.bytes = Buffer.from(JSON.stringify(value), 'utf8');
  }
  toJSON(): string {
    return MARKER;
  }
}

const encodedOf = new WeakMap<object, EncodedJson>();
/** The EncodedJson of `value`, made once per object: only for values never changed once made (a boot config). */
export function encodedJsonOf(value: object): EncodedJson {
  let e = encodedOf.get(value);
  if (e === undefined) {
    e = new EncodedJson(value);
    encodedOf.set(value, e);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Decode and validate one frame. ENTRIES payloads are decoded into entries whose payloads are views
 * into `bytes` (keep `bytes` unmodified while they are in use).
 */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.byteLength === 0) throw new FrameError('empty frame (no type byte)');
  const type = bytes[0]!;
  const payload = bytes.subarray(TYPE_BYTES);
  switch (type) {
    case FrameType.Entries: {
      try {
        // The transport already bounds the frame (maxPayload); do not apply a second, smaller bound.
        const entries = decodeBatch(payload, undefined, { maxBytes: Math.max(MAX_BATCH_BYTES, payload.byteLength) });
        return { type: 'entries', entries };
      } catch (err) {
        if (err instanceof CodecError) throw new FrameError(`bad ENTRIES frame: ${err.message}`, type);
        throw err;
      }
    }
    case FrameType.Ack:
      return { type: 'ack', seq: decodeSeq(payload, 'ACK', type) };
    case FrameType.Heartbeat:
      return decodeHeartbeat(payload, type);
    case FrameType.Control:
      return { type: 'control', message: decodeControl(payload, type) };
    case FrameType.Snapshot:
      if (payload.byteLength === 0) throw new FrameError('empty SNAPSHOT frame', type);
      return { type: 'snapshot', bytes: payload };
    default:
      throw new FrameError(`unknown frame type 0x${type.toString(16).padStart(2, '0')} (${bytes.byteLength} bytes)`, type);
  }
}

function decodeSeq(payload: Uint8Array, name: string, type: number): number {
  const r = new ByteReader(payload, 0, payload.byteLength, `${name} frame`);
  try {
    const seq = r.varuint('seq');
    r.expectEnd('the seq');
    return seq;
  } catch (err) {
    if (err instanceof CodecError) {
      const problem = err.detail.startsWith('truncated') || err.detail.includes('varuint') ? 'bad varuint' : 'trailing bytes';
      throw new FrameError(`bad ${name} frame: ${problem}: ${err.message}`, type);
    }
    throw err;
  }
}

function decodeHeartbeat(payload: Uint8Array, type: number): Frame {
  const r = new ByteReader(payload, 0, payload.byteLength, 'HEARTBEAT frame');
  try {
    const seq = r.varuint('seq');
    if (r.remaining === 0) return { type: 'heartbeat', seq };
    try {
      const replayedSeq = r.varuint('replayedSeq');
      const backlogMs = r.varuint('backlogMs');
      r.expectEnd('the replay progress');
      return { type: 'heartbeat', seq, replay: { replayedSeq, backlogMs } };
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      throw new FrameError(`bad HEARTBEAT frame: trailing bytes after the seq that are not a replay progress (varuint replayedSeq, varuint backlogMs): ${err.message}`, type);
    }
  } catch (err) {
    if (err instanceof CodecError) {
      const problem = err.detail.startsWith('truncated') || err.detail.includes('varuint') ? 'bad varuint' : 'trailing bytes';
      throw new FrameError(`bad HEARTBEAT frame: ${problem}: ${err.message}`, type);
    }
    throw err;
  }
}

function decodeControl(payload: Uint8Array, type: number): ControlObject {
  // isUtf8 (simdutf) and a plain decode: the same strings as a fatal TextDecoder, several times
  // faster on the welcome's megabyte of glue.
  if (!isUtf8(payload)) throw new FrameError('bad CONTROL frame: payload is not valid UTF-8', type);
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new FrameError(`bad CONTROL frame: bad JSON: ${(err as Error).message}`, type);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError('bad CONTROL frame: JSON is not an object', type);
  }
  const t = (value as Record<string, unknown>).t;
  if (typeof t !== 'string') throw new FrameError('bad CONTROL frame: no string field "t"', type);
  return value as ControlObject;
}
