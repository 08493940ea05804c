// The arbiter: an atomic test-and-set per epoch on a shared directory. Claiming epoch N is an
// exclusive create of the file `epoch-N` (open with O_CREAT|O_EXCL), with who and when written
// inside and fsynced. Exactly one node can create it; whoever did owns the epoch. A directory that
// cannot be reached gives 'unreachable', never a guess.
//
// Activation (the seal). A claim can land after its claimer gave up on it (a slow directory) and the
// claimer can then crash: the epoch then has a holder that never served, and no survivor could tell
// that from a holder serving alone. So winning takes a second exclusive create, `seal-N`, which holds
// either "activated" (written by epoch N's holder, before `claim` reports 'won', so before it releases
// anything in N) or "void" (written by a node that lost the claim of N, N being the newest epoch, on a
// second look: a claim loser is first told 'lost' with `unactivated`, and voids only when it claims again
// with `mayVoid`, a claim-retry period later, so that a holder that is alive has activated by then and
// a plain race keeps its winner). Exactly one of the two exists. Why that keeps DESIGN's invariants:
// - One speaker per epoch: a node speaks in N only after its own activation of N; the seal is one
//   exclusive create, and only N's holder writes "activated", so at most one node speaks in N, and none
//   once N is void.
// - Output Rule, no acknowledged effect lost: nothing is released in a void epoch (no speaker). The node
//   that voided N was claiming N under the role machine's conditions for claiming N (it held epoch N-1,
//   or followed its holder and drained); nothing released since then, so the same conditions hold for
//   N+1, which it claims next (ClaimResult.voided). A claim of N+1 that finds it taken goes by the same
//   rule: activated, the claimer lost; never activated, it may be voided in turn.
// - Lineage: the log's epoch marks skip a void epoch (N-1, then N+1); no entry was written in N.
// - The holder whose activation finds "void" lost: it halts as any claim loser, having released nothing.
// A seal that cannot be written or read is 'unreachable' (the claim is retried), never a guess.

import { constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CheckpointRecord, readDirRecord, writeDirRecord } from './checkpoint-record.js';
import { type ReplicationRecord, readDirReplication, writeDirReplication } from './replication-record.js';

/**
 * `unactivated`: lost to a holder that has not activated the epoch (yet): a claim again with mayVoid may
 * void it. `voided`: the epoch lost was never activated and is now void (see Activation above): claim
 * the next one.
 */
export type ClaimResult = { result: 'won' | 'lost' | 'unreachable'; detail: string; unactivated?: boolean; voided?: boolean };

/** The seal of an epoch: activated by its holder, or voided by a node that lost the claim (exactly one). */
export interface EpochSeal {
  epoch: number;
  kind: 'activated' | 'void';
  nodeId: string;
  at: string;
}

export interface EpochClaim {
  epoch: number;
  nodeId: string;
  role: string;
  pid: number;
  host: string;
  claimedAt: string;
  /**
   * 1: the claimer seals what it wins (Activation above). A claim without it was written by a version
   * that never seals: its epoch is never voided, since its holder may serve without an activation.
   */
  seals?: 1;
}

/** Whether an epoch held by `owner` may be voided: only one whose holder would have activated it. */
export function voidable(owner: EpochClaim | null): owner is EpochClaim {
  return owner?.seals === 1;
}

const EPOCH_FILE = /^epoch-(\d{10})$/;
/** A claim that takes longer than this is reported unreachable (and retried; see claim()). */
export const DEFAULT_CLAIM_TIMEOUT_MS = 2_000;

export function epochFileName(epoch: number): string {
  if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch > 9_999_999_999) throw new RangeError(`bad epoch ${epoch}`);
  return `epoch-${String(epoch).padStart(10, '0')}`;
}

