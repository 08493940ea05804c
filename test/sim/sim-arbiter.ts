// The shared directory in the simulator: one table of epoch claims, the same test-and-set rules as
// hypervisor/node/arbiter.ts (exclusive create, then confirm no newer epoch), seen by each node through
// its own path that the seed can partition, slow down or fail (EIO, ENOSPC).

import type { ClaimResult } from '../../hypervisor/node/arbiter.js';
import type { ArbiterStore } from '../../hypervisor/node/env.js';
import type { ReplicationRecord } from '../../hypervisor/node/replication-record.js';
import type { Owner, World } from './world.js';

export interface DiskFaults {
  /** Node id -> virtual ms until which it cannot reach the directory. */
  partitionedUntil: Map<string, number>;
  /** Until then every operation fails with this code. */
  failing: { untilMs: number; code: 'EIO' | 'ENOSPC' } | null;
  /** Until then every operation takes this long (ms). */
  slow: { untilMs: number; ms: number } | null;
}

/** An operation that gets no answer within this long is reported unreachable (DEFAULT_CLAIM_TIMEOUT_MS). */
const TIMEOUT_MS = 2_000;
/**
 * The replication records' operations take a fixed latency, not one drawn from the seed: they came
 * after the seeds' faults were chosen, and a draw would shift every later one (seeds named as
 * regressions must keep the schedule they were named for).
 */
const RECORD_LATENCY_MS = 3;
/**
 * The seal (activation or void) and the newest-epoch read before a void take no time of their own on a
 * healthy disk, so that every seed keeps the schedule it had before seals existed (a later claim would
 * shift every event after it). A slow, failing or cut-off directory delays or fails them as any other
 * operation: that is where their races are.
 */
const SEAL_LATENCY_MS = 0;

export class SharedDirectory {
  readonly claims = new Map<number, string>();
  /** Each epoch's seal: activated by its holder or voided by a claim loser (hypervisor/node/arbiter.ts, Activation). */
  readonly seals = new Map<number, { kind: 'activated' | 'void'; nodeId: string }>();
  /** Where each epoch's holder takes backups (hypervisor/node/replication-record.ts). */
  readonly replication = new Map<number, ReplicationRecord>();
  readonly faults: DiskFaults = { partitionedUntil: new Map(), failing: null, slow: null };

  constructor(private readonly world: World) {}

  get newest(): number {
    let n = 0;
    for (const e of this.claims.keys()) n = Math.max(n, e);
    return n;
  }

  /** Node `nodeId`'s view (its own partition and the disk's state). */
  view(owner: Owner): ArbiterStore {
    return {
      newestEpoch: () => this.op(owner, () => this.newest).then((r) => (r.ok ? r.value : null)),
      claim: (epoch, role, _leaseMs, mayVoid) => this.claim(owner, epoch, role, mayVoid === true),
      // As the directory's: written only while the epoch is the newest; read per epoch.
      recordReplication: (record) =>
        this.op(
          owner,
          () => {
            if (this.newest !== record.epoch) return false;
            this.replication.set(record.epoch, record);
            return true;
          },
          RECORD_LATENCY_MS,
        ).then((r) => r.ok && r.value),
      replicationRecord: (epoch) => this.op(owner, () => this.replication.get(epoch) ?? null, RECORD_LATENCY_MS).then((r) => (r.ok ? r.value : null)),
    };
  }

  private async claim(owner: Owner, epoch: number, role: string, mayVoid: boolean): Promise<ClaimResult> {
    const created = await this.op(owner, () => {
      if (this.claims.has(epoch)) return this.claims.get(epoch)!;
      this.claims.set(epoch, owner.id);
      this.world.note(`arbiter: ${owner.id} (${role}) created epoch ${epoch}`);
      return owner.id;
    });
    if (!created.ok) return { result: 'unreachable', detail: `shared dir: ${created.why}` };
    if (created.value !== owner.id) return this.lostTo(owner, epoch, mayVoid, `epoch ${epoch} is held by ${created.value}`);
    const newest = await this.op(owner, () => this.newest);
    if (!newest.ok) return { result: 'unreachable', detail: `shared dir: cannot list epochs after claiming ${epoch}` };
    if (newest.value > epoch) return { result: 'lost', detail: `epoch ${newest.value} already exists beyond epoch ${epoch}` };
    const seal = await this.seal(owner, epoch, 'activated');
    if (seal === null) return { result: 'unreachable', detail: `shared dir: cannot seal epoch ${epoch}` };
    if (seal.kind === 'void') return { result: 'lost', detail: `epoch ${epoch} was voided by ${seal.nodeId} before this node activated it` };
    return { result: 'won', detail: `created epoch ${epoch}` };
  }

