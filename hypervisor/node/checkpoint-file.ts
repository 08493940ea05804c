// Durable checkpoints: a snapshot of the VM plus the log since it, in a directory (normally the pair's
// shared directory), so the service can come back after BOTH nodes were lost.
//
// Files:
//   checkpoint-<seq, 12 digits>.ftck   the VM at `seq` (a task boundary)
//     "FTJSCKP2" | u32 header length | header JSON | u32 CRC-32 of the bytes before it
//     | VM memory, deflate-raw (level 1) | u32 CRC-32 of every byte before it
//     The memory's deflate stream is made of independently compressed chunks (checkpoint-compress.ts),
//     one stream to a reader.
//     Written to a temporary name, fsynced, renamed, then the directory is fsynced: a crash leaves
//     either the whole file under its name or nothing under its name.
//   log-<seq, 12 digits>.trace         the log after `seq`: a trace file whose first entry is seq + 1
//     (TraceWriter with firstSeq), appended and written once per tick like every other trace sink,
//     and fsynced in the background (group commit: one fsync in flight at a time).
//
// Logs form a chain: when a checkpoint is taken at S, the current log is closed exactly at S and
// log-S starts at S + 1. So a restore from ANY kept checkpoint C replays log-C, then every later log,
// and a corrupt newest checkpoint costs nothing but replay time. A log is read only up to the seq
// before the next log starts (after a restore, the next log supersedes an unfinished tail).
//
// The last log may end with a torn block (a crash mid-write): it is read up to the last whole block
// and an unfinished final task is dropped (its outputs were released, if at all, only after its
// entries were appended — see the durability contract in README.md).
//
// This file: the checkpoint file format (write, read, verify), the names in the directory, pruning.
// The log: checkpoint-log.ts; when to take one: checkpoint.ts; restoring: checkpoint-restore.ts.

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, inflateRaw } from 'node:zlib';
import { CONTAINER_PREFIX_BYTES, checkContainerHead, checkContainerPrefix, containerHeadPieces } from '../../logging-channel/container.js';
import { encodedJsonOf, spliceEncodedJson } from '../../logging-channel/frames.js';
import type { TraceHeader } from '../../logging-channel/trace-format.js';
import { bootConfigFromTrace, traceHeaderFor } from '../vm/boot-config.js';
import { ENGINE_NAME, ENGINE_VERSION } from '../vm/engine.js';
import { fullStateHashAsync } from '../vm/state-hash.js';
import type { BootConfig, DeviceState, Snapshot } from '../vm/vm.js';
import { MemoryCompressor } from './checkpoint-compress.js';

// Format 2: the state hash is state-hash.ts's page-hash tree (format 1 hashed the memory in one pass).
export const CHECKPOINT_MAGIC = 'FTJSCKP2';
export const CHECKPOINT_FORMAT_VERSION = 2;
/** zlib level for the memory image: level 1 is several times faster than 6 for a few % more bytes. */
export const CHECKPOINT_COMPRESSION_LEVEL = 1;
/** The file is written (and its CRC computed) in buffers of about this size (~0.3–1 ms each), paced. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Pieces in one group at most: one writev (IOV_MAX is 1024 on Linux; libuv splits beyond it anyway). */
const WRITE_BATCH_PIECES = 1024;
/** A temporary checkpoint file older than this is left over from a crash and is removed when pruning. */
const STALE_TEMP_MS = 60_000;
/** Upper bound on a checkpoint's header JSON. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;

/** "FTJSCKP": the magic without its version digit. */
const CHECKPOINT_MAGIC_FAMILY = 'FTJSCKP';
const CHECKPOINT_FILE = /^checkpoint-(\d{12})\.ftck$/;
const LOG_FILE = /^log-(\d{12})\.trace$/;
const TEMP_FILE = /^checkpoint-\d{12}\.ftck\.tmp-/;

const inflateRawAsync = promisify(inflateRaw);

