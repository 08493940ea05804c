// What a task emitted (its outputs and console lines), as a trace keeps it for divergence reports.
//
// A TaskEnd entry carries only a hash of its task's outputs: enough to verify a replay, not to show
// what was expected when it fails. So the node that records a trace also writes, next to the log,
// trace-only "outputs" blocks holding each task's outputs and console lines as emitted, keyed by the
// seq of the task's TaskEnd and capped per task (`--trace-outputs-max-bytes`). They are never part of
// the log: the logging channel does not carry them and they take no seq.
//
// Outputs block (the payload of one trace-file block, after its u32 length):
//   u8 0xF2 (OUTPUTS_MAGIC) | u8 version (1) | u32 record count | records... | u32 CRC-32 of all before
// record:
//   varuint taskEndSeq | u8 flags (bit 0: something was cut to the cap) | varuint output count |
//   outputs... | varuint console line count | lines... | varuint console lines omitted
// output:
//   u8 kind (0 response, 1 fetch, 2 streamed response head, 3 stream chunk, 4 stream end)
//   response, head: varuint requestId | varuint status | str statusText
//   fetch:    varuint fetchId | str method | str url
//   chunk:    varuint requestId
//   end:      varuint requestId | u8 has error | (str error, when it has)
//   varuint header count | (str name | str value)... | varuint headers omitted |
//   varuint body bytes (as emitted) | bytes body (kept: a prefix when cut)
// console line: str level | varuint text bytes (as emitted) | str text (kept: a prefix when cut)

import { createHash, hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { ByteReader, type ByteWriter, CodecError } from './bytes.js';
import type { HeaderList } from './entry.js';

export const OUTPUTS_MAGIC = 0xf2;
const OUTPUTS_BLOCK_VERSION = 1;
const CRC_BYTES = 4;
/** magic + version + count + CRC: the framing of an outputs block. */
export const OUTPUTS_BLOCK_OVERHEAD_BYTES = 1 + 1 + 4 + CRC_BYTES;

/** Default cap on what a trace keeps of one task's outputs and console lines. */
export const DEFAULT_TRACE_OUTPUTS_MAX_BYTES = 16 * 1024;
/** Largest cap accepted (a record must fit in one block). */
export const MAX_TRACE_OUTPUTS_MAX_BYTES = 1024 * 1024;

export type RecordedOutput =
  | { kind: 'response'; requestId: number; status: number; statusText: string; headers: HeaderList; headersOmitted: number; body: Uint8Array; bodyBytes: number }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: HeaderList; headersOmitted: number; body: Uint8Array; bodyBytes: number }
  // Parts of a streamed response (head: status and headers; chunk: body; end: error or null).
  | { kind: StreamPart; requestId: number; status: number; statusText: string; error: string | null; headers: HeaderList; headersOmitted: number; body: Uint8Array; bodyBytes: number };

export type StreamPart = 'head' | 'chunk' | 'end';
const STREAM_KIND_CODES: Record<StreamPart, number> = { head: 2, chunk: 3, end: 4 };
const STREAM_KINDS: Record<number, StreamPart> = { 2: 'head', 3: 'chunk', 4: 'end' };

export interface RecordedConsoleLine {
  level: string;
  /** The text kept (a prefix of the line when it was cut). */
  text: string;
  /** UTF-8 bytes of the line as emitted. */
  textBytes: number;
}

export interface TaskOutputsRecord {
  /** Seq of the task's TaskEnd entry. */
  seq: number;
  /** Something (a body, a header, a console line) was cut to the cap. */
  truncated: boolean;
  outputs: RecordedOutput[];
  console: RecordedConsoleLine[];
  /** Console lines not kept at all (past the cap). */
  consoleOmitted: number;
}

/** What a live task emitted, as the VM reports it (structurally: hypervisor/vm/vm.ts Output, ConsoleLine). */
export type EmittedOutput =
  | { kind: 'response'; requestId: number; status: number; statusText: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'head'; requestId: number; status: number; statusText: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'chunk'; requestId: number; body: Uint8Array }
  | { kind: 'end'; requestId: number; error: string | null; body: Uint8Array };