  /** As the directory's lostTo: the newest epoch, never activated, is voided. */
  private async lostTo(owner: Owner, epoch: number, mayVoid: boolean, detail: string): Promise<ClaimResult> {
    const newest = await this.op(owner, () => this.newest, SEAL_LATENCY_MS);
    if (!newest.ok) return { result: 'unreachable', detail: `shared dir: cannot list epochs (${detail})` };
    if (newest.value !== epoch) return { result: 'lost', detail };
    if (!mayVoid) {
      const read = await this.op(owner, () => this.seals.get(epoch), SEAL_LATENCY_MS);
      if (!read.ok) return { result: 'unreachable', detail: `shared dir: cannot read the seal of epoch ${epoch} (${detail})` };
      if (read.value === undefined) return { result: 'lost', unactivated: true, detail: `${detail}, not activated yet` };
      return { result: 'lost', detail };
    }
    const seal = await this.seal(owner, epoch, 'void');
    if (seal === null) return { result: 'unreachable', detail: `shared dir: cannot seal epoch ${epoch} (${detail})` };
    if (seal.kind === 'activated') return { result: 'lost', detail };
    return { result: 'lost', voided: true, detail: `${detail}, but it was never activated: void (by ${seal.nodeId})` };
  }

  /** One exclusive create of the seal (see SEAL_LATENCY_MS); the seal that stands, or null. */
  private async seal(owner: Owner, epoch: number, kind: 'activated' | 'void'): Promise<{ kind: 'activated' | 'void'; nodeId: string } | null> {
    const r = await this.op(
      owner,
      () => {
        if (!this.seals.has(epoch)) {
          this.seals.set(epoch, { kind, nodeId: owner.id });
          this.world.note(`arbiter: ${owner.id} sealed epoch ${epoch}: ${kind}`);
        }
        return this.seals.get(epoch)!;
      },
      SEAL_LATENCY_MS,
    );
    return r.ok ? r.value : null;
  }

  /**
   * One filesystem operation from `owner`: it takes the disk's latency, then happens atomically
   * (or fails). A partitioned node's operation never reaches the disk and times out.
   */
  private op<T>(owner: Owner, body: () => T, latencyMs?: number): Promise<{ ok: true; value: T } | { ok: false; why: string }> {
    const now = this.world.nowMs;
    const f = this.faults;
    const cut = (f.partitionedUntil.get(owner.id) ?? 0) > now;
    const latency = f.slow && f.slow.untilMs > now ? f.slow.ms : (latencyMs ?? this.world.int(1, 5));
    return new Promise((resolve) => {
      if (cut || latency >= TIMEOUT_MS) {
        // A slow disk may still apply the create after the caller gave up (a claim that "timed out").
        if (!cut && latency >= TIMEOUT_MS) this.world.at(latency, null, () => void this.tryApply(body));
        this.world.at(TIMEOUT_MS, owner, () => resolve({ ok: false, why: 'ETIMEDOUT' }));
        return;
      }
      this.world.at(latency, owner, () => {
        const failing = f.failing && f.failing.untilMs > this.world.nowMs ? f.failing.code : null;
        if (failing) return resolve({ ok: false, why: failing });
        resolve({ ok: true, value: body() });
      });
    });
  }

  private tryApply(body: () => unknown): void {
    const failing = this.faults.failing && this.faults.failing.untilMs > this.world.nowMs;
    if (!failing) body();
  }
}
