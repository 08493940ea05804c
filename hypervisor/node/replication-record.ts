// Where an epoch's holder takes backups: the address of its logging channel, recorded with the epoch
// (as the newest checkpoint is, checkpoint-record.ts). A node that learns it lost its epoch (fenced: a
// lost claim, a lease check or a watch that found a newer epoch) reads it, and instead of exiting joins
// the holder as a fresh backup: a false suspicion costs a delay, never a node (DESIGN invariant 7).
//
// The shared directory keeps one file per epoch, `replication-NNNNNNNNNN`, renamed into place by that
// epoch's holder once its channel listens (and again for each epoch it wins later); etcd keeps one key
// per epoch, written only while the epoch is the newest (hypervisor/node/arbiter-etcd.ts). A holder with
// no channel for backups (or one on a wildcard address, which names no host to dial) records that it
// has none; an epoch with no record at all (an older ftjs wrote it, or its holder died before it
// listened) is waited for a while, then read as "no address". Either way the fenced node exits, as it
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
  /**
   * ws:// or wss:// address of the holder's logging channel; null: it takes no backups (no channel
   * configured, or one on a wildcard address, which names no host to dial), so a fenced node exits at
   * once rather than wait for an address that will not come.
   */
  url: string | null;
  recordedAt: string;
}

/**
 * How long a fenced node looks for the newest epoch's record before it gives up and exits: the holder
 * writes it once its channel listens, a moment after its claim (a backup drains before it claims, not
 * after). Asked again every claimRetryMs meanwhile.
 */
export const WINNER_LOOKUP_MS = 5_000;

const RECORD_FILE = (epoch: number) => `replication-${String(epoch).padStart(10, '0')}`;

/** The record for a holder whose channel is at `url` (null: none); a wildcard host (0.0.0.0, ::) names no address either. */
export function replicationRecordFor(epoch: number, nodeId: string, url: string | null, nowIso: string): ReplicationRecord {
  return { epoch, nodeId, url: url !== null && dialable(url) ? url : null, recordedAt: nowIso };
}

function dialable(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return !(host === '0.0.0.0' || host === '[::]' || host === '::' || host === '');
  } catch {
    return false;
  }
}

/** A record as read back (a file or an etcd value): well formed for `epoch`, or null. */
export function parseReplicationRecord(text: string, epoch: number): ReplicationRecord | null {
  const record = JSON.parse(text) as Partial<ReplicationRecord>;
  return (typeof record.url === 'string' || record.url === null) && record.epoch === epoch && typeof record.nodeId === 'string' ? (record as ReplicationRecord) : null;
}

/** Shared directory: writes the record of `record.epoch` (a temporary file renamed over it). */
export function writeDirReplication(sharedDir: string, record: ReplicationRecord): Promise<boolean> {
  return writeRecordFile(path.join(sharedDir, RECORD_FILE(record.epoch)), record);
}

/** Shared directory: the record of `epoch`, or null when none was written (or it cannot be read). */
export async function readDirReplication(sharedDir: string, epoch: number): Promise<ReplicationRecord | null> {
  try {
    return parseReplicationRecord(await fs.readFile(path.join(sharedDir, RECORD_FILE(epoch)), 'utf8'), epoch);
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
  if (winner?.url) return { ...event, rejoin: true, rejoinUrl: winner.url, winner: { nodeId: winner.nodeId, epoch: winner.epoch } };
  return fallbackUrl === null ? event : { ...event, rejoin: true };
}
