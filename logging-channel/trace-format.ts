// Trace files: a self-contained recording (header + log) that replays anywhere.
//
// Layout:
//   8 bytes  magic "FTJSTRC1" (the last character is the format version)
//   u32      header length (little-endian)
//            header JSON (UTF-8): TraceHeader
//   u32      CRC-32 of every byte before it (magic, length and JSON)
//   blocks, each: u32 length, then one batch (codec.ts; the batch carries its own CRC-32), or, in
//            format 2, an outputs block (task-outputs.ts: what tasks emitted, trace-only, no seq)
//
// Format 2 ("FTJSTRC2") is format 1 plus outputs blocks, declared by `header.outputs`. This build
// writes format 1 when a trace keeps no outputs (so older builds read it) and reads both.
//
// Blocks are appended as the run goes, one write() per block, so a crash leaves whole blocks plus at
// most one torn block at the end. A reader can always tell the two apart: a torn block either runs
// past the end of the file or fails its checksum, and no valid block follows it. Damage that IS
// followed by valid blocks is corruption, never "just a torn tail", and is always an error.
//
// This file: the format (header, its checks, errors). Writing: trace-writer.ts; reading:
// trace-reader.ts; rotated traces: trace-segments.ts; the container shared with checkpoints: container.ts.

import { CONTAINER_PREFIX_BYTES, checkContainerHead, checkContainerPrefix, encodeContainerHead } from './container.js';

/** Magic of a format-1 trace ("FTJSTRC" + the format version digit). */
export const TRACE_MAGIC = 'FTJSTRC1';
/** The newest trace format (2: outputs blocks). */
export const TRACE_FORMAT_VERSION = 2;
/** "FTJSTRC": the magic without its version digit. */
const TRACE_MAGIC_FAMILY = 'FTJSTRC';
/** Formats this build reads and writes. */
export const TRACE_FORMAT_VERSIONS: readonly number[] = [1, 2];
export type TraceFormatVersion = 1 | 2;
/** The state hash formula of traces this build records (TraceHeader.stateHash). */
export const STATE_HASH_SCHEME = 'page-tree';
/** Bytes of the u32 length before each block. */
export const FRAME_PREFIX_BYTES = 4;
/** The bytes to read first: magic and header length (container.ts). */
export const TRACE_PREFIX_BYTES = CONTAINER_PREFIX_BYTES;
/** Upper bound on the header JSON (it holds the guest's sources), in bytes. */
export const MAX_TRACE_HEADER_BYTES = 64 * 1024 * 1024;
/** Default limit on a trace file's size, in bytes. */
export const DEFAULT_MAX_TRACE_BYTES = 1024 * 1024 * 1024;
/** Default amount of buffered entry bytes at which append() writes a block by itself. */
export const DEFAULT_BLOCK_BYTES = 256 * 1024;

export interface TraceHeader {
  /**
   * How its StateHash entries were computed: 'page-tree' (hypervisor/vm/state-hash.ts). Absent in
   * traces recorded before it: SHA-256 over the memory, then the device tables' JSON (replay computes
   * that one for them).
   */
  stateHash?: typeof STATE_HASH_SCHEME;
  /** 1, or 2 when the trace also keeps what tasks emitted (`outputs`). */
  formatVersion: TraceFormatVersion;
  engine: { name: string; version: string; wasmSha256: string };
  guest: { entry: string; sources: Array<{ name: string; sha256: string; text: string }>; hash: string };
  /** Config, env and limits the VM was booted with. */
  boot: Record<string, unknown>;
  /** ISO-8601 time the trace was created. */
  createdAt: string;
  /** Id of the node that recorded it. */
  node?: string;
  /**
   * Set on the second and later segments of a rotated trace (`file.1`, `file.2`, ...): the segment's
   * number and the seq of its first entry. The first segment (`file`) has none.
   */
  segment?: { index: number; firstSeq: number };
  /**
   * Format 2: the trace also holds outputs blocks (task-outputs.ts), keeping at most this many bytes
   * of each task's outputs and console lines. A task may still have none (a backup's trace: it emits
   * only once it is live).
   */
  outputs?: { maxBytesPerTask: number };
}

