// One simulated host running a production node: hypervisor/node/primary.ts's PrimaryNode or
// backup.ts's BackupNode, unchanged, over a simulated Env: virtual clocks (with this host's own
// jumps), timers on the world's queue (a paused host's wait), the simulated network as its Transport,
// the simulated shared directory, in-process VMs (sim-vm.ts). The host is what faults act on: a crash
// makes its events vanish and resets its connections, a pause defers them.
//
// Planted bugs live here, in the environment the node is given, never in production code: an arbiter
// that lies, a gate that releases at once, periodic timers that run through the host's pauses, a
// replay that is slower than the node can tell (NodeFaults).

import type { Logger } from 'pino';
import { BackupNode } from '../../hypervisor/node/backup.js';
import type { ArbiterStore, Env, TimerHandle } from '../../hypervisor/node/env.js';
import type { LiveLoop } from '../../hypervisor/node/live-loop.js';
import type { PairSettings } from '../../hypervisor/node/pair.js';
import { PrimaryNode } from '../../hypervisor/node/primary.js';
import type { RoleMachine } from '../../hypervisor/node/role.js';
import type { Serving } from '../../hypervisor/node/serving.js';
import { deflateBodies } from '../../hypervisor/vm/snapshot-wire.js';
import type { BootConfig } from '../../hypervisor/vm/vm.js';
import type { Sim } from './sim.js';
import { SimVm, type SimVmTiming } from './sim-vm.js';
import type { Owner, World } from './world.js';
import { zeroPageBodies } from './zero-page-bodies.js';

/** Wall clock of the simulated world at virtual time 0 (2026-01-01). */
const WALL_EPOCH_MS = 1_767_225_600_000;
/** The logging channel's service address: a dial reaches whichever node serves (sim.ts routeFor). */
export const CHANNEL_URL = 'ws://serving.sim:7000';
/** A directory that does not exist: a backup finds no checkpoint to offer as a join base. */
const NO_CHECKPOINTS = '/nonexistent/ftjs-sim';
const SECRET = 'simulated-shared-secret-0123456789';
/** A fresh backup joins by snapshot once the log is this long (small, so joins by snapshot happen). */
export const SIM_JOIN_BY_SNAPSHOT_AFTER = 200;
const LOOP = { maxQueuedEvents: 256, batchMaxEvents: 16, fetchTimeoutMs: 5_000, maxFetchResponseBytes: 1 << 20 };

/** Faults planted in one host's environment (simulator only: production code has no such switches). */
export interface NodeFaults {
  /** Planted bug: the Output Rule's gate releases every output at once. */
  releaseAtOnce?: boolean;
  /** Rewrites a claim's result before the node sees it (planted bug: a loser that keeps serving). */
  claimResult?: (result: 'won' | 'lost' | 'unreachable') => 'won' | 'lost' | 'unreachable';
  /** Rewrites the newest epoch the node reads (planted bug: never re-verifies, i.e. always "still ours"). */
  newestEpoch?: (newest: number | null, own: number | null) => number | null;
  /** Replay cost multiplier (a slow backup). */
  replaySlowdown?: number;
  /** Planted bug: the backup's heartbeats carry no replay progress (the primary cannot bound the backlog). */
  noReplayProgress?: boolean;
  /** Planted bug: the node's periodic timers run through the host's pauses (it never sees its own stall), while its messages wait. */
  tickThroughPauses?: boolean;
  /** Extra virtual ms the host stalls right after a VM boots from a joining snapshot (a slow boot on a busy host). */
  snapshotStallMs?: number;
  /** Virtual ms a VM boot takes (a large snapshot). */
  bootMs?: number;
}

export class SimHost implements Owner {
  crashed = false;
  halted: { reason: string; exitCode: number } | null = null;
  pausedUntilMs = 0;
  /** This host's monotonic clock runs ahead of the world's by this much (clock jumps). */
  clockOffsetMs = 0;
  wallOffsetMs = 0;
  /** When this host last stalled (a pause ended, or its clock jumped): accuracy is judged against it. */
  lastStallAtMs = -Infinity;
  readonly env: Env;
  node: PrimaryNode | BackupNode | null = null;
  /** The VM the node started last (the one it runs). */
  vm: SimVm | null = null;
  /**
   * When this host first asked for each epoch, and when it had last stalled then: a claim, once sent,
   * cannot be taken back, so accuracy is judged at that decision, not when its answer arrives.
   */
  readonly claimedAt = new Map<number, { atMs: number; lastStallAtMs: number }>();
  /** The node this backup dialled last (the one it follows). */
  primaryId: string | null = null;
  /** The newest epoch this host was seen serving in (the checker reports each new one once). */
  seenEpoch: number | null = null;
  /** How often a node on this host lost its epoch and joined the winner as a fresh backup. */
  rejoins = 0;
  /** Serving sides already wrapped by the checker. */
  readonly wrapped = new WeakSet<Serving>();