/**
 * The record a trace keeps of one task: its outputs' metadata first, then their bodies, then its
 * console lines, each cut to what is left of `maxBytes` (counted in UTF-8 / body bytes). Bodies are
 * kept by reference (a view when cut): the caller must not mutate them.
 */
export function captureTaskOutputs(seq: number, outputs: readonly EmittedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>, maxBytes: number): TaskOutputsRecord {
  if (surelyUnderCap(outputs, consoleLines, maxBytes)) return wholeRecord(seq, outputs, consoleLines);
  let budget = maxBytes;
  let truncated = false;
  const fitText = (text: string): string => {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes <= budget) {
      budget -= bytes;
      return text;
    }
    truncated = true;
    const kept = cutUtf8(text, budget);
    budget = 0;
    return kept;
  };
  const fitHeaders = (headers: HeaderList): { headers: HeaderList; omitted: number } => {
    const kept: HeaderList = [];
    let omitted = 0;
    for (const [name, value] of headers) {
      const bytes = Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value, 'utf8');
      if (omitted === 0 && bytes <= budget) {
        budget -= bytes;
        kept.push([name, value]);
      } else {
        omitted++;
        truncated = true;
      }
    }
    return { headers: kept, omitted };
  };
  const recorded: RecordedOutput[] = outputs.map((o) => {
    if (o.kind === 'response') {
      const statusText = fitText(o.statusText);
      const { headers, omitted } = fitHeaders(o.headers);
      return { kind: 'response', requestId: o.requestId, status: o.status, statusText, headers, headersOmitted: omitted, body: o.body, bodyBytes: o.body.byteLength };
    }
    if (o.kind === 'head' || o.kind === 'chunk' || o.kind === 'end') {
      const head = o.kind === 'head' ? { status: o.status, statusText: fitText(o.statusText), ...fitHeaders(o.headers) } : { status: 0, statusText: '', headers: [], omitted: 0 };
      const error = o.kind === 'end' && o.error !== null ? fitText(o.error) : null;
      return {
        kind: o.kind,
        requestId: o.requestId,
        status: head.status,
        statusText: head.statusText,
        error,
        headers: head.headers,
        headersOmitted: head.omitted,
        body: o.body,
        bodyBytes: o.body.byteLength,
      };
    }
    const method = fitText(o.method);
    const url = fitText(o.url);
    const { headers, omitted } = fitHeaders(o.headers);
    return { kind: 'fetch', fetchId: o.fetchId, method, url, headers, headersOmitted: omitted, body: o.body, bodyBytes: o.body.byteLength };
  });
  for (const o of recorded) {
    if (o.body.byteLength <= budget) {
      budget -= o.body.byteLength;
      continue;
    }
    truncated = true;
    o.body = o.body.subarray(0, budget);
    budget = 0;
  }
  const lines: RecordedConsoleLine[] = [];
  let consoleOmitted = 0;
  for (const line of consoleLines) {
    if (budget === 0) {
      consoleOmitted++;
      truncated = true;
      continue;
    }
    const textBytes = Buffer.byteLength(line.text, 'utf8');
    lines.push({ level: line.level, text: fitText(line.text), textBytes });
  }
  return { seq, truncated, outputs: recorded, console: lines, consoleOmitted };
}

/**
 * Whether a task's outputs and console lines are below the cap by a bound that needs no UTF-8
 * measuring: a UTF-16 unit is at most 3 UTF-8 bytes. Strictly below, so no console line meets an
 * empty budget. Then the record keeps everything, as the measuring path would, for less work per task.
 */
function surelyUnderCap(outputs: readonly EmittedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>, maxBytes: number): boolean {
  let units = 0;
  let bodyBytes = 0;
  for (const o of outputs) {
    bodyBytes += o.body.byteLength;
    if (o.kind === 'response' || o.kind === 'head') units += o.statusText.length;
    else if (o.kind === 'fetch') units += o.method.length + o.url.length;
    else if (o.kind === 'end' && o.error !== null) units += o.error.length;
    if (o.kind === 'response' || o.kind === 'head' || o.kind === 'fetch') for (const [name, value] of o.headers) units += name.length + value.length;
  }
  for (const line of consoleLines) units += line.text.length;
  return 3 * units + bodyBytes < maxBytes;
}