export type TraceErrorCode = 'NOT_A_TRACE' | 'UNSUPPORTED_VERSION' | 'CORRUPT' | 'TRUNCATED';

/** A trace that cannot be read. `offset` is the file byte offset of the header or block at fault. */
export class TraceError extends Error {
  override name = 'TraceError';
  constructor(
    readonly code: TraceErrorCode,
    readonly path: string,
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/** The trace reached its size limit (`maxBytes`). Nothing partial was written. */
export class TraceFullError extends Error {
  override name = 'TraceFullError';
  readonly code = 'TRACE_FULL';
  constructor(
    readonly path: string,
    readonly limitBytes: number,
    readonly bytesWritten: number,
    readonly blockBytes: number,
  ) {
    super(`${path}: trace size limit reached: a ${blockBytes}-byte block would take the file from ${bytesWritten} ` + `to ${bytesWritten + blockBytes} bytes, above maxBytes ${limitBytes}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header

/** Why `value` is not a TraceHeader, or null if it is one. formatVersion is checked by the caller. */
function traceHeaderProblem(value: unknown): string | null {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isString = (v: unknown): v is string => typeof v === 'string';
  if (!isObject(value)) return 'header is not a JSON object';
  const { engine, guest, boot, createdAt, node } = value;
  if (!isObject(engine)) return 'header.engine is not an object';
  for (const key of ['name', 'version', 'wasmSha256']) {
    if (!isString(engine[key])) return `header.engine.${key} is not a string`;
  }
  if (!isObject(guest)) return 'header.guest is not an object';
  if (!isString(guest['entry'])) return 'header.guest.entry is not a string';
  if (!isString(guest['hash'])) return 'header.guest.hash is not a string';
  const sources = guest['sources'];
  if (!Array.isArray(sources)) return 'header.guest.sources is not an array';
  for (let i = 0; i < sources.length; i++) {
    const source: unknown = sources[i];
    if (!isObject(source)) return `header.guest.sources[${i}] is not an object`;
    for (const key of ['name', 'sha256', 'text']) {
      if (!isString(source[key])) return `header.guest.sources[${i}].${key} is not a string`;
    }
  }
  if (!isObject(boot)) return 'header.boot is not an object';
  if (!isString(createdAt)) return 'header.createdAt is not a string';
  if (node !== undefined && !isString(node)) return 'header.node is not a string';
  const segment = value['segment'];
  if (segment !== undefined) {
    if (!isObject(segment)) return 'header.segment is not an object';
    if (!Number.isSafeInteger(segment['index']) || (segment['index'] as number) < 1) return 'header.segment.index is not a positive integer';
    if (!Number.isSafeInteger(segment['firstSeq']) || (segment['firstSeq'] as number) < 1) return 'header.segment.firstSeq is not a positive integer';
  }
  const scheme = value['stateHash'];
  if (scheme !== undefined && scheme !== STATE_HASH_SCHEME) return `header.stateHash ${JSON.stringify(scheme)} is not a state hash formula this build knows (it knows "${STATE_HASH_SCHEME}")`;
  const outputs = value['outputs'];
  if (outputs !== undefined) {
    if (value['formatVersion'] === 1) return 'header.outputs needs formatVersion 2';
    if (!isObject(outputs)) return 'header.outputs is not an object';
    if (!Number.isSafeInteger(outputs['maxBytesPerTask']) || (outputs['maxBytesPerTask'] as number) < 1) return 'header.outputs.maxBytesPerTask is not a positive integer';
  }
  return null;
}

/** The header as it sits at the start of the file: magic, length, JSON, CRC. */
export function encodeTraceHeader(header: TraceHeader): Uint8Array {
  const version = (header as { formatVersion: unknown }).formatVersion;
  if (!TRACE_FORMAT_VERSIONS.includes(version as number)) {
    throw new TypeError(`trace header: formatVersion must be one of ${TRACE_FORMAT_VERSIONS.join(', ')}`);
  }
  const problem = traceHeaderProblem(header);
  if (problem !== null) throw new TypeError(`trace header: ${problem}`);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.byteLength > MAX_TRACE_HEADER_BYTES) {
    throw new RangeError(`trace header: ${json.byteLength} bytes of JSON, above MAX_TRACE_HEADER_BYTES ${MAX_TRACE_HEADER_BYTES}`);
  }
  const out = encodeContainerHead(`${TRACE_MAGIC_FAMILY}${version}`, json);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Checks a trace's first bytes (`prefix`: up to TRACE_PREFIX_BYTES of a file of `fileBytes`) and
 * returns how many bytes its whole header takes, or throws TraceError.
 */
export function checkTracePrefix(filePath: string, prefix: Uint8Array, fileBytes: number): { headerBytes: number; magicVersion: string } {
  const fail = (code: TraceErrorCode, what: string): never => {
    throw new TraceError(code, filePath, 0, `${filePath}: ${what}`);
  };
  const check = checkContainerPrefix(prefix, fileBytes, TRACE_MAGIC_FAMILY, TRACE_FORMAT_VERSIONS.map(String), MAX_TRACE_HEADER_BYTES);
  if (check.ok) return { headerBytes: check.headBytes, magicVersion: check.version };
  switch (check.problem) {
    case 'NOT_FAMILY':
      return fail('NOT_A_TRACE', `not a trace file (it does not start with "${TRACE_MAGIC}")`);
    case 'UNSUPPORTED_VERSION':
      return fail('UNSUPPORTED_VERSION', `trace file format "${check.version}" is not supported (this build reads formats ${TRACE_FORMAT_VERSIONS.join(' and ')})`);
    case 'SHORT_PREFIX':
      return fail('TRUNCATED', `truncated header: the file has only ${fileBytes} bytes`);
    case 'JSON_TOO_LONG':
      return fail('CORRUPT', `corrupt header: declares ${check.jsonLength} bytes of JSON, above MAX_TRACE_HEADER_BYTES ${MAX_TRACE_HEADER_BYTES}`);
    case 'SHORT_HEAD':
      return fail('TRUNCATED', `truncated header: it needs ${check.headBytes} bytes, the file has ${fileBytes}`);
  }
}

/** Decodes a trace's whole header (`head`, checked by checkTracePrefix), or throws TraceError. */
export function decodeTraceHeader(filePath: string, head: Uint8Array, magicVersion: string): TraceHeader {
  const fail = (code: TraceErrorCode, offset: number, what: string): never => {
    throw new TraceError(code, filePath, offset, `${filePath}: ${what}`);
  };
  const check = checkContainerHead(head);
  if (!check.ok) {
    if (check.problem === 'CHECKSUM') {
      return fail('CORRUPT', 0, `corrupt header: checksum mismatch (stored 0x${check.stored.toString(16)}, computed 0x${check.computed.toString(16)}) at byte ${check.crcAt}`);
    }
    return fail('CORRUPT', CONTAINER_PREFIX_BYTES, `corrupt header: invalid JSON: ${check.message}`);
  }
  const parsed = check.json;
  const version = (parsed as { formatVersion?: unknown } | null)?.formatVersion;
  if (!TRACE_FORMAT_VERSIONS.includes(version as number)) {
    fail('UNSUPPORTED_VERSION', CONTAINER_PREFIX_BYTES, `trace header formatVersion ${JSON.stringify(version)} is not supported (this build reads ${TRACE_FORMAT_VERSIONS.join(' and ')})`);
  }
  if (String(version) !== magicVersion) {
    fail('CORRUPT', CONTAINER_PREFIX_BYTES, `corrupt header: formatVersion ${JSON.stringify(version)} but the magic says format ${magicVersion}`);
  }
  const problem = traceHeaderProblem(parsed);
  if (problem !== null) fail('CORRUPT', CONTAINER_PREFIX_BYTES, `corrupt header: ${problem}`);
  return parsed as TraceHeader;
}
