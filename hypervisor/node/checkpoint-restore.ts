// Restoring a service after both nodes were lost: the newest checkpoint that verifies
// (checkpoint-file.ts), then the log chain after it (checkpoint-log.ts) replayed on top.

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { decodeEpochMark } from '../../logging-channel/codec.js';
import { Kind } from '../../logging-channel/entry.js';
import { openTraceReader } from '../../logging-channel/trace-reader.js';
import { type Assembled, TaskAssembler } from '../../replayer/task-assembler.js';
import { CheckpointError, type CheckpointFile, type LoadedCheckpoint, listCheckpoints, listLogs, readCheckpoint, syncDirectory } from './checkpoint-file.js';
import type { VmHandle as VmHost } from './env.js';

/** Tasks handed to the replaying worker per message during a restore. */
const RESTORE_BATCH_TASKS = 64;

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export interface SkippedCheckpoint {
  file: string;
  problem: string;
}

/**
 * The newest checkpoint in `dir` that reads and verifies. Each one skipped is logged (error level)
 * with the file and what is wrong, and returned in `skipped`. Throws RestoreError when none is good.
 */
export async function newestValidCheckpoint(dir: string, logger: Logger): Promise<LoadedCheckpoint & { skipped: SkippedCheckpoint[] }> {
  let files: CheckpointFile[];
  try {
    files = await listCheckpoints(dir);
  } catch (error) {
    throw new RestoreError(`--restore-from ${dir}: cannot list the directory: ${(error as Error).message}`);
  }
  if (files.length === 0) throw new RestoreError(`--restore-from ${dir}: no checkpoint files (checkpoint-<seq>.ftck) there`);
  const skipped: SkippedCheckpoint[] = [];
  for (const { file } of files) {
    try {
      const loaded = await readCheckpoint(file);
      return { ...loaded, skipped };
    } catch (error) {
      const problem = error instanceof CheckpointError ? error.problem : (error as Error).message;
      skipped.push({ file, problem });
      const older = files.length > skipped.length;
      logger.error({ file, problem }, `skipping checkpoint ${file}: ${problem}; ${older ? 'trying the previous one' : 'no older checkpoint left'}`);
    }
  }
  throw new RestoreError(`--restore-from ${dir}: no valid checkpoint: ${skipped.map((s) => `${path.basename(s.file)}: ${s.problem}`).join('; ')}`);
}

export interface ChainReplay {
  /** The last entry restored (a task's end or a control entry): the durable end of the log. */
  seq: number;
  pos: number;
  /** Entries and tasks replayed on top of the checkpoint. */
  entries: number;
  tasks: number;
  /** The guest's clock at the durable end, ms since the epoch. */
  guestTimeMs: number;
  /** Logs read, in order. */
  logs: string[];
  /** The newest Epoch mark seen (the epoch the service was in when it was lost). */
  lastEpoch: { epoch: number; nodeId: string } | null;
  /** Why the chain stopped before the end of the newest log (a gap or damage), if it did. */
  broken: string | null;
  /** Entries of an unfinished final task, dropped. */
  droppedEntries: number;
  /** A torn final block at the end of the last log read. */
  torn: { file: string; atOffset: number; reason: string } | null;
  /** Modification time of the last log read: when its last write landed. */
  lastWriteAt: string | null;
}

/**
 * Replays onto `vm` (booted in replay mode from the checkpoint at `base`) every whole task of the log
 * chain after it. Divergence is fatal (RestoreError); a gap or damage ends the chain there (reported
 * in `broken`); a torn tail and an unfinished final task are dropped (reported).
 */