  constructor(
    readonly id: string,
    readonly sim: Sim,
    readonly world: World,
    readonly pair: PairSettings,
    readonly logger: Logger,
    readonly timing: SimVmTiming,
    readonly faults: NodeFaults = {},
  ) {
    const periodicOwner: Owner | null = faults.tickThroughPauses ? null : this;
    this.env = {
      clock: { monoMs: () => world.nowMs + this.clockOffsetMs, wallMs: () => WALL_EPOCH_MS + world.nowMs + this.wallOffsetMs },
      timers: {
        soon: (fn) => void world.at(0, this, fn),
        // As production's queueMicrotask: after the event's own code, before the next event (the world
        // drains every promise job between events). A crash in that event leaves it undone, as a kill does.
        afterCurrentJob: (fn) =>
          queueMicrotask(() => {
            if (!this.crashed) fn();
          }),
        after: (delayMs, fn) => world.at(delayMs, this, fn),
        every: (periodMs, fn) => {
          let handle: TimerHandle = { cancel() {} };
          let cancelled = false;
          const arm = (): void => {
            handle = world.at(periodMs, periodicOwner, () => {
              if (cancelled || this.crashed) return;
              arm();
              fn();
            });
          };
          arm();
          return { cancel: () => ((cancelled = true), handle.cancel()) };
        },
      },
      randomBytes: (n) => world.bytes(n),
      transport: sim.net.transportFor(this),
      serveHttp: async () => `http://${this.id.toLowerCase()}.sim`,
      arbiter: () => this.arbiter(),
      startVm: () => this.startVm(),
      fetch: () => Promise.reject(new Error('no outbound network in the simulation')),
      snapshotCodec: sim.options.deflateJoins ? deflateBodies : zeroPageBodies,
    };
  }

  private arbiter(): ArbiterStore {
    const real = this.sim.directory.view(this);
    const { claimResult, newestEpoch } = this.faults;
    return {
      recordReplication: (record) => real.recordReplication!(record),
      replicationRecord: (epoch) => real.replicationRecord!(epoch),
      claim: async (epoch, role, leaseMs, mayVoid) => {
        if (!this.claimedAt.has(epoch)) this.claimedAt.set(epoch, { atMs: this.world.nowMs, lastStallAtMs: this.lastStallAtMs });
        const r = await real.claim(epoch, role, leaseMs, mayVoid);
        const result = claimResult ? claimResult(r.result) : r.result;
        this.sim.note(`${this.id}: claim of epoch ${epoch}: ${r.result}${result !== r.result ? ` (planted: reported ${result})` : ''}`);
        return { ...r, result };
      },
      newestEpoch: async () => {
        const newest = await real.newestEpoch();
        return newestEpoch ? newestEpoch(newest, this.machine?.epoch ?? null) : newest;
      },
    };
  }

  private startVm(): SimVm {
    const { timing, faults } = this;
    const vm = new SimVm(
      this.world,
      this,
      { monoMs: () => this.env.clock.monoMs(), wallMs: () => this.env.clock.wallMs(), randomBytes: (n) => this.world.bytes(n) },
      { ...timing, replayTaskMs: timing.replayTaskMs * (faults.replaySlowdown ?? 1), ...(faults.bootMs ? { bootMs: faults.bootMs } : {}) },
    );
    if (faults.snapshotStallMs) {
      // A slow join on a busy host: right after the boot from the snapshot, the main thread stalls
      // (loading, the first replays) while the primary's frames wait unread.
      vm.afterBoot = (fromSnapshot) => {
        if (fromSnapshot) this.pause(faults.snapshotStallMs!);
      };
    }
    this.vm = vm;
    return vm;
  }

  // ---------------------------------------------------------------- views for the checks

  get machine(): RoleMachine | null {
    return this.node?.roleMachine ?? null;
  }

  get serving(): Serving | null {
    return this.node?.servingSide ?? null;
  }

  get isBackupNode(): boolean {
    return this.node instanceof BackupNode;
  }

  get role(): string {
    return this.halted ? 'halted' : this.crashed ? 'crashed' : (this.machine?.role ?? 'starting');
  }

  /** Alive (neither crashed nor halted) with a role machine. */
  get running(): boolean {
    return !this.crashed && !this.halted && this.machine !== null && this.machine.role !== 'halted';
  }

  /** What /_ft/health answers (hypervisor/node/front-door.ts's healthy). */
  get healthy(): boolean {
    return this.running && this.serving !== null && this.machine!.healthy;
  }