export interface CheckpointHeader {
  formatVersion: typeof CHECKPOINT_FORMAT_VERSION;
  /** The VM state is the state after entry `seq` (a task boundary). */
  seq: number;
  pos: number;
  epoch: number;
  node: string;
  /** ISO-8601 wall-clock time of the snapshot. */
  takenAt: string;
  /** The time the guest last saw (its clock), ms since the epoch. */
  guestTimeMs: number;
  guestHash: string;
  /** State hash over memory + device tables, exactly as Vm.stateHash() (state-hash.ts): a restore must reproduce it. */
  stateHash: string;
  /** `${ENGINE_NAME}@${ENGINE_VERSION}` of the snapshot. */
  snapshotEngine: string;
  /** Engine, guest sources and boot config (env, limits, glue), as in a trace header. */
  boot: TraceHeader;
  devices: DeviceState;
  memory: { bytes: number; encoding: 'deflate-raw'; level: number; compressedBytes: number };
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export function checkpointFileName(seq: number): string {
  return `checkpoint-${seqDigits(seq)}.ftck`;
}

export function logFileName(afterSeq: number): string {
  return `log-${seqDigits(afterSeq)}.trace`;
}

function seqDigits(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > 999_999_999_999) throw new RangeError(`bad checkpoint seq ${seq}`);
  return String(seq).padStart(12, '0');
}

export interface CheckpointFile {
  seq: number;
  file: string;
}

/** Checkpoint files in `dir`, newest (highest seq) first. Names only: nothing is verified. */
export async function listCheckpoints(dir: string): Promise<CheckpointFile[]> {
  return (await listMatching(dir, CHECKPOINT_FILE)).sort((a, b) => b.seq - a.seq);
}

/** Log files in `dir`, oldest first; `seq` is the seq each one continues after. */
export async function listLogs(dir: string): Promise<CheckpointFile[]> {
  return (await listMatching(dir, LOG_FILE)).sort((a, b) => a.seq - b.seq);
}

async function listMatching(dir: string, pattern: RegExp): Promise<CheckpointFile[]> {
  const out: CheckpointFile[] = [];
  for (const name of await fsp.readdir(dir)) {
    const m = pattern.exec(name);
    if (m) out.push({ seq: Number(m[1]), file: path.join(dir, name) });
  }
  return out;
}

export interface CheckpointMeta {
  seq: number;
  pos: number;
  epoch: number;
  node: string;
  guestTimeMs: number;
}

export interface WrittenCheckpoint {
  file: string;
  /** Bytes of the checkpoint file. */
  bytes: number;
  memoryBytes: number;
  compressMs: number;
  /** Chunks of the memory deflated for this checkpoint, and reused (unchanged since the last, or zero). */
  compressedChunks: number;
  reusedChunks: number;
  hashMs: number;
  /** Write + fsync + rename + directory fsync. */
  syncMs: number;
  /** All of it, from the snapshot in hand to the file durable under its name. */
  totalMs: number;
  stateHash: string;
}

/**
 * Writes a checkpoint of `snapshot` (the VM after entry `meta.seq`) into `dir`, durably: compressed
 * and hashed off the main thread's hot path, written to a temporary name, fsynced, renamed, and the
 * directory fsynced. Returns once the file is durable under its final name. `compressor` keeps the
 * pieces of the last checkpoint it compressed (checkpoint-compress.ts): a writer passes its own.
 */
