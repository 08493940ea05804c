// The node's world, passed in rather than imported (DESIGN rule 3; TigerBeetle's replica generic over
// its time, storage and network). Everything a node does that touches the world goes through one of
// these: the production implementation (realEnv) reads the real clocks, arms real timers, creates
// the shared-directory Arbiter and VM workers and calls the global fetch; the simulator
// (test/sim/) gives virtual time, seeded entropy, a simulated shared directory and in-process VMs.
//
// The protocol cores (hypervisor/node/role.ts, logging-channel/*-session.ts) take none of this: they are
// handed the time as data and return actions. Only the shells hold an Env.

import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { type Clock, realClock, realTimers, type Timers } from '../../logging-channel/time.js';
import type { Transport } from '../../logging-channel/transport.js';
import { wsTransport } from '../../logging-channel/ws-transport.js';
import type { VmLimits } from '../vm/limits.js';
import type { SnapshotBodyCodec } from '../vm/snapshot-wire.js';
import { VmHost } from '../worker/vm-host.js';
import type { ClaimResult } from './arbiter.js';
import { arbiterFactory, isEtcdLocation } from './arbiter-select.js';
import { DirWitness, type Witness } from './beacon.js';
import type { CheckpointRecord } from './checkpoint-record.js';
import { listen } from './pair.js';
import { probePort } from './port-probe.js';
import type { ReplicationRecord } from './replication-record.js';
import { pacedDeflateBodies } from './snapshot-body.js';

export { type Clock, realClock, realTimers, type TimerHandle, type Timers } from '../../logging-channel/time.js';

/** The shared storage the epoch test-and-set runs on (hypervisor/node/arbiter.ts is the directory one). */
export interface ArbiterStore {
  newestEpoch(): Promise<number | null>;
  /** `leaseMs`: the claimer will hold the epoch's lease (etcd grants one with the claim). */
  /** `mayVoid`: void the epoch if its holder still has not activated it (arbiter.ts, Activation). */
  claim(epoch: number, role: string, leaseMs?: number, mayVoid?: boolean): Promise<ClaimResult>;
  /** The holder of `epoch` renews its lease and reads the newest epoch (etcd; elsewhere the shell reads newestEpoch). */
  checkLease?(epoch: number, leaseMs: number): Promise<LeaseCheck>;
  /** Holders of epochs before `epoch` whose lease still runs (etcd), or null when unreadable. */
  previousHolders?(epoch: number): Promise<string[] | null>;
  /** Calls `onEpoch` with every epoch claimed from now on (etcd's watch). */
  watchNewer?(onEpoch: (epoch: number) => void): void;
  /** Gives this node's lease back (it stops): a node claiming over it need not wait out the TTL. */
  releaseLease?(): Promise<void>;
  /** Records where the newest durable checkpoint is (false: not recorded). */
  recordCheckpoint?(record: CheckpointRecord): Promise<boolean>;
  /** Where the newest durable checkpoint is, as recorded (null: none recorded). Throws when the arbiter cannot be read. */
  checkpointRecord?(): Promise<CheckpointRecord | null>;
  /** Records where the holder of `record.epoch` takes backups (hypervisor/node/replication-record.ts); false: not recorded. */
  recordReplication?(record: ReplicationRecord): Promise<boolean>;
  /** Where the holder of `epoch` takes backups, as recorded (null: none recorded, or unreadable). */
  replicationRecord?(epoch: number): Promise<ReplicationRecord | null>;
}

export interface LeaseCheck {
  /** The newest epoch, or null when the arbiter cannot be reached. */
  newest: number | null;
  /**
   * The lease had expired at the arbiter and a new one was taken, only because the epoch is still the
   * newest: a node claiming over this one after the expiry would have made it newer (and waits for the
   * new lease in turn: hypervisor/node/lease-wait.ts). Said in the log.
   */
  leaseRetaken?: string;
}

/** What a node asks of its VM (hypervisor/worker/vm-host.ts talks to a worker; the simulator runs it in process). */
export type VmHandle = Pick<VmHost, 'boot' | 'run' | 'replay' | 'goLive' | 'state' | 'snapshot' | 'pendingFetches' | 'terminate' | 'alive'> & {
  onFatal: (error: Error) => void;
  /** Pre-copy before a snapshot, and the snapshot's release (vm-host.ts); a VM without a kept copy has neither. */
  precopy?: VmHost['precopy'];
  releaseSnapshot?: VmHost['releaseSnapshot'];
};

/** The logging channel's network (logging-channel/transport.ts), and the check that a port can be bound. */
export interface NodeTransport extends Transport {
  /** Resolves when `port` on `host` could be bound now (a node checks before it claims an epoch). */
  probe(host: string, port: number): Promise<void>;
}

export interface Env {
  clock: Clock;
  timers: Timers;
  /** The logging channel's connections: WebSocket in production, the simulated network in test/sim. */
  transport: NodeTransport;
  /** Binds the node's HTTP front door; resolves with its URL (the simulator sends requests to the live loop itself). */
  serveHttp(server: Server, port: number, host: string): Promise<string>;
  /** OS randomness (nonces, the guest's entropy on the live port). */
  randomBytes(length: number): Uint8Array;
  /** The arbiter at `where` (a shared directory, or etcd://... ; hypervisor/node/arbiter-select.ts) as node `nodeId` sees it. */
  arbiter(where: string, nodeId: string): ArbiterStore;
  /** A new VM for a guest with these limits. */
  startVm(limits: VmLimits): VmHandle;
  /** Outbound HTTP for the guest's fetch (after the Output Rule released it). */
  fetch(url: string, init: RequestInit): Promise<Response>;
  /**
   * The witness at `where` for node `nodeId`, beating every `periodMs` (hypervisor/node/beacon.ts), or
   * null where there is none (etcd, or a world without one): suspicion then rests on the timeout and
   * the learned jitter alone.
   */
  witness?(where: string, nodeId: string, periodMs: number): Witness | null;
  /** How a join's snapshot body is compressed (hypervisor/vm/snapshot-wire.ts); absent: deflate. */
  snapshotCodec?: SnapshotBodyCodec;
}

/** Today's behaviour: performance.now/Date.now, Node timers, the shared directory or etcd, a VM worker, global fetch (the CLI puts the egress policy's fetch in its place). */
export const realEnv: Env = {
  clock: realClock,
  timers: realTimers,
  transport: { ...wsTransport, probe: (host, port) => probePort(port, host) },
  serveHttp: listen,
  randomBytes: (length) => new Uint8Array(randomBytes(length)),
  arbiter: arbiterFactory(),
  startVm: (limits) => VmHost.start(limits),
  fetch: (url, init) => fetch(url, init),
  witness: (where, nodeId, periodMs) => (isEtcdLocation(where) ? null : new DirWitness(where, nodeId, periodMs)),
  snapshotCodec: pacedDeflateBodies(),
};
