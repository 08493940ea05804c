// The node's world, passed in rather than imported (DESIGN rule 3; TigerBeetle's replica generic over
// its time, storage and network). Everything a node does that touches the world goes through one of
// these: the production implementation (realEnv) reads the real clocks, arms real timers, creates
// the shared-directory Arbiter and VM workers and calls the global fetch; the simulator
// (test/sim/) gives virtual time, seeded entropy, a simulated shared directory and in-process VMs.
//
// The protocol cores (hypervisor/node/role.ts, logging-channel/*-session.ts) take none of this: they are
// handed the time as data and return actions. Only the shells hold an Env.

import { randomBytes } from 'node:crypto';
import { type Clock, realClock, realTimers, type Timers } from '../../logging-channel/time.js';
import type { VmLimits } from '../vm/limits.js';
import { VmHost } from '../worker/vm-host.js';
import type { ClaimResult } from './arbiter.js';
import { arbiterFactory } from './arbiter-select.js';

export { type Clock, realClock, realTimers, type TimerHandle, type Timers } from '../../logging-channel/time.js';

/** The shared storage the epoch test-and-set runs on (hypervisor/node/arbiter.ts is the directory one). */
export interface ArbiterStore {
  newestEpoch(): Promise<number | null>;
  claim(epoch: number, role: string): Promise<ClaimResult>;
}

/** What a node asks of its VM (hypervisor/worker/vm-host.ts talks to a worker; the simulator runs it in process). */
export type VmHandle = Pick<VmHost, 'boot' | 'run' | 'replay' | 'goLive' | 'state' | 'snapshot' | 'pendingFetches' | 'terminate' | 'alive'> & {
  onFatal: (error: Error) => void;
  /** Pre-copy before a snapshot, and the snapshot's release (vm-host.ts); a VM without a kept copy has neither. */
  precopy?: VmHost['precopy'];
  releaseSnapshot?: VmHost['releaseSnapshot'];
};

export interface Env {
  clock: Clock;
  timers: Timers;
  /** OS randomness (nonces, the guest's entropy on the live port). */
  randomBytes(length: number): Uint8Array;
  /** The arbiter at `where` (a shared directory, or etcd://... ; hypervisor/node/arbiter-select.ts) as node `nodeId` sees it. */
  arbiter(where: string, nodeId: string): ArbiterStore;
  /** A new VM for a guest with these limits. */
  startVm(limits: VmLimits): VmHandle;
  /** Outbound HTTP for the guest's fetch (after the Output Rule released it). */
  fetch(url: string, init: RequestInit): Promise<Response>;
}

/** Today's behaviour: performance.now/Date.now, Node timers, the shared directory or etcd, a VM worker, global fetch (the CLI puts the egress policy's fetch in its place). */
export const realEnv: Env = {
  clock: realClock,
  timers: realTimers,
  randomBytes: (length) => new Uint8Array(randomBytes(length)),
  arbiter: arbiterFactory(),
  startVm: (limits) => VmHost.start(limits),
  fetch: (url, init) => fetch(url, init),
};