/** The record of a task that fits the cap whole (captureTaskOutputs' result when nothing is cut). */
function wholeRecord(seq: number, outputs: readonly EmittedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): TaskOutputsRecord {
  const recorded: RecordedOutput[] = new Array(outputs.length);
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    const bodyBytes = o.body.byteLength;
    switch (o.kind) {
      case 'response':
        recorded[i] = { kind: 'response', requestId: o.requestId, status: o.status, statusText: o.statusText, headers: o.headers, headersOmitted: 0, body: o.body, bodyBytes };
        break;
      case 'fetch':
        recorded[i] = { kind: 'fetch', fetchId: o.fetchId, method: o.method, url: o.url, headers: o.headers, headersOmitted: 0, body: o.body, bodyBytes };
        break;
      case 'head':
        recorded[i] = { kind: 'head', requestId: o.requestId, status: o.status, statusText: o.statusText, error: null, headers: o.headers, headersOmitted: 0, body: o.body, bodyBytes };
        break;
      case 'chunk':
      case 'end':
        recorded[i] = {
          kind: o.kind,
          requestId: o.requestId,
          status: 0,
          statusText: '',
          error: o.kind === 'end' ? o.error : null,
          headers: [],
          headersOmitted: 0,
          body: o.body,
          bodyBytes,
        };
        break;
    }
  }
  const lines: RecordedConsoleLine[] = new Array(consoleLines.length);
  for (let i = 0; i < consoleLines.length; i++) {
    const line = consoleLines[i]!;
    lines[i] = { level: line.level, text: line.text, textBytes: Buffer.byteLength(line.text, 'utf8') };
  }
  return { seq, truncated: false, outputs: recorded, console: lines, consoleOmitted: 0 };
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes that ends on a whole character. */
/** An output as the task hash sees it: a VM's Output or a whole RecordedOutput. */
export type HashedOutput =
  | { kind: 'response' | 'head'; requestId: number; status: number; statusText: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: HeaderList; body: Uint8Array }
  | { kind: 'chunk'; requestId: number; body: Uint8Array }
  | { kind: 'end'; requestId: number; error: string | null; body: Uint8Array };

/**
 * The TaskEnd hash: the first 16 bytes of SHA-256 over a task's outputs and console lines, each
 * length-framed. The VM computes it live and in replay; a trace reader recomputes it from a whole record.
 */
export function taskHash(outputs: readonly HashedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): Uint8Array {
  const framed = frameForHash(outputs, consoleLines);
  const digest = framed ? hash('sha256', framed, 'buffer') : taskHashStreaming(outputs, consoleLines);
  return new Uint8Array(digest.buffer, digest.byteOffset, 16).slice();
}

/**
 * The same hash fed piece by piece to a hash object: for a task whose framed bytes would not fit the
 * scratch buffer (a large body). Exported for the test that checks both ways give the same bytes.
 */
export function taskHashStreaming(outputs: readonly HashedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): Buffer {
  const h = createHash('sha256');
  for (const o of outputs) {
    const meta = outputMeta(o);
    h.update(`${meta.length}:${meta}${o.body.byteLength}:`);
    h.update(o.body);
  }
  for (const line of consoleLines) h.update(`console:${line.level}:${line.text.length}:${line.text}`);
  return h.digest();
}

/**
 * Every task hashes its outputs (issue 19: createHash, update per piece and digest cost ~2.3 µs for a
 * kv.js response): the framed bytes are written into one reused buffer and hashed in one call, the
 * very bytes the streaming form feeds (a string goes in as UTF-8 either way, a lone surrogate as
 * U+FFFD). Null when they would not fit in HASH_SCRATCH_MAX_BYTES.
 */
const HASH_SCRATCH_MAX_BYTES = 256 * 1024;
let hashScratch = Buffer.allocUnsafeSlow(4096);