export async function replayLogChain(dir: string, vm: VmHost, base: { seq: number; pos: number; guestTimeMs: number }, guestHash: string): Promise<ChainReplay> {
  const result: ChainReplay = {
    seq: base.seq,
    pos: base.pos,
    entries: 0,
    tasks: 0,
    guestTimeMs: base.guestTimeMs,
    logs: [],
    lastEpoch: null,
    broken: null,
    droppedEntries: 0,
    torn: null,
    lastWriteAt: null,
  };
  const logs = await listLogs(dir);
  let start = -1;
  for (let i = 0; i < logs.length; i++) if (logs[i]!.seq <= base.seq) start = i;
  if (start < 0) {
    if (logs.some((l) => l.seq > base.seq)) result.broken = `no log continues after seq ${base.seq} (the first log after it, ${path.basename(logs.find((l) => l.seq > base.seq)!.file)}, starts later)`;
    return result;
  }
  let seen = base.seq;
  let queue: Assembled[] = [];
  let queuedTasks = 0;

  const flush = async (): Promise<void> => {
    if (queue.length === 0) return;
    const items = queue;
    queue = [];
    queuedTasks = 0;
    const tasks = items.filter((i): i is Extract<Assembled, { type: 'task' }> => i.type === 'task').map((i) => i.entries);
    const reply = tasks.length > 0 ? await vm.replay(tasks) : null;
    let t = 0;
    for (const item of items) {
      if (item.type === 'task') {
        const r = reply!.results[t++]!;
        if (r.divergence) {
          const d = r.divergence;
          throw new RestoreError(`the log does not replay on its checkpoint: divergence at seq ${d.seq} (pos ${d.pos}, ${d.expectedKind}): expected ${d.expected}, got ${d.actual}`);
        }
        result.seq = item.entries[item.entries.length - 1]!.seq;
        result.pos = r.pos;
        result.entries += item.entries.length;
        result.tasks++;
      } else {
        const e = item.entry;
        if (e.kind === Kind.Epoch) {
          try {
            result.lastEpoch = decodeEpochMark(e.payload);
          } catch {
            /* a malformed mark does not change the VM */
          }
        }
        result.seq = e.seq;
        result.pos = Math.max(result.pos, e.pos);
        result.entries++;
      }
    }
    if (reply) result.guestTimeMs = reply.state.guestTimeMs;
  };

  for (let i = start; i < logs.length; i++) {
    const log = logs[i]!;
    const name = path.basename(log.file);
    const limit = i + 1 < logs.length ? logs[i + 1]!.seq : Number.POSITIVE_INFINITY;
    if (log.seq > seen) {
      result.broken = `${name} starts at seq ${log.seq + 1}, but the log before it ends at seq ${seen}: the entries between are missing`;
      break;
    }
    const assembler = new TaskAssembler(name);
    let problem: string | null = null;
    let reader: Awaited<ReturnType<typeof openTraceReader>> | null = null;
    try {
      reader = await openTraceReader(log.file, { lenient: true });
      if (reader.header.guest.hash !== guestHash) throw new Error(`${name} holds another guest (${reader.header.guest.hash.slice(0, 12)}…)`);
      result.logs.push(log.file);
      result.lastWriteAt = (await fsp.stat(log.file)).mtime.toISOString();
      let first = true;
      outer: for await (const block of reader) {
        if (first && block.firstSeq !== log.seq + 1) throw new Error(`${name}: its first entry is seq ${block.firstSeq}, its name says ${log.seq + 1}`);
        first = false;
        for (const entry of block.entries) {
          if (entry.seq <= seen) continue; // already in the checkpoint
          if (entry.seq > limit) break outer; // the next log takes over from here
          if (entry.seq !== seen + 1) throw new Error(`${name}: seq gap: expected ${seen + 1}, found ${entry.seq}`);
          seen = entry.seq;
          assembler.push(entry, queue);
          if (entry.kind === Kind.TaskEnd && ++queuedTasks >= RESTORE_BATCH_TASKS) await flush();
        }
      }
      if (reader.truncated) result.torn = { file: log.file, atOffset: reader.truncated.atOffset, reason: reader.truncated.reason };
    } catch (error) {
      if (error instanceof RestoreError) throw error;
      problem = (error as Error).message;
    } finally {
      await reader?.close();
    }
    await flush();
    const open = assembler.openTaskSeq;
    if (open !== null) result.droppedEntries = seen - open + 1;
    if (problem !== null) {
      result.broken = problem;
      break;
    }
    if (Number.isFinite(limit) && (open !== null || seen !== limit)) {
      const why = open !== null ? `ends inside the task that starts at seq ${open}` : `ends at seq ${seen}`;
      result.broken = `${name} ${why}${result.torn ? ` (torn block at byte ${result.torn.atOffset}: ${result.torn.reason})` : ''}, but the next log starts at seq ${limit + 1}: the entries between are missing`;
      break;
    }
    if (Number.isFinite(limit)) result.torn = null; // a tail past `limit` is superseded, not torn
  }
  return result;
}

/**
 * After a restore to `seq`: moves the checkpoints and logs that lie beyond it (they belong to the
 * lost timeline and would otherwise be mistaken for newer ones) into `superseded-epoch-<epoch>/`.
 */
export async function supersedeBeyond(dir: string, seq: number, epoch: number): Promise<string[]> {
  const moved: string[] = [];
  const stale = [...(await listCheckpoints(dir)).filter((c) => c.seq > seq), ...(await listLogs(dir)).filter((l) => l.seq >= seq)];
  if (stale.length === 0) return moved;
  const target = path.join(dir, `superseded-epoch-${epoch}`);
  await fsp.mkdir(target, { recursive: true });
  for (const { file } of stale) {
    await fsp.rename(file, path.join(target, path.basename(file)));
    moved.push(file);
  }
  await syncDirectory(dir);
  return moved;
}
