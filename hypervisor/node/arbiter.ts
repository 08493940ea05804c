// The arbiter: an atomic test-and-set per epoch on a shared directory. Claiming epoch N is an
// exclusive create of the file `epoch-N` (open with O_CREAT|O_EXCL), with who and when written
// inside and fsynced. Exactly one node can create it; whoever did owns the epoch. A directory that
// cannot be reached gives 'unreachable', never a guess.

import { constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CheckpointRecord, readDirRecord, writeDirRecord } from './checkpoint-record.js';
import { type ReplicationRecord, readDirReplication, writeDirReplication } from './replication-record.js';

export type ClaimResult = { result: 'won' | 'lost' | 'unreachable'; detail: string };

export interface EpochClaim {
  epoch: number;
  nodeId: string;
  role: string;
  pid: number;
  host: string;
  claimedAt: string;
}

const EPOCH_FILE = /^epoch-(\d{10})$/;
/** A claim that takes longer than this is reported unreachable (and retried; see claim()). */
export const DEFAULT_CLAIM_TIMEOUT_MS = 2_000;

export function epochFileName(epoch: number): string {
  if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch > 9_999_999_999) throw new RangeError(`bad epoch ${epoch}`);
  return `epoch-${String(epoch).padStart(10, '0')}`;
}

export class Arbiter {
  constructor(
    readonly dir: string,
    readonly nodeId: string,
    private readonly claimTimeoutMs = DEFAULT_CLAIM_TIMEOUT_MS,
  ) {}

  /** The newest claimed epoch (0 if none), or null when the directory cannot be read. */
  async newestEpoch(): Promise<number | null> {
    try {
      const names = await withTimeout(fs.readdir(this.dir), this.claimTimeoutMs);
      let newest = 0;
      for (const name of names) {
        const m = EPOCH_FILE.exec(name);
        if (m) newest = Math.max(newest, Number(m[1]));
      }
      return newest;
    } catch {
      return null;
    }
  }

  async owner(epoch: number): Promise<EpochClaim | null> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir, epochFileName(epoch)), 'utf8')) as EpochClaim;
    } catch {
      return null;
    }
  }

  async claim(epoch: number, role: string): Promise<ClaimResult> {
    const file = path.join(this.dir, epochFileName(epoch));
    const claim: EpochClaim = { epoch, nodeId: this.nodeId, role, pid: process.pid, host: os.hostname(), claimedAt: new Date().toISOString() };
    try {
      await withTimeout(this.create(file, claim), this.claimTimeoutMs);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // A claim that timed out earlier may have completed after all: the file then names us.
        const owner = await this.owner(epoch);
        if (owner?.nodeId === this.nodeId) return this.confirm(epoch);
        return { result: 'lost', detail: owner ? `epoch ${epoch} is held by ${owner.nodeId} (${owner.role}, pid ${owner.pid}, since ${owner.claimedAt})` : `epoch ${epoch} is already claimed` };
      }
      return { result: 'unreachable', detail: `${this.dir}: ${code ?? (error as Error).message}` };
    }
    return this.confirm(epoch);
  }

  /** A newer epoch than ours means someone moved on already: then our claim counts for nothing. */
  private async confirm(epoch: number): Promise<ClaimResult> {
    const newest = await this.newestEpoch();
    if (newest === null) return { result: 'unreachable', detail: `${this.dir}: cannot list epochs after claiming ${epoch}` };
    if (newest > epoch) return { result: 'lost', detail: `epoch ${newest} already exists beyond epoch ${epoch}` };
    return { result: 'won', detail: `created ${path.join(this.dir, epochFileName(epoch))}` };
  }

  /** Where the newest durable checkpoint is: a record file per epoch (hypervisor/node/checkpoint-record.ts). */
  async recordCheckpoint(record: CheckpointRecord): Promise<boolean> {
    return (await this.newestEpoch()) === record.epoch && writeDirRecord(this.dir, record);
  }

  checkpointRecord(): Promise<CheckpointRecord | null> {
    return readDirRecord(this.dir);
  }

  /** Where this epoch's holder takes backups: a record file per epoch (hypervisor/node/replication-record.ts). */
  async recordReplication(record: ReplicationRecord): Promise<boolean> {
    return (await this.newestEpoch()) === record.epoch && writeDirReplication(this.dir, record);
  }

  replicationRecord(epoch: number): Promise<ReplicationRecord | null> {
    return readDirReplication(this.dir, epoch);
  }

  private async create(file: string, claim: EpochClaim): Promise<void> {
    const handle = await fs.open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(claim)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // Make the new name itself durable.
    const dirHandle = await fs.open(this.dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