function frameForHash(outputs: readonly HashedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): Buffer | null {
  let len = 0;
  const room = (n: number): boolean => {
    if (len + n <= hashScratch.byteLength) return true;
    if (len + n > HASH_SCRATCH_MAX_BYTES) return false;
    let capacity = hashScratch.byteLength * 2;
    while (capacity < len + n) capacity *= 2;
    const next = Buffer.allocUnsafeSlow(capacity);
    hashScratch.copy(next, 0, 0, len);
    hashScratch = next;
    return true;
  };
  // At most 3 UTF-8 bytes per UTF-16 unit (a surrogate pair is 4 bytes for 2 units).
  const text = (s: string): boolean => {
    if (!room(s.length * 3)) return false;
    len += hashScratch.write(s, len);
    return true;
  };
  for (const o of outputs) {
    const meta = outputMeta(o);
    if (!text(`${meta.length}:${meta}${o.body.byteLength}:`) || !room(o.body.byteLength)) return null;
    hashScratch.set(o.body, len);
    len += o.body.byteLength;
  }
  for (const line of consoleLines) if (!text(`console:${line.level}:${line.text.length}:${line.text}`)) return null;
  return hashScratch.subarray(0, len);
}

/** What identifies an output besides its body, for the task hash. */
function outputMeta(o: HashedOutput): string {
  switch (o.kind) {
    case 'response':
      return JSON.stringify(['response', o.requestId, o.status, o.statusText, o.headers]);
    case 'fetch':
      return JSON.stringify(['fetch', o.fetchId, o.method, o.url, o.headers]);
    case 'head':
      return JSON.stringify(['head', o.requestId, o.status, o.statusText, o.headers]);
    case 'chunk':
      return JSON.stringify(['chunk', o.requestId]);
    case 'end':
      return JSON.stringify(['end', o.requestId, o.error]);
  }
}

/**
 * The TaskEnd hash of what a whole (uncut) record describes; null when the record was cut to the
 * cap, so it cannot be checked. A reader compares it with the TaskEnd's: a record edited with its
 * CRC fixed would otherwise show a false "expected" side in a divergence report.
 */
export function recordTaskHash(record: TaskOutputsRecord): Uint8Array | null {
  if (record.truncated || record.consoleOmitted > 0) return null;
  if (record.outputs.some((o) => o.headersOmitted > 0 || o.body.byteLength !== o.bodyBytes)) return null;
  return taskHash(record.outputs as HashedOutput[], record.console);
}

export function cutUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.byteLength <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  // Back off continuation bytes (10xxxxxx) so a character is never split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** Cut a string to valid UTF-16 (str() refuses lone surrogates, which the guest can produce). */
function wellFormed(text: string): string {
  return (text as string & { toWellFormed?: () => string }).toWellFormed?.() ?? Buffer.from(text, 'utf8').toString('utf8');
}

const NO_HEADERS: HeaderList = [];

/** A task kept whole, as emitted (encodeRecord fills in what a record that cut nothing holds). */
interface WholeTask {
  seq: number;
  truncated: false;
  outputs: readonly EmittedOutput[];
  console: ReadonlyArray<{ level: string; text: string }>;
  consoleOmitted: 0;
}

/**
 * Encodes the record of one task into `w`, exactly as encodeRecord(captureTaskOutputs(...)) would,
 * without building the record when the task is far enough under the cap to be kept whole (the
 * recording path's common case: no objects per task, no UTF-8 measuring).
 */
export function encodeTaskOutputs(w: ByteWriter, seq: number, outputs: readonly EmittedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>, maxBytes: number): void {
  if (surelyUnderCap(outputs, consoleLines, maxBytes)) encodeRecord(w, { seq, truncated: false, outputs, console: consoleLines, consoleOmitted: 0 });
  else encodeRecord(w, captureTaskOutputs(seq, outputs, consoleLines, maxBytes));
}

/** Encodes one record (as captured by captureTaskOutputs) into `w`. */
export function encodeTaskOutputsRecord(w: ByteWriter, record: TaskOutputsRecord): void {
  encodeRecord(w, record);
}