export function sealFileName(epoch: number): string {
  return `seal-${epochFileName(epoch).slice('epoch-'.length)}`;
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

  async claim(epoch: number, role: string, _leaseMs?: number, mayVoid = false): Promise<ClaimResult> {
    const file = path.join(this.dir, epochFileName(epoch));
    const claim: EpochClaim = { epoch, nodeId: this.nodeId, role, pid: process.pid, host: os.hostname(), claimedAt: new Date().toISOString(), seals: 1 };
    try {
      await withTimeout(this.create(file, claim), this.claimTimeoutMs);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // A claim that timed out earlier may have completed after all: the file then names us.
        const owner = await this.owner(epoch);
        if (owner?.nodeId === this.nodeId) return this.confirm(epoch);
        const detail = owner ? `epoch ${epoch} is held by ${owner.nodeId} (${owner.role}, pid ${owner.pid}, since ${owner.claimedAt})` : `epoch ${epoch} is already claimed`;
        return voidable(owner) ? this.lostTo(epoch, mayVoid, detail) : { result: 'lost', detail };
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
    const seal = await this.seal(epoch, 'activated');
    if (seal === null) return { result: 'unreachable', detail: `${this.dir}: cannot write or read ${sealFileName(epoch)} after claiming ${epoch}` };
    if (seal.kind === 'void') return { result: 'lost', detail: `epoch ${epoch} was voided by ${seal.nodeId} before this node activated it` };
    if (seal.nodeId !== this.nodeId) throw new Error(`invariant: ${sealFileName(epoch)} activated by ${seal.nodeId}, but ${this.nodeId} holds epoch ${epoch}`);
    return { result: 'won', detail: `created ${path.join(this.dir, epochFileName(epoch))}` };
  }

  /** Lost the claim of `epoch`: if it is the newest and was never activated, say so, or void it (see Activation). */
  private async lostTo(epoch: number, mayVoid: boolean, detail: string): Promise<ClaimResult> {
    const newest = await this.newestEpoch();
    // Not knowing whether N is the newest is not knowing whether it may be voided: ask again, never halt on it.
    if (newest === null) return { result: 'unreachable', detail: `${this.dir}: cannot list epochs (${detail})` };
    if (newest !== epoch) return { result: 'lost', detail };
    const seal = mayVoid ? await this.seal(epoch, 'void') : await this.readSeal(epoch);
    if (seal === undefined) return { result: 'lost', unactivated: true, detail: `${detail}, not activated yet` };
    if (seal === null) return { result: 'unreachable', detail: `${this.dir}: cannot write or read ${sealFileName(epoch)} (${detail})` };
    if (seal.kind === 'activated') return { result: 'lost', detail };
    return { result: 'lost', voided: true, detail: `${detail}, but it was never activated: void (by ${seal.nodeId})` };
  }

  /** Creates `seal-N` as `kind` unless it exists; either way the seal that stands, or null when unreachable. */
  private async seal(epoch: number, kind: EpochSeal['kind']): Promise<EpochSeal | null> {
    const file = path.join(this.dir, sealFileName(epoch));
    const mine: EpochSeal = { epoch, kind, nodeId: this.nodeId, at: new Date().toISOString() };
    try {
      await withTimeout(this.createWhole(file, mine), this.claimTimeoutMs);
      return mine;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return null;
    }
    return (await this.readSeal(epoch)) ?? null;
  }

  /** The seal of `epoch`; undefined when there is none, null when it cannot be read. */
  private async readSeal(epoch: number): Promise<EpochSeal | null | undefined> {
    try {
      const seal = JSON.parse(await withTimeout(fs.readFile(path.join(this.dir, sealFileName(epoch)), 'utf8'), this.claimTimeoutMs)) as EpochSeal;
      return seal.kind === 'activated' || seal.kind === 'void' ? seal : null;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : null;
    }
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

  /**
   * An exclusive create that is never seen half-written: the content goes to a private temporary file
   * first, then link() names it (atomic, EEXIST when the name exists). A seal nobody can read would
   * leave its epoch undecidable for good.
   */
  private async createWhole(file: string, seal: EpochSeal): Promise<void> {
    const temp = `${file}.${this.nodeId.replace(/[^\w.-]/g, '_')}.${process.pid}.${Date.now()}.tmp`;
    await writeNewFile(temp, seal);
    try {
      await fs.link(temp, file);
    } finally {
      await fs.unlink(temp).catch(() => undefined);
    }
    await syncDirectory(this.dir);
  }

  private async create(file: string, claim: EpochClaim): Promise<void> {
    await writeNewFile(file, claim);
    await syncDirectory(this.dir); // the new name itself durable
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Creates `file` (EEXIST if it exists) holding `value` as a JSON line, fsynced. */
async function writeNewFile(file: string, value: object): Promise<void> {
  const handle = await fs.open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
  try {
    await handle.writeFile(`${JSON.stringify(value)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a directory, so that names created in it survive a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
