// Durable checkpoints without a shared disk: each node writes its checkpoints to its own
// --checkpoint-dir, and the arbiter records, with the epoch, which node's directory holds the newest
// durable checkpoint. A restore reads that record and refuses a directory that holds an older one,
// naming the node and directory to restore from instead.
//
// The shared directory keeps one record file per epoch (`newest-checkpoint-NNNNNNNNNN`, replaced by rename,
// written only by that epoch's holder); etcd keeps one key, written only while the writer's epoch is
// the newest (hypervisor/node/arbiter-etcd.ts).

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ArbiterStore } from './env.js';

export interface CheckpointRecord {
  /** The epoch the checkpoint was taken in (its holder wrote the record). */
  epoch: number;
  nodeId: string;
  /** Host name of the node whose directory holds it. */
  host: string;
  /** That node's --checkpoint-dir (absolute). */
  dir: string;
  /** The checkpoint's seq. */
  seq: number;
  takenAt: string;
}

const RECORD_FILE = /^newest-checkpoint-(\d{10})$/;

export function recordFor(epoch: number, nodeId: string, dir: string, seq: number): CheckpointRecord {
  return { epoch, nodeId, host: os.hostname(), dir: path.resolve(dir), seq, takenAt: new Date().toISOString() };
}

/** Shared directory: writes the record of `record.epoch` (atomically: a temporary file renamed over it). */
export function writeDirRecord(sharedDir: string, record: CheckpointRecord): Promise<boolean> {
  return writeRecordFile(path.join(sharedDir, `newest-checkpoint-${String(record.epoch).padStart(10, '0')}`), record);
}

/** Writes `value` as JSON to `file` atomically (a temporary file, fsynced, renamed over it); false when it could not. */
export async function writeRecordFile(file: string, value: object): Promise<boolean> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    const handle = await fs.open(tmp, 'w', 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(value)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
    return true;
  } catch {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    return false;
  }
}

/** Shared directory: the record of the newest epoch that has one, or null when none was written. */
export async function readDirRecord(sharedDir: string): Promise<CheckpointRecord | null> {
  const names = (await fs.readdir(sharedDir)).filter((n) => RECORD_FILE.test(n)).sort();
  const newest = names.at(-1);
  return newest === undefined ? null : (JSON.parse(await fs.readFile(path.join(sharedDir, newest), 'utf8')) as CheckpointRecord);
}

/**
 * The newest seq a checkpoint directory names: of its checkpoints and of the logs after them (a corrupt
 * newest checkpoint is skipped at restore for an older one whose log chain still reaches past it).
 */
export async function newestNamedSeq(dir: string): Promise<number> {
  let newest = 0;
  for (const name of await fs.readdir(dir)) {
    const m = /^(?:checkpoint-(\d{12})\.ftck|log-(\d{12})\.trace)$/.exec(name);
    if (m) newest = Math.max(newest, Number(m[1] ?? m[2]));
  }
  return newest;
}

/**
 * Why a restore from `dir`, whose checkpoints and logs reach `seq`, would go back in time (or null when
 * it may go ahead): the arbiter's record names a newer checkpoint, and where it is.
 */
export function olderThanRecorded(record: CheckpointRecord | null, dir: string, seq: number): string | null {
  if (record === null || seq >= record.seq) return null;
  const here = path.resolve(dir) === record.dir && record.host === os.hostname() ? ' (this directory held it, but it is gone: restore from a copy of it)' : '';
  return (
    `--restore-from ${dir}: its newest checkpoint or log begins at seq ${seq}, but the arbiter records a newer durable checkpoint at seq ${record.seq} ` +
    `(epoch ${record.epoch}, taken ${record.takenAt}) in ${record.dir} on node ${record.nodeId} (host ${record.host})${here}; ` +
    `restore from that node's directory, or copy it here`
  );
}

/** Before a restore: refuses a directory older than the arbiter's record, and says where the newest is. */
export async function checkRestoreSource(arbiter: ArbiterStore, dir: string, logger: Logger): Promise<void> {
  if (!arbiter.checkpointRecord) return;
  const seq = await newestNamedSeq(dir);
  let record: CheckpointRecord | null;
  try {
    record = await arbiter.checkpointRecord();
  } catch (error) {
    throw new Error(`--restore-from ${dir}: cannot read the arbiter's record of the newest durable checkpoint (${(error as Error).message}); a restore must not guess`);
  }
  const older = olderThanRecorded(record, dir, seq);
  if (older) throw new Error(older);
  if (record)
    logger.info(
      { record },
      `the arbiter records the newest durable checkpoint at seq ${record.seq} in ${record.dir} on node ${record.nodeId} (host ${record.host}); the newest checkpoint or log in ${dir} begins at seq ${seq}`,
    );
}