/**
 * Encodes one record into `w`: a TaskOutputsRecord, or (for a task kept whole) the task's outputs and
 * console lines as emitted, whose missing fields are those of a record that cut nothing. One encoder
 * for both, so a task kept whole has the same bytes either way.
 */
function encodeRecord(w: ByteWriter, r: TaskOutputsRecord | WholeTask): void {
  w.varuint(r.seq, 'seq');
  w.u8(r.truncated ? 1 : 0, 'flags');
  w.varuint(r.outputs.length, 'output count');
  for (const o of r.outputs as ReadonlyArray<RecordedOutput | EmittedOutput>) {
    if (o.kind === 'response') {
      w.u8(0, 'output kind');
      w.varuint(o.requestId, 'requestId');
      w.varuint(o.status, 'status');
      w.str(wellFormed(o.statusText), 'statusText');
    } else if (o.kind !== 'fetch') {
      w.u8(STREAM_KIND_CODES[o.kind], 'output kind');
      w.varuint(o.requestId, 'requestId');
      if (o.kind === 'head') {
        w.varuint(o.status, 'status');
        w.str(wellFormed(o.statusText), 'statusText');
      } else if (o.kind === 'end') {
        w.u8(o.error === null ? 0 : 1, 'has error');
        if (o.error !== null) w.str(wellFormed(o.error), 'error');
      }
    } else {
      w.u8(1, 'output kind');
      w.varuint(o.fetchId, 'fetchId');
      w.str(wellFormed(o.method), 'method');
      w.str(wellFormed(o.url), 'url');
    }
    const headers = 'headers' in o ? o.headers : NO_HEADERS;
    w.varuint(headers.length, 'header count');
    for (const [name, value] of headers) {
      w.str(wellFormed(name), 'header name');
      w.str(wellFormed(value), 'header value');
    }
    w.varuint('headersOmitted' in o ? o.headersOmitted : 0, 'headers omitted');
    w.varuint('bodyBytes' in o ? o.bodyBytes : o.body.byteLength, 'body bytes');
    w.bytes(o.body, 'body');
  }
  w.varuint(r.console.length, 'console count');
  for (const l of r.console as ReadonlyArray<RecordedConsoleLine | { level: string; text: string }>) {
    w.str(wellFormed(l.level), 'console level');
    w.varuint('textBytes' in l ? l.textBytes : Buffer.byteLength(l.text, 'utf8'), 'console text bytes');
    w.str(wellFormed(l.text), 'console text');
  }
  w.varuint(r.consoleOmitted, 'console omitted');
}

/**
 * Encodes records as outputs blocks into `w` (after whatever it holds), each with `headroomBytes`
 * reserved before it, none above `maxBlockBytes`. Calls `emit(start, end)` for each block, where
 * [start, end) is the block in `w`, holding `count` records, and the headroom is right before `start`. A record that cannot fit
 * in a block alone is dropped; returns how many were.
 */
export function encodeOutputsBlocks(
  w: ByteWriter,
  records: readonly TaskOutputsRecord[],
  maxBlockBytes: number,
  headroomBytes: number,
  emit: (start: number, end: number, count: number) => void,
): number {
  let dropped = 0;
  let i = 0;
  while (i < records.length) {
    w.reset();
    w.skip(headroomBytes);
    const start = w.length;
    const countAt = beginOutputsBlock(w);
    let count = 0;
    while (i < records.length) {
      const before = w.length;
      encodeRecord(w, records[i]!);
      if (w.length - start + CRC_BYTES > maxBlockBytes) {
        w.truncate(before);
        if (count === 0) {
          dropped++;
          i++;
          continue;
        }
        break;
      }
      count++;
      i++;
    }
    if (count === 0) break;
    endOutputsBlock(w, start, countAt, count);
    emit(start, w.length, count);
  }
  return dropped;
}

/** Bytes before the first record of an outputs block: magic, version, count. */
export const OUTPUTS_BLOCK_HEAD_BYTES = 1 + 1 + 4;