export async function writeCheckpoint(
  dir: string,
  config: BootConfig,
  snapshot: Snapshot,
  meta: CheckpointMeta,
  compressor = new MemoryCompressor({ level: CHECKPOINT_COMPRESSION_LEVEL }),
): Promise<WrittenCheckpoint> {
  const t0 = performance.now();
  // In paced pieces on the thread pool, reusing the chunks that did not change since the last one.
  const compressed = await compressor.compress(snapshot.memory, snapshot.pageHashes);
  const t1 = performance.now();
  // A VM's snapshot carries its state hash (kept up to date page by page): no pass over the memory here.
  const stateHash = snapshot.stateHash ?? (await snapshotStateHash(snapshot));
  const t2 = performance.now();
  const header: CheckpointHeader = {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    seq: meta.seq,
    pos: meta.pos,
    epoch: meta.epoch,
    node: meta.node,
    takenAt: new Date().toISOString(),
    guestTimeMs: meta.guestTimeMs,
    guestHash: config.guestHash,
    stateHash,
    snapshotEngine: snapshot.engine,
    boot: traceHeaderFor(config, meta.node),
    devices: snapshot.devices,
    memory: { bytes: snapshot.memory.byteLength, encoding: 'deflate-raw', level: compressor.level, compressedBytes: compressed.compressedBytes },
  };
  const head = encodeHead(header, config);
  // The file in groups of pieces of about WRITE_BATCH_BYTES, each group's CRC computed and the group
  // written (one writev: the pieces are not copied into a batch first), at the compressor's duty
  // cycle: a CRC or write (the kernel copies it into the page cache on a thread-pool thread) of a
  // whole large image would take a core from the VM for as long.
  const pacer = compressor.pacer();
  let crc = 0;
  let bytes = 0;
  const file = path.join(dir, checkpointFileName(meta.seq));
  const temp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const handle = await fsp.open(temp, 'wx');
  try {
    for (const group of groupPieces([...head, ...compressed.pieces], WRITE_BATCH_BYTES)) {
      await pacer.run(() => {
        for (const piece of group) crc = crc32(piece, crc);
        return writeAll(handle, group, bytes);
      });
      for (const piece of group) bytes += piece.byteLength;
      await new Promise((resolve) => setImmediate(resolve)); // at 100% too, the event loop turns between groups
    }
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(crc, 0);
    await writeAll(handle, [trailer], bytes);
    bytes += trailer.byteLength;
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await fsp.unlink(temp).catch(() => {});
    throw error;
  }
  await handle.close();
  try {
    await fsp.rename(temp, file);
  } catch (error) {
    await fsp.unlink(temp).catch(() => {});
    throw error;
  }
  await syncDirectory(dir);
  const t3 = performance.now();
  return {
    file,
    bytes,
    memoryBytes: snapshot.memory.byteLength,
    compressMs: t1 - t0,
    compressedChunks: compressed.compressedChunks,
    reusedChunks: compressed.reusedChunks + compressed.zeroChunks,
    hashMs: t2 - t1,
    syncMs: t3 - t2,
    totalMs: t3 - t0,
    stateHash,
  };
}

/**
 * `pieces` in consecutive groups of about `bytes` each (a piece larger than that is a group alone), of
 * at most WRITE_BATCH_PIECES pieces (one writev's buffers).
 */
function* groupPieces(pieces: Uint8Array[], bytes: number): Generator<Uint8Array[]> {
  let group: Uint8Array[] = [];
  let size = 0;
  for (const piece of pieces) {
    if (size > 0 && (size + piece.byteLength > bytes || group.length === WRITE_BATCH_PIECES)) {
      yield group;
      group = [];
      size = 0;
    }
    group.push(piece);
    size += piece.byteLength;
  }
  if (group.length > 0) yield group;
}

/** Writes `buffers` one after the other at `position`, whatever the kernel's short writes. */
async function writeAll(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let { bytesWritten } = await handle.writev(buffers, position);
  for (const buffer of buffers) {
    // Whole buffers written are skipped; the rest of a partly written one, and those after, are written.
    if (bytesWritten >= buffer.byteLength) {
      bytesWritten -= buffer.byteLength;
      position += buffer.byteLength;
      continue;
    }
    for (let done = bytesWritten; done < buffer.byteLength; ) {
      const written = (await handle.write(buffer, done, buffer.byteLength - done, position + done)).bytesWritten;
      done += written;
    }
    position += buffer.byteLength;
    bytesWritten = 0;
  }
}

/**
 * The file's head (encodeContainerHead's bytes: magic, JSON length, header JSON, CRC) as pieces to be
 * written one after the other, the boot config's glue (~1 MB) among them as it was encoded once per
 * glue object: a JSON.stringify of it took 2–6 ms of the main thread at each checkpoint while the
 * guest's traffic waited, and copying it into one buffer twice more made work for the GC.
 */
