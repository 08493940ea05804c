// The epoch test-and-set on etcd v3, for deployments without a shared directory: the systems operators
// already run for this job (etcd sits under every Kubernetes cluster). Under `prefix`:
//   newest            the newest claimed epoch, zero-padded to 10 digits (so byte order is numeric order)
//   epoch-NNNNNNNNNN  who claimed epoch N, and when
//   live              the live node's lease key: {epoch, nodeId}, gone when its lease expires
// Claiming epoch N is one transaction: if newest < N, then set newest = N and write epoch-N. etcd
// linearizes transactions, so of any nodes racing for N exactly one wins, and none can claim an epoch
// at or below one that exists. An etcd that cannot be reached gives 'unreachable', never a guess.

import os from 'node:os';
import { Etcd3, type IOptions, type Lease } from 'etcd3';
import type { ClaimResult, EpochClaim } from './arbiter.js';
import { EtcdArbiterError, parseEtcdUrl } from './etcd-url.js';

// In their own module so that the CLI can check a URL without loading the etcd client.
export { EtcdArbiterError, parseEtcdUrl } from './etcd-url.js';

export const DEFAULT_ETCD_TIMEOUT_MS = 2_000;
const EPOCH_DIGITS = 10;

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

  async claim(epoch: number, role: string): Promise<ClaimResult> {
    if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch >= 10 ** EPOCH_DIGITS) throw new RangeError(`bad epoch ${epoch}`);
    const claim: EpochClaim = { epoch, nodeId: this.nodeId, role, pid: process.pid, host: os.hostname(), claimedAt: new Date().toISOString() };
    const newestKey = `${this.prefix}newest`;
    try {
      // A missing key fails every Value compare, so the first claim ever creates `newest` on its own terms.
      await this.withTimeout(
        this.client
          .if(newestKey, 'Create', '==', 0)
          .then(this.client.put(newestKey).value(pad(0)))
          .commit(),
      );
      const result = await this.withTimeout(
        this.client
          .if(newestKey, 'Value', '<', pad(epoch))
          .then(this.client.put(newestKey).value(pad(epoch)), this.client.put(`${this.prefix}epoch-${pad(epoch)}`).value(JSON.stringify(claim)))
          .commit(),
      );
      if (result.succeeded) return { result: 'won', detail: `etcd ${this.url}: epoch ${epoch} claimed` };
    } catch (error) {
      return { result: 'unreachable', detail: `etcd ${this.url}: ${(error as Error).message}` };
    }
    // Lost, or a claim of ours that timed out earlier did land: the epoch's record says which.
    const owner = await this.owner(epoch);
    if (owner?.nodeId === this.nodeId && owner.claimedAt !== claim.claimedAt) {
      const newest = await this.newestEpoch();
      if (newest === epoch) return { result: 'won', detail: `etcd ${this.url}: epoch ${epoch} was claimed by an earlier attempt of this node` };
    }
    const newest = await this.newestEpoch();
    return {
      result: 'lost',
      detail: owner ? `epoch ${epoch} is held by ${owner.nodeId} (${owner.role}, pid ${owner.pid}, since ${owner.claimedAt})` : `epoch ${newest ?? '?'} already exists at or beyond epoch ${epoch}`,
    };
  }

  /**
   * Holds an etcd lease of `ttlMs` for the live node of `epoch` (the `live` key lives and dies with it).
   * `onLost` fires once when the lease cannot be kept alive: the node must then stop releasing outputs.
   */
  async holdLease(epoch: number, ttlMs: number, onLost: (why: string) => void): Promise<{ release(): Promise<void> }> {
    const lease: Lease = this.client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: true });
    let lost = false;
    lease.on('lost', (error) => {
      if (lost) return;
      lost = true;
      onLost(`etcd lease lost: ${error.message}`);
    });
    await this.withTimeout(
      lease
        .put(`${this.prefix}live`)
        .value(JSON.stringify({ epoch, nodeId: this.nodeId }))
        .exec(),
    );
    return {
      release: async () => {
        lost = true;
        await lease.revoke().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
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