/** Writes an outputs block's head (magic, version, a count to be set) into `w`; returns where the count goes. */
export function beginOutputsBlock(w: ByteWriter): number {
  w.u8(OUTPUTS_MAGIC, 'magic');
  w.u8(OUTPUTS_BLOCK_VERSION, 'version');
  return w.skip(4);
}

/** Sets the count of the outputs block begun at `start` (count at `countAt`) and appends its CRC. */
export function endOutputsBlock(w: ByteWriter, start: number, countAt: number, count: number): void {
  w.setU32At(countAt, count);
  w.u32(crc32(w.view(start, w.length)), 'crc');
}

/** Decodes one outputs block (exactly `bytes`). Throws CodecError saying what and where. */
export function decodeOutputsBlock(bytes: Uint8Array): TaskOutputsRecord[] {
  if (bytes.byteLength < OUTPUTS_BLOCK_OVERHEAD_BYTES) throw new CodecError(`outputs block: ${bytes.byteLength} bytes, below the minimum ${OUTPUTS_BLOCK_OVERHEAD_BYTES}`, 0);
  const crcAt = bytes.byteLength - CRC_BYTES;
  const stored = new DataView(bytes.buffer, bytes.byteOffset + crcAt, CRC_BYTES).getUint32(0, true);
  const computed = crc32(bytes.subarray(0, crcAt));
  if (stored !== computed) throw new CodecError(`outputs block: checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`, crcAt);
  const r = new ByteReader(bytes, 0, crcAt, 'outputs block');
  if (r.u8('magic') !== OUTPUTS_MAGIC) r.fail('bad magic', 0);
  const version = r.u8('version');
  if (version !== OUTPUTS_BLOCK_VERSION) r.fail(`outputs block version ${version} is not supported`, 1);
  const count = r.u32('count');
  const records: TaskOutputsRecord[] = [];
  for (let k = 0; k < count; k++) {
    const seq = r.varuint('seq');
    const truncated = (r.u8('flags') & 1) === 1;
    const outputCount = r.varuint('output count');
    if (outputCount > r.remaining) r.fail(`output count ${outputCount} cannot fit`);
    const outputs: RecordedOutput[] = [];
    for (let j = 0; j < outputCount; j++) {
      const kind = r.u8('output kind');
      let head: Record<string, unknown>;
      const part = STREAM_KINDS[kind];
      if (kind === 0) head = { kind: 'response', requestId: r.varuint('requestId'), status: r.varuint('status'), statusText: r.str('statusText') };
      else if (kind === 1) head = { kind: 'fetch', fetchId: r.varuint('fetchId'), method: r.str('method'), url: r.str('url') };
      else if (part !== undefined) {
        head = { kind: part, requestId: r.varuint('requestId'), status: 0, statusText: '', error: null };
        if (part === 'head') {
          head.status = r.varuint('status');
          head.statusText = r.str('statusText');
        } else if (part === 'end' && r.u8('has error') === 1) head.error = r.str('error');
      } else throw new CodecError(`outputs block: unknown output kind ${kind}`, r.offset - 1);
      const headerCount = r.varuint('header count');
      if (headerCount > r.remaining) r.fail(`header count ${headerCount} cannot fit`);
      const headers: HeaderList = [];
      for (let h = 0; h < headerCount; h++) headers.push([r.str('header name'), r.str('header value')]);
      const headersOmitted = r.varuint('headers omitted');
      const bodyBytes = r.varuint('body bytes');
      const body = r.bytes('body');
      outputs.push({ ...head, headers, headersOmitted, body, bodyBytes } as RecordedOutput);
    }
    const consoleCount = r.varuint('console count');
    if (consoleCount > r.remaining) r.fail(`console count ${consoleCount} cannot fit`);
    const lines: RecordedConsoleLine[] = [];
    for (let j = 0; j < consoleCount; j++) {
      const level = r.str('console level');
      const textBytes = r.varuint('console text bytes');
      lines.push({ level, textBytes, text: r.str('console text') });
    }
    const consoleOmitted = r.varuint('console omitted');
    records.push({ seq, truncated, outputs, console: lines, consoleOmitted });
  }
  r.expectEnd('outputs block');
  return records;
}
