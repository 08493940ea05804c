// The epoch test-and-set on etcd v3, for deployments without a shared directory: the systems operators
// already run for this job (etcd sits under every Kubernetes cluster). Under `prefix`:
//   newest            the newest claimed epoch, zero-padded to 10 digits (so byte order is numeric order)
//   epoch-NNNNNNNNNN  who claimed epoch N, and when
//   live-NNNNNNNNNN   epoch N's holder's lease key: {epoch, nodeId}, gone when its lease expires
//   checkpoint        where the newest durable checkpoint is: {epoch, nodeId, address, dir, seq}
//   replication-NNNNNNNNNN  where epoch N's holder takes backups: {epoch, nodeId, url} (replication-record.ts)
//   seal-NNNNNNNNNN   epoch N activated by its holder or voided by a claim loser: {epoch, kind, nodeId, at}
//                     (one put-if-absent transaction; why it is safe: arbiter.ts, Activation)
// Claiming epoch N is one transaction: if newest < N, then set newest = N, write epoch-N and live-N
// (on a fresh lease of at least --lease-ms). etcd linearizes transactions, so of any nodes racing for
// N exactly one wins, and none can claim an epoch at or below one that exists. An etcd that cannot be
// reached gives 'unreachable', never a guess.
//
// The lease (hypervisor/node/role.ts): every lease check of the holder is a keepalive of its lease and
// a read of `newest`. Its TTL (whole seconds, three times leaseMs) outlives the holder's own release
// window (leaseMs from the check's send time), so once live-N is gone the holder has stopped
// releasing: a node claiming over an epoch it did not follow waits for that (lease-wait.ts).

import os from 'node:os';
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Lease, type Watcher } from 'etcd3';
import { type ClaimResult, type EpochClaim, type EpochSeal, voidable } from './arbiter.js';
import type { CheckpointRecord } from './checkpoint-record.js';
import type { LeaseCheck } from './env.js';
import { EtcdArbiterError, parseEtcdUrl } from './etcd-url.js';
import { parseReplicationRecord, type ReplicationRecord } from './replication-record.js';

// In their own module so that the CLI can check a URL without loading the etcd client.
export { EtcdArbiterError, parseEtcdUrl } from './etcd-url.js';

export const DEFAULT_ETCD_TIMEOUT_MS = 2_000;
const EPOCH_DIGITS = 10;
/** The etcd lease's TTL, in release windows (--lease-ms). */
export const LEASE_TTL_WINDOWS = 3;

export interface EtcdArbiterOptions {
  /** Client certificate credentials (etcds:// or --etcd-ca). */
  credentials?: IOptions['credentials'];
  auth?: IOptions['auth'];
  /** Time an etcd call may take before the claim is reported unreachable. */
  timeoutMs?: number;
}

const pad = (epoch: number) => String(epoch).padStart(EPOCH_DIGITS, '0');

export class EtcdArbiter {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  /** The lease this node holds live-N on, for its newest epoch won. */
  private held: { epoch: number; lease: Lease } | null = null;
  private watcher: Watcher | null = null;

