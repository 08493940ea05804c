// What the primary and the backup shells share: pair settings and their defaults, the engine
// identity both ends of the logging channel must agree on, the tick that drives the role machine,
// and the node's HTTP face.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ENGINE_NAME, ENGINE_VERSION, engineWasmSha256 } from '../vm/engine.js';
import type { RoleAction, RoleConfig, RoleInput, RoleMachine } from './role.js';
import { DEFAULT_PHI_MAX_DELAY_MS, DEFAULT_PHI_THRESHOLD, DEFAULT_WITNESS_GRACE_MS } from './suspicion.js';

export interface PairSettings {
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  maxLagMs: number;
  /** Bound on the log a primary keeps for its backup (unacknowledged entries and history). */
  maxLogBufferBytes: number;
  claimRetryMs: number;
  /** Bound on the backup's replay backlog, in ms (what a takeover would have to drain). */
  maxReplayLagMs: number;
  /** A node that speaks re-verifies its epoch on the shared directory at least this often. */
  leaseMs: number;
  /** Phi (learned jitter of the peer's frames) at or above which a silence past the timeout is suspicion. */
  phiThreshold: number;
  /** The longest the learned jitter may put suspicion off past the heartbeat timeout. */
  phiMaxDelayMs: number;
  /** The longest a peer whose witness beacon still moves is not suspected past the heartbeat timeout. */
  witnessGraceMs: number;
}

/** Why a node stopped for good, and the exit code its process ends with. */
export interface HaltEvent {
  reason: string;
  exitCode: number;
  /**
   * A node that lost its epoch (a backup that lost its claim, or a primary or live node fenced by a
   * newer epoch): the epoch's winner runs, and this node can join it as a fresh backup (it released
   * nothing since, and its held outputs are dropped, so nothing of its state is owed). What a false
   * suspicion costs is then a delay, never a node.
   */
  rejoin?: boolean;
  /**
   * Whom to join (with rejoin): the logging channel of the newest epoch's holder, as the arbiter
   * records it (hypervisor/node/replication-record.ts); absent: the primary this backup was given. A
   * primary or live node that lost its epoch rejoins only with it.
   */
  rejoinUrl?: string;
  /** The holder of that address and the epoch it holds (the rejoining backup's BackupOptions.joinsEpoch). */
  winner?: { nodeId: string; epoch: number };
}

export const DEFAULT_HEARTBEAT_MS = 100;
/**
 * Go-live after a primary dies = detection (the heartbeat timeout) + the drain of the replay backlog
 * + the claim and the switch: a 700 ms backlog leaves about 300 ms of the 1 s budget for the rest.
 */
export const DEFAULT_MAX_REPLAY_LAG_MS = 700;
/** How often a node that speaks re-reads the newest epoch (one readdir of the shared directory). */
export const DEFAULT_LEASE_MS = 1000;
export const DEFAULT_PAIR_SETTINGS: PairSettings = {
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  heartbeatTimeoutMs: 3 * DEFAULT_HEARTBEAT_MS,
  maxLagMs: 1000,
  maxLogBufferBytes: 256 * 1024 * 1024,
  claimRetryMs: 250,
  maxReplayLagMs: DEFAULT_MAX_REPLAY_LAG_MS,
  leaseMs: DEFAULT_LEASE_MS,
  phiThreshold: DEFAULT_PHI_THRESHOLD,
  phiMaxDelayMs: DEFAULT_PHI_MAX_DELAY_MS,
  witnessGraceMs: DEFAULT_WITNESS_GRACE_MS,
};

export const TRACE_FORMAT_VERSION = 1;

export function engineIdentity(): string {
  return `${ENGINE_NAME}@${ENGINE_VERSION}+${engineWasmSha256().slice(0, 16)}`;
}

/** `witness`: the node can read its peer's beacon (hypervisor/node/beacon.ts; a shared-directory arbiter). */
export function roleConfig(settings: PairSettings, witness = false): RoleConfig {
  return {
    heartbeatMs: settings.heartbeatMs,
    heartbeatTimeoutMs: settings.heartbeatTimeoutMs,
    claimRetryMs: settings.claimRetryMs,
    maxLagMs: settings.maxLagMs,
    maxLagBytes: settings.maxLogBufferBytes,
    maxReplayLagMs: settings.maxReplayLagMs,
    leaseMs: settings.leaseMs,
    suspicion: { phiThreshold: settings.phiThreshold, phiMaxDelayMs: settings.phiMaxDelayMs, witnessGraceMs: settings.witnessGraceMs, witness },
  };
}

/** The tick period: fine enough that a timeout is noticed within a quarter heartbeat. */
export function tickMs(settings: PairSettings): number {
  return Math.max(5, Math.min(25, Math.floor(settings.heartbeatMs / 4)));
}

/**
 * Feeds inputs to the role machine and performs its actions, in order, one batch at a time (raft's
 * Ready): an action whose side effect produces another input (an append that reports 'appended', an
 * admit that runs the loop) never steps the machine re-entrantly; that input waits in the queue until
 * the whole batch has been performed, so every batch sees the machine in the state that made it.
 */
export class Stepper {
  private readonly queue: RoleInput[] = [];
  private stepping = false;

  constructor(
    private readonly machine: RoleMachine,
    private readonly perform: (action: RoleAction) => void,
    private readonly logger: Logger,
  ) {}

  step(input: RoleInput): void {
    this.queue.push(input);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        for (const action of this.machine.step(next)) {
          if (action.type === 'log') this.logger[action.level]({ role: this.machine.role, epoch: this.machine.epoch, ...(action.data ?? {}) }, action.msg);
          else this.perform(action);
        }
      }
    } finally {
      this.stepping = false;
      // An action that threw leaves its batch unfinished: what it queued is dropped with it.
      this.queue.length = 0;
    }
  }
}

export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