  /** Where the front door sends a request (null: 503). */
  get liveLoop(): LiveLoop | null {
    return this.running && this.serving !== null && this.machine!.servesTraffic ? this.serving.loop : null;
  }

  get receivedSeq(): number {
    return this.node instanceof BackupNode ? this.node.progress.receivedSeq : 0;
  }

  get replayedSeq(): number {
    return this.node instanceof BackupNode ? this.node.progress.replayedSeq : 0;
  }

  /** The backup's replay backlog (received, not yet replayed), in entries. */
  get backlog(): number {
    return this.node instanceof BackupNode && !this.serving ? Math.max(0, this.receivedSeq - this.replayedSeq) : 0;
  }

  /** What a takeover would cost now: the virtual time to replay every task received and not yet replayed. */
  get backlogReplayMs(): number {
    if (!(this.node instanceof BackupNode) || this.serving || !this.vm?.inner) return 0;
    return this.node.progress.queuedTasks * this.timing.replayTaskMs * (this.faults.replaySlowdown ?? 1);
  }

  // ---------------------------------------------------------------- starting

  /** A fresh primary: claims the next epoch (waiting while the directory is unreachable), boots the guest. */
  startPrimary(config: BootConfig): void {
    void PrimaryNode.start({
      config,
      nodeId: this.id,
      host: 'sim',
      port: 0,
      replicationHost: 'sim',
      replicationPort: 0,
      sharedDir: 'sim-shared',
      secret: SECRET,
      pair: this.pair,
      maxRequestBytes: 1 << 20,
      loop: LOOP,
      joinBySnapshotAfterEntries: SIM_JOIN_BY_SNAPSHOT_AFTER,
      env: this.env,
      logger: this.logger,
    }).then(
      (node) => this.adopt(node),
      (error: Error) => {
        if (!this.crashed) this.sim.violate(`${this.id} failed to start as a primary: ${error.message}`);
      },
    );
  }

  /**
   * A backup (fresh: it joins, by snapshot once the log is long) of whichever node serves, or of the
   * node at `primaryUrl` (a node that lost its epoch joins the winner the arbiter records).
   */
  startBackup(primaryUrl = CHANNEL_URL, joinsEpoch?: number): void {
    // Its start does real work only (a look for a checkpoint to offer as a join base): the world waits for it.
    void this.world
      .track(
        BackupNode.start({
          primaryUrl,
          ...(joinsEpoch !== undefined ? { joinsEpoch } : {}),
          nodeId: this.id,
          host: 'sim',
          port: 0,
          sharedDir: NO_CHECKPOINTS,
          secret: SECRET,
          pair: this.pair,
          maxRequestBytes: 1 << 20,
          loop: LOOP,
          replication: { host: 'sim', port: 0, secret: SECRET, joinBySnapshotAfterEntries: SIM_JOIN_BY_SNAPSHOT_AFTER },
          env: this.env,
          logger: this.logger,
        }),
      )
      .then(
        (node) => {
          this.adopt(node);
          if (this.faults.noReplayProgress) {
            // Planted: the backup's heartbeats say nothing of its replay (a node that reports no progress).
            (node as unknown as { channel: { replayProgress: unknown } }).channel.replayProgress = null;
          }
        },
        (error: Error) => this.sim.violate(`${this.id} failed to start as a backup: ${error.message}`),
      );
  }

  private adopt(node: PrimaryNode | BackupNode): void {
    if (this.crashed) return;
    this.node = node;
    node.on('halt', (e) => {
      if (this.halted || this.crashed) return;
      this.sim.note(`${this.id}: HALT (${e.exitCode}): ${e.reason}`);
      this.sim.onHalt(this, e.reason, e.exitCode);
      if (e.rejoin) {
        // As cli/pair.ts does: a node that lost its epoch joins the winner as a fresh backup, on the same host.
        const url = e.rejoinUrl ?? CHANNEL_URL;
        this.sim.note(`${this.id}: REJOIN as a fresh backup of ${url}${e.winner ? ` (${e.winner.nodeId} (epoch ${e.winner.epoch}))` : ''}`);
        this.rejoins++;
        this.seenEpoch = null;
        this.node = null;
        this.startBackup(url, e.winner?.epoch);
        return;
      }
      this.halted = e;
    });
  }

  // ---------------------------------------------------------------- faults

  /** The host died (SIGKILL, power): nothing more happens on it; its peers see its connections reset. */
  crash(): void {
    if (this.crashed) return;
    this.sim.note(`${this.id}: CRASH`);
    this.crashed = true;
    this.sim.net.crashed(this);
  }

  pause(forMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, this.world.nowMs + forMs);
    this.lastStallAtMs = Math.max(this.lastStallAtMs, this.pausedUntilMs);
    this.sim.note(`${this.id}: PAUSE ${forMs} ms`);
  }
}
