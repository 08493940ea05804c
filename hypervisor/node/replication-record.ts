// Where an epoch's holder takes backups: the address of its logging channel, recorded with the epoch
// (as the newest checkpoint is, checkpoint-record.ts). A node that learns it lost its epoch (fenced: a
// lost claim, a lease check or a watch that found a newer epoch) reads it, and instead of exiting joins
// the holder as a fresh backup: a false suspicion costs a delay, never a node (DESIGN invariant 7).
//
// The shared directory keeps one file per epoch, `replication-NNNNNNNNNN`, renamed into place by that
// epoch's holder once its channel listens (and again for each epoch it wins later); etcd keeps one key
// per epoch, written only while the epoch is the newest (hypervisor/node/arbiter-etcd.ts). An epoch with
// no record (written by an older ftjs, a node with no channel for backups, or one that listens on a
// wildcard address, which names no host to dial) is read as "no address": the fenced node exits as it
// did before.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeRecordFile } from './checkpoint-record.js';
import type { ArbiterStore, Clock, Timers } from './env.js';
import type { HaltEvent } from './pair.js';
import { EXIT_LOST_EPOCH } from './role.js';

export interface ReplicationRecord {
  epoch: number;
  nodeId: string;
  /** ws:// or wss:// address of the holder's logging channel. */
  url: string;
  recordedAt: string;
}

/**
 * How long a fenced node looks for the newest epoch's record before it gives up and exits: the holder
 * writes it once its channel listens, a moment after its claim (a backup drains before it claims, not
 * after). Asked again every claimRetryMs meanwhile.
 */
export const WINNER_LOOKUP_MS = 10_000;

const RECORD_FILE = (epoch: number) => `replication-${String(epoch).padStart(10, '0')}`;

/** The record for `url`, or null when its host is a wildcard (0.0.0.0, ::): no one can dial that. */
export function replicationRecordFor(epoch: number, nodeId: string, url: string, nowIso: string): ReplicationRecord | null {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return null;
  }
  if (host === '0.0.0.0' || host === '[::]' || host === '::' || host === '') return null;
  return { epoch, nodeId, url, recordedAt: nowIso };
}

/** Shared directory: writes the record of `record.epoch` (a temporary file renamed over it). */
export function writeDirReplication(sharedDir: string, record: ReplicationRecord): Promise<boolean> {
  return writeRecordFile(path.join(sharedDir, RECORD_FILE(record.epoch)), record);
}

/** Shared directory: the record of `epoch`, or null when none was written (or it cannot be read). */
export async function readDirReplication(sharedDir: string, epoch: number): Promise<ReplicationRecord | null> {
  try {
    const record = JSON.parse(await fs.readFile(path.join(sharedDir, RECORD_FILE(epoch)), 'utf8')) as Partial<ReplicationRecord>;
    return typeof record.url === 'string' && record.epoch === epoch ? (record as ReplicationRecord) : null;
  } catch {
    return null;
  }
}

/**
 * The holder of the newest epoch, as recorded, for a node `self` that was fenced: asked until the
 * record is there or WINNER_LOOKUP_MS has passed (null: no address known, or the newest epoch's holder
 * is this node itself, which a fenced node cannot follow).
 */
export async function findWinner(arbiter: ArbiterStore, self: string, world: { clock: Clock; timers: Timers }, retryMs: number): Promise<ReplicationRecord | null> {
  if (!arbiter.replicationRecord) return null;
  const until = world.clock.monoMs() + WINNER_LOOKUP_MS;
  for (;;) {
    const newest = await arbiter.newestEpoch();
    const record = newest !== null && newest > 0 ? await arbiter.replicationRecord(newest).catch(() => null) : null;
    if (record !== null) return record.nodeId === self ? null : record;
    if (!(world.clock.monoMs() + retryMs <= until)) return null;
    await new Promise<void>((resolve) => world.timers.after(Math.max(1, retryMs), resolve));
  }
}

/**
 * A node halts: if it lost its epoch (EXIT_LOST_EPOCH: it released nothing since, and its held outputs
 * are dropped), the event says whom to join instead of exiting: the newest epoch's holder as recorded,
 * or `fallbackUrl` (a backup that never served: the primary it was given). With a fallback the record
 * is read once; without, it is waited for (WINNER_LOOKUP_MS) while the holder comes to listen.
 */
export async function rejoinTarget(event: HaltEvent, arbiter: ArbiterStore, self: string, world: { clock: Clock; timers: Timers }, retryMs: number, fallbackUrl: string | null): Promise<HaltEvent> {
  if (event.exitCode !== EXIT_LOST_EPOCH) return event;
  const winner = await findWinner(arbiter, self, world, fallbackUrl === null ? retryMs : Number.POSITIVE_INFINITY);
  if (winner) return { ...event, rejoin: true, rejoinUrl: winner.url, winner: `${winner.nodeId} (epoch ${winner.epoch})` };
  return fallbackUrl === null ? event : { ...event, rejoin: true };
}