  constructor(
    readonly url: string,
    readonly nodeId: string,
    options: EtcdArbiterOptions = {},
  ) {
    const { hosts, prefix } = parseEtcdUrl(url);
    this.prefix = prefix;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    this.client = new Etcd3({
      hosts,
      dialTimeout: this.timeoutMs,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.auth ? { auth: options.auth } : {}),
    });
  }

  /** The newest claimed epoch (0 if none), or null when etcd cannot be reached. */
  async newestEpoch(): Promise<number | null> {
    try {
      const value = await this.withTimeout(this.client.get(`${this.prefix}newest`).string());
      return value === null ? 0 : Number(value);
    } catch {
      return null;
    }
  }

  async owner(epoch: number): Promise<EpochClaim | null> {
    try {
      const value = await this.withTimeout(this.client.get(`${this.prefix}epoch-${pad(epoch)}`).string());
      return value === null ? null : (JSON.parse(value) as EpochClaim);
    } catch {
      return null;
    }
  }

  async claim(epoch: number, role: string, leaseMs?: number, mayVoid = false): Promise<ClaimResult> {
    if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch >= 10 ** EPOCH_DIGITS) throw new RangeError(`bad epoch ${epoch}`);
    const claim: EpochClaim = { epoch, nodeId: this.nodeId, role, pid: process.pid, host: os.hostname(), claimedAt: new Date().toISOString(), seals: 1 };
    const newestKey = `${this.prefix}newest`;
    let lease: Lease | null = null;
    try {
      // A missing key fails every Value compare, so the first claim ever creates `newest` on its own terms.
      await this.withTimeout(
        this.client
          .if(newestKey, 'Create', '==', 0)
          .then(this.client.put(newestKey).value(pad(0)))
          .commit(),
      );
      const puts = [this.client.put(newestKey).value(pad(epoch)), this.client.put(`${this.prefix}epoch-${pad(epoch)}`).value(JSON.stringify(claim))];
      if (leaseMs !== undefined) {
        lease = this.newLease(leaseMs);
        puts.push(this.livePut(epoch, await this.withTimeout(lease.grant())));
      }
      const result = await this.withTimeout(
        this.client
          .if(newestKey, 'Value', '<', pad(epoch))
          .then(...puts)
          .commit(),
      );
      if (result.succeeded) {
        if (lease) this.hold(epoch, lease);
        return this.activate(epoch, `etcd ${this.url}: epoch ${epoch} claimed`);
      }
    } catch (error) {
      void lease?.revoke().catch(() => undefined);
      return { result: 'unreachable', detail: `etcd ${this.url}: ${(error as Error).message}` };
    }
    void lease?.revoke().catch(() => undefined);
    // Lost, or a claim of ours that timed out earlier did land: the epoch's record says which.
    const owner = await this.owner(epoch);
    if (owner?.nodeId === this.nodeId && owner.claimedAt !== claim.claimedAt) {
      const newest = await this.newestEpoch();
      if (newest === epoch) return this.activate(epoch, `etcd ${this.url}: epoch ${epoch} was claimed by an earlier attempt of this node`);
    }
    const newest = await this.newestEpoch();
    const detail = owner
      ? `epoch ${epoch} is held by ${owner.nodeId} (${owner.role}, pid ${owner.pid}, since ${owner.claimedAt})`
      : `epoch ${newest ?? '?'} already exists at or beyond epoch ${epoch}`;
    // The newest epoch, never activated: void it (arbiter.ts, Activation).
    if (!voidable(owner)) return { result: 'lost', detail };
    // Not knowing whether N is the newest is not knowing whether it may be voided: ask again, never halt on it.
    if (newest === null) return { result: 'unreachable', detail: `etcd ${this.url}: cannot read the newest epoch (${detail})` };
    if (newest !== epoch) return { result: 'lost', detail };
    const seal = mayVoid ? await this.seal(epoch, 'void') : await this.readSeal(epoch);
    if (seal === undefined) return { result: 'lost', unactivated: true, detail: `${detail}, not activated yet` };
    if (seal === null) return { result: 'unreachable', detail: `etcd ${this.url}: cannot write or read the seal of epoch ${epoch} (${detail})` };
    if (seal.kind === 'activated') return { result: 'lost', detail };
    return { result: 'lost', voided: true, detail: `${detail}, but it was never activated: void (by ${seal.nodeId})` };
  }

  /** The holder's activation of `epoch`, before it reports 'won' (so before it releases anything). */
  private async activate(epoch: number, detail: string): Promise<ClaimResult> {
    const seal = await this.seal(epoch, 'activated');
    if (seal === null) return { result: 'unreachable', detail: `etcd ${this.url}: cannot write or read the seal of epoch ${epoch} after claiming it` };
    if (seal.kind === 'void') {
      if (this.held?.epoch === epoch) await this.releaseLease();
      return { result: 'lost', detail: `epoch ${epoch} was voided by ${seal.nodeId} before this node activated it` };
    }
    if (seal.nodeId !== this.nodeId) throw new Error(`invariant: epoch ${epoch} activated by ${seal.nodeId}, but ${this.nodeId} holds it`);
    return { result: 'won', detail };
  }

  /** Puts seal-N as `kind` unless it exists (one transaction); the seal that stands, or null when unreachable. */
  private async seal(epoch: number, kind: EpochSeal['kind']): Promise<EpochSeal | null> {
    const key = `${this.prefix}seal-${pad(epoch)}`;
    const mine: EpochSeal = { epoch, kind, nodeId: this.nodeId, at: new Date().toISOString() };
    try {
      const put = await this.withTimeout(
        this.client
          .if(key, 'Create', '==', 0)
          .then(this.client.put(key).value(JSON.stringify(mine)))
          .commit(),
      );
      if (put.succeeded) return mine;
    } catch {
      return null;
    }
    return (await this.readSeal(epoch)) ?? null;
  }

  /** The seal of `epoch`; undefined when there is none, null when etcd cannot be read. */
  private async readSeal(epoch: number): Promise<EpochSeal | null | undefined> {
    try {
      const value = await this.withTimeout(this.client.get(`${this.prefix}seal-${pad(epoch)}`).string());
      if (value === null) return undefined;
      const seal = JSON.parse(value) as EpochSeal;
      return seal.kind === 'activated' || seal.kind === 'void' ? seal : null;
    } catch {
      return null;
    }
  }

  /**
   * The holder's lease check: a keepalive of its lease on live-N, then a read of `newest`. When it holds
   * none for N, or etcd says it expired, a fresh one is put on live-N, only while N is still the newest
   * epoch (one transaction). That is safe: the node released nothing since its release window closed,
   * before the expiry; a node that claimed over N after the expiry made N+1 the newest (then the put
   * fails and the node halts on the newer epoch); one that claims later waits for this new lease.
   */
  async checkLease(epoch: number, leaseMs: number): Promise<LeaseCheck> {
    let retaken: string | undefined;
    try {
      const held = this.held;
      if (held?.epoch === epoch) {
        try {
          await this.withTimeout(held.lease.keepaliveOnce());
          return { newest: await this.newestEpoch() };
        } catch (error) {
          if (!(error instanceof EtcdLeaseInvalidError)) throw error;
          this.held = null;
          retaken = `the etcd lease on epoch ${epoch} had expired (etcd went unanswered past its TTL); epoch ${epoch} is still the newest, so a new lease is taken`;
        }
      }
      const lease = this.newLease(leaseMs);
      const id = await this.withTimeout(lease.grant());
      const put = await this.withTimeout(this.client.if(`${this.prefix}newest`, 'Value', '==', pad(epoch)).then(this.livePut(epoch, id)).commit());
      if (put.succeeded) this.hold(epoch, lease);
      else void lease.revoke().catch(() => undefined);
      return { newest: await this.newestEpoch(), ...(put.succeeded && retaken ? { leaseRetaken: retaken } : {}) };
    } catch {
      return { newest: null };
    }
  }

  /** Live keys of epochs before `epoch` still held (a holder that may still release), or null when etcd cannot be read. */
  async previousHolders(epoch: number): Promise<string[] | null> {
    try {
      const live = await this.withTimeout(this.client.getAll().prefix(`${this.prefix}live-`).strings());
      return Object.entries(live)
        .filter(([key]) => Number(key.slice(-EPOCH_DIGITS)) < epoch)
        .map(([, value]) => value);
    } catch {
      return null;
    }
  }

  /** Calls `onEpoch` with each epoch claimed from now on (etcd's watch on `newest`). */
  watchNewer(onEpoch: (epoch: number) => void): void {
    if (this.watcher) return;
    void this.client
      .watch()
      .key(`${this.prefix}newest`)
      .create()
      .then((watcher) => {
        this.watcher = watcher;
        watcher.on('put', (kv) => onEpoch(Number(kv.value.toString())));
        // A dropped watch reconnects on its own; the lease checks cover the gap meanwhile.
        watcher.on('error', () => undefined);
      })
      .catch(() => undefined);
  }

  /** A node that stops (or halts) gives its lease back, so a node claiming over it need not wait out the TTL. */
  async releaseLease(): Promise<void> {
    const held = this.held;
    this.held = null;
    if (held) await this.withTimeout(held.lease.revoke()).catch(() => undefined);
  }

  async recordCheckpoint(record: CheckpointRecord): Promise<boolean> {
    try {
      // Only while the recording node's epoch is the newest: a superseded node's checkpoint is not the newest durable end.
      const r = await this.withTimeout(
        this.client
          .if(`${this.prefix}newest`, 'Value', '==', pad(record.epoch))
          .then(this.client.put(`${this.prefix}checkpoint`).value(JSON.stringify(record)))
          .commit(),
      );
      return r.succeeded;
    } catch {
      return false;
    }
  }

  async checkpointRecord(): Promise<CheckpointRecord | null> {
    const value = await this.withTimeout(this.client.get(`${this.prefix}checkpoint`).string());
    return value === null ? null : (JSON.parse(value) as CheckpointRecord);
  }

  /** Where the holder of `record.epoch` takes backups: written only while that epoch is the newest. */
  async recordReplication(record: ReplicationRecord): Promise<boolean> {
    try {
      const r = await this.withTimeout(
        this.client
          .if(`${this.prefix}newest`, 'Value', '==', pad(record.epoch))
          .then(this.client.put(`${this.prefix}replication-${pad(record.epoch)}`).value(JSON.stringify(record)))
          .commit(),
      );
      return r.succeeded;
    } catch {
      return false;
    }
  }

  async replicationRecord(epoch: number): Promise<ReplicationRecord | null> {
    try {
      const value = await this.withTimeout(this.client.get(`${this.prefix}replication-${pad(epoch)}`).string());
      return value === null ? null : parseReplicationRecord(value, epoch);
    } catch {
      return null;
    }
  }

  private newLease(leaseMs: number): Lease {
    // Whole seconds, never below the node's own release window (etcd may raise it to its minimum TTL).
    // Three release windows: one slow keepalive on a loaded machine must not cost a node its lease;
    // only a node claiming over this one waits the longer (a backup taking over does not wait).
    return this.client.lease(Math.max(1, Math.ceil((LEASE_TTL_WINDOWS * leaseMs) / 1000)), { autoKeepAlive: false });
  }

  private livePut(epoch: number, leaseId: string) {
    return this.client
      .put(`${this.prefix}live-${pad(epoch)}`)
      .value(JSON.stringify({ epoch, nodeId: this.nodeId, pid: process.pid, host: os.hostname() }))
      .lease(leaseId);
  }

  private hold(epoch: number, lease: Lease): void {
    const before = this.held;
    this.held = { epoch, lease };
    if (before) void before.lease.revoke().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  private withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EtcdArbiterError(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}