function encodeHead(header: CheckpointHeader, config: BootConfig): Uint8Array[] {
  const glue = header.boot.boot.glue;
  const whole = (): Uint8Array[] => containerHeadPieces(CHECKPOINT_MAGIC, [Buffer.from(JSON.stringify(header), 'utf8')]);
  if (glue !== config.glue || typeof glue !== 'object' || glue === null) return whole();
  const encoded = encodedJsonOf(glue);
  const pieces = spliceEncodedJson(JSON.stringify({ ...header, boot: { ...header.boot, boot: { ...header.boot.boot, glue: encoded } } }), encoded);
  // The marker elsewhere too (a guest's env holding that very string): encoded in one go instead.
  return pieces === null ? whole() : containerHeadPieces(CHECKPOINT_MAGIC, pieces);
}

/** The state hash over memory + device tables, as Vm.stateHash() computes it (state-hash.ts), yielding between slices. */
export async function snapshotStateHash(snapshot: Snapshot): Promise<string> {
  return fullStateHashAsync(snapshot.memory, JSON.stringify(snapshot.devices));
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic there.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Removes checkpoints beyond the newest `keep`, the logs only they needed, and temporary files left
 * by a crashed write. Returns the files removed.
 */
export async function pruneCheckpoints(dir: string, keep: number): Promise<string[]> {
  const removed: string[] = [];
  const checkpoints = await listCheckpoints(dir);
  if (checkpoints.length > keep) {
    for (const old of checkpoints.slice(keep)) {
      await fsp.unlink(old.file).catch(() => {});
      removed.push(old.file);
    }
  }
  const kept = checkpoints.slice(0, keep);
  if (kept.length > 0) {
    // A log is needed by a kept checkpoint unless a later log starts at or before that checkpoint.
    const oldest = kept[kept.length - 1]!.seq;
    const logs = await listLogs(dir);
    for (let i = 0; i + 1 < logs.length; i++) {
      if (logs[i]!.seq < oldest && logs[i + 1]!.seq <= oldest) {
        await fsp.unlink(logs[i]!.file).catch(() => {});
        removed.push(logs[i]!.file);
      }
    }
  }
  const now = Date.now();
  for (const name of await fsp.readdir(dir)) {
    if (!TEMP_FILE.test(name)) continue;
    const file = path.join(dir, name);
    const stat = await fsp.stat(file).catch(() => null);
    if (stat && now - stat.mtimeMs > STALE_TEMP_MS) {
      await fsp.unlink(file).catch(() => {});
      removed.push(file);
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface LoadedCheckpoint {
  file: string;
  header: CheckpointHeader;
  config: BootConfig;
  snapshot: Snapshot;
  bytes: number;
}

/** Reads and verifies one checkpoint file; every problem is a CheckpointError naming the file. */
export async function readCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (error) {
    return fail(`cannot read: ${(error as Error).message}`);
  }
  const size = data.byteLength;
  const prefix = checkContainerPrefix(data.subarray(0, CONTAINER_PREFIX_BYTES), size, CHECKPOINT_MAGIC_FAMILY, [String(CHECKPOINT_FORMAT_VERSION)], MAX_HEADER_BYTES);
  if (!prefix.ok) {
    switch (prefix.problem) {
      case 'NOT_FAMILY':
        return fail(`not a checkpoint file (it does not start with "${CHECKPOINT_MAGIC}")`);
      case 'UNSUPPORTED_VERSION':
        return fail(`checkpoint format "${prefix.version}" is not supported (this build reads format ${CHECKPOINT_FORMAT_VERSION})`);
      case 'SHORT_PREFIX':
        return fail(`truncated: the file has only ${size} bytes (a partly written checkpoint)`);
      case 'JSON_TOO_LONG':
        return fail(`corrupt header: it declares ${prefix.jsonLength} bytes of JSON`);
      case 'SHORT_HEAD':
        return fail(`truncated: the header needs ${prefix.headBytes} bytes, the file has ${size} (a partly written checkpoint)`);
    }
  }
  const headerEnd = prefix.headBytes;
  const head = checkContainerHead(data.subarray(0, headerEnd));
  if (!head.ok) {
    if (head.problem === 'CHECKSUM') return fail(`corrupt header: checksum mismatch (stored 0x${hex32(head.stored)}, computed 0x${hex32(head.computed)})`);
    return fail(`corrupt header: invalid JSON: ${head.message}`);
  }
  const header = head.json as CheckpointHeader;
  const problem = headerProblem(header);
  if (problem) fail(`corrupt header: ${problem}`);
  const expected = headerEnd + header.memory.compressedBytes + 4;
  if (size < expected) fail(`truncated: the file has ${size} bytes, its header declares ${expected} (a partly written checkpoint)`);
  if (size > expected) fail(`corrupt: the file has ${size} bytes, its header declares ${expected}`);
  const stored = data.readUInt32LE(size - 4);
  const computed = crc32(data.subarray(0, size - 4));
  if (stored !== computed) fail(`corrupt: checksum mismatch over the memory image (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);
  const named = /checkpoint-(\d{12})\.ftck$/.exec(path.basename(file));
  if (named && Number(named[1]) !== header.seq) fail(`corrupt: named for seq ${Number(named[1])} but holds seq ${header.seq}`);
  const engine = `${ENGINE_NAME}@${ENGINE_VERSION}`;
  if (header.snapshotEngine !== engine) fail(`taken with engine ${header.snapshotEngine}; this ftjs runs ${engine} and cannot restore it`);
  let config: BootConfig;
  try {
    config = bootConfigFromTrace(header.boot, 'boot config');
  } catch (error) {
    return fail((error as Error).message);
  }
  if (config.guestHash !== header.guestHash) fail(`corrupt header: guest hash ${header.guestHash.slice(0, 12)}… differs from its boot config's ${config.guestHash.slice(0, 12)}…`);
  let memory: Buffer;
  try {
    memory = await inflateRawAsync(data.subarray(headerEnd, size - 4));
  } catch (error) {
    return fail(`corrupt: the memory image does not decompress: ${(error as Error).message}`);
  }
  if (memory.byteLength !== header.memory.bytes) fail(`corrupt: the memory image is ${memory.byteLength} bytes, the header says ${header.memory.bytes}`);
  const snapshot: Snapshot = {
    engine: header.snapshotEngine,
    guestHash: header.guestHash,
    memory: new Uint8Array(memory.buffer, memory.byteOffset, memory.byteLength),
    devices: header.devices,
  };
  // The CRCs catch damage; an edit with its CRCs recomputed changes the state the header vouches for.
  const stateHash = await snapshotStateHash(snapshot);
  if (stateHash !== header.stateHash) fail(`corrupt: the memory and device tables hash to ${stateHash.slice(0, 12)}…, the header says ${header.stateHash.slice(0, 12)}…`);
  return { file, header, config, snapshot, bytes: size };
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function headerProblem(h: CheckpointHeader): string | null {
  if (typeof h !== 'object' || h === null) return 'not an object';
  if (h.formatVersion !== CHECKPOINT_FORMAT_VERSION) return `formatVersion ${JSON.stringify(h.formatVersion)} is not supported (this build reads ${CHECKPOINT_FORMAT_VERSION})`;
  for (const key of ['seq', 'pos', 'epoch'] as const) if (!Number.isSafeInteger(h[key]) || h[key] < 0) return `${key} is not a non-negative integer`;
  if (typeof h.stateHash !== 'string' || typeof h.guestHash !== 'string' || typeof h.snapshotEngine !== 'string') return 'missing stateHash, guestHash or snapshotEngine';
  if (typeof h.boot !== 'object' || h.boot === null || typeof h.devices !== 'object' || h.devices === null) return 'missing boot config or device tables';
  const m = h.memory;
  if (typeof m !== 'object' || m === null || m.encoding !== 'deflate-raw' || !Number.isSafeInteger(m.bytes) || !Number.isSafeInteger(m.compressedBytes) || m.compressedBytes < 0)
    return 'bad memory description';
  return null;
}
