// One simulated ftjs node: the production role machine (driven by the production Stepper), the
// production stream sessions, output buffer, live loop and task assembler, and a real QuickJS VM in
// process; wired as hypervisor/node/primary.ts and backup.ts wire them, but on the simulated world.
// Everything the node touches comes from its Env: virtual clocks (with this node's own jumps), timers
// on the world's queue (a paused node's wait), the simulated shared directory, in-process VMs.

import type { Logger } from 'pino';
import type { Env, TimerHandle } from '../../hypervisor/node/env.js';
import { type PairSettings, roleConfig, Stepper, tickMs } from '../../hypervisor/node/pair.js';
import { EXIT_DIVERGED, type RoleAction, type RoleInput, RoleMachine } from '../../hypervisor/node/role.js';
import type { BootConfig } from '../../hypervisor/vm/vm.js';
import { RefusalError } from '../../logging-channel/auth.js';
import { BackupSession, type BackupSessionAction } from '../../logging-channel/backup-session.js';
import { decodeEpochMark } from '../../logging-channel/codec.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import { decodeFrame, encodeAckFrame, encodeControlFrame, encodeHeartbeatFrame, FrameError } from '../../logging-channel/frames.js';
import { Log } from '../../recorder/log.js';
import { ReplayBacklog } from '../../replayer/replay-backlog.js';
import { type Assembled, TaskAssembler } from '../../replayer/task-assembler.js';
import type { Sim } from './sim.js';
import type { End, Message } from './sim-net.js';
import { SimServing } from './sim-serving.js';
import { SimVm, type SimVmTiming } from './sim-vm.js';
import type { Owner, World } from './world.js';

/** Wall clock of the simulated world at virtual time 0 (2026-01-01). */
const WALL_EPOCH_MS = 1_767_225_600_000;
const RECONNECT_DELAY_MS = 200;
const HANDSHAKE_TIMEOUT_MS = 1_000;

/** Faults planted in one node (simulator only: production code has no such switches). */
export interface NodeFaults {
  /** Replaces the Output Rule's gate (planted bug: release before the ack). */
  gate?: (serving: SimServing) => { hold(seq: number, release: () => void): void };
  /** Rewrites a claim's result before the machine sees it (planted bug: a loser that keeps serving). */
  claimResult?: (result: 'won' | 'lost' | 'unreachable') => 'won' | 'lost' | 'unreachable';
  /** Rewrites an epoch check's answer (planted bug: never re-verifies, i.e. always "still ours"). */
  epochChecked?: (newest: number | null, own: number) => number | null;
  /** Replay cost multiplier (a slow backup). */
  replaySlowdown?: number;
  /** Planted bug: the backup's heartbeats carry no replay progress (the primary cannot bound the backlog). */
  noReplayProgress?: boolean;
  /** Planted bug: the node's tick keeps running through its pauses (it never sees its own stall), while its channel waits. */
  tickThroughPauses?: boolean;
  /** Extra virtual ms the main thread stalls right after a joining snapshot arrives (a slow boot on a busy host). */
  snapshotStallMs?: number;
  /** Extra virtual ms a VM boot takes (a large snapshot). */
  bootMs?: number;
}

export class SimNode implements Owner {
  crashed = false;
  halted: { reason: string; exitCode: number } | null = null;
  pausedUntilMs = 0;
  /** This node's monotonic clock runs ahead of the world's by this much (clock jumps). */
  clockOffsetMs = 0;
  wallOffsetMs = 0;
  /** When this node last stalled (a pause ended, or its clock jumped): accuracy is judged against it. */
  lastStallAtMs = -Infinity;
  readonly env: Env;
  machine!: RoleMachine;
  private stepper!: Stepper;
  vm: SimVm | null = null;
  serving: SimServing | null = null;
  private tickTimer: TimerHandle | null = null;
  private config: BootConfig | null = null;
  // Backup side.
  private stream: BackupSession | null = null;
  private conn: End | null = null;
  private connecting = false;
  private paused = false;
  private readonly assembler = new TaskAssembler('sim logging channel');
  private readonly queue: Assembled[] = [];
  private readonly replayCost = new ReplayBacklog();
  private replaying = false;
  replayedSeq = 0;
  private replayedPos = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** The node this backup follows (chosen when it dials). */
  primaryId: string | null = null;

  constructor(
    readonly id: string,
    readonly sim: Sim,
    readonly world: World,
    readonly pair: PairSettings,
    readonly logger: Logger,
    readonly timing: SimVmTiming,
    readonly faults: NodeFaults = {},
  ) {
    this.env = {
      clock: { monoMs: () => world.nowMs + this.clockOffsetMs, wallMs: () => WALL_EPOCH_MS + world.nowMs + this.wallOffsetMs },
      timers: {
        soon: (fn) => void world.at(0, this, fn),
        after: (delayMs, fn) => world.at(delayMs, this, fn),
        every: (periodMs, fn) => {
          let handle = { cancel() {} };
          let cancelled = false;
          const arm = (): void => {
            handle = world.at(periodMs, this, () => {
              if (cancelled) return;
              arm();
              fn();
            });
          };
          arm();
          return { cancel: () => ((cancelled = true), handle.cancel()) };
        },
      },
      randomBytes: (n) => world.bytes(n),
      arbiter: () => sim.directory.view(this),
      startVm: () =>
        new SimVm(
          world,
          this,
          { monoMs: () => this.env.clock.monoMs(), wallMs: () => this.env.clock.wallMs(), randomBytes: (n) => world.bytes(n) },
          { ...timing, replayTaskMs: timing.replayTaskMs * (faults.replaySlowdown ?? 1), ...(faults.bootMs ? { bootMs: faults.bootMs } : {}) },
        ),
      fetch: () => Promise.reject(new Error('no outbound network in the simulation')),
    };
  }

  get role(): string {
    return this.halted ? 'halted' : this.crashed ? 'crashed' : (this.machine?.role ?? 'starting');
  }

  /** What /_ft/health answers. */
  get healthy(): boolean {
    return !this.crashed && !this.halted && this.serving !== null && this.machine.healthy;
  }

  get receivedSeq(): number {
    return this.stream?.receivedSeq ?? 0;
  }

  // ---------------------------------------------------------------- starting

  /** A fresh primary: claims the next epoch (waiting while the directory is unreachable), boots the guest. */
  async startPrimary(config: BootConfig): Promise<void> {
    this.config = config;
    const arbiter = this.env.arbiter('shared', this.id);
    let epoch = 0;
    for (;;) {
      const newest = await arbiter.newestEpoch();
      if (this.crashed) return;
      if (newest !== null) {
        const r = await arbiter.claim(newest + 1, 'primary');
        if (r.result === 'won') {
          epoch = newest + 1;
          break;
        }
        if (r.result === 'lost') continue;
      }
      await new Promise<void>((resolve) => this.env.timers.after(this.pair.claimRetryMs, resolve));
    }
    const vm = this.env.startVm(config.limits) as SimVm;
    this.vm = vm;
    const reply = await vm.boot(config, 'live');
    const serving = new SimServing(this, new Log());
    this.machine = new RoleMachine(roleConfig(this.pair), 'primary', epoch, this.env.clock.monoMs());
    this.stepper = new Stepper(this.machine, (a) => this.perform(a), this.logger);
    this.serving = serving;
    serving.start(reply, epoch);
    this.sim.note(`${this.id}: primary in epoch ${epoch}`);
    this.startTicking();
  }

  /** A backup (fresh: it joins, by snapshot once the log is long) of whichever node serves. */
  startBackup(): void {
    this.machine = new RoleMachine(roleConfig(this.pair), 'backup', 0, this.env.clock.monoMs());
    this.stepper = new Stepper(this.machine, (a) => this.perform(a), this.logger);
    this.stream = new BackupSession({ heartbeatMs: this.pair.heartbeatMs, heartbeatTimeoutMs: this.pair.heartbeatTimeoutMs });
    this.startTicking();
    this.dial();
  }

  private startTicking(): void {
    const period = tickMs(this.pair);
    if (this.faults.tickThroughPauses) {
      // Planted: ticks owned by the world, not the node, so a pause leaves no gap in its tick clock.
      let cancelled = false;
      const arm = (): void =>
        void this.world.at(period, null, () => {
          if (cancelled || this.crashed || this.halted) return;
          arm();
          this.tick();
        });
      arm();
      this.tickTimer = { cancel: () => void (cancelled = true) };
      return;
    }
    this.tickTimer = this.env.timers.every(period, () => this.tick());
  }

  // ---------------------------------------------------------------- the role machine

  step(input: RoleInput): void {
    if (this.crashed || this.halted || !this.stepper) return;
    this.stepper.step(input);
  }

  private tick(): void {
    const nowMs = this.env.clock.monoMs();
    if (this.serving) this.serving.tick(nowMs);
    else if (this.stream) {
      const open = this.conn?.open && this.welcomed ? this.conn : null;
      this.performStream(open, this.stream.tick(nowMs, open !== null, this.paused));
      const heardAt = this.stream.lastHeardAtMs;
      if (heardAt !== null) this.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
    }
    this.step({ type: 'tick', nowMs });
  }

  private perform(action: RoleAction): void {
    if (action.type === 'epoch-won' && this.serving) this.sim.onLive(this, action.epoch, this.serving.log.lastSeq);
    if (this.serving?.perform(action)) return;
    switch (action.type) {
      case 'claim': {
        const epoch = action.epoch;
        void this.env
          .arbiter('shared', this.id)
          .claim(epoch, this.serving ? 'primary' : 'backup')
          .then((r) => {
            const result = this.faults.claimResult ? this.faults.claimResult(r.result) : r.result;
            this.sim.note(`${this.id}: claim of epoch ${epoch}: ${r.result}${result !== r.result ? ` (planted: reported ${result})` : ''}`);
            this.step({ type: 'claim-result', nowMs: this.env.clock.monoMs(), epoch, result, detail: r.detail });
          });
        break;
      }
      case 'check-epoch': {
        const checkId = action.checkId;
        void this.env
          .arbiter('shared', this.id)
          .newestEpoch()
          .then((newest) => {
            const answer = this.faults.epochChecked ? this.faults.epochChecked(newest, this.machine.epoch) : newest;
            this.step({ type: 'epoch-checked', nowMs: this.env.clock.monoMs(), checkId, newestEpoch: answer, detail: String(newest) });
          });
        break;
      }
      case 'halt':
        this.halt(action.reason, action.exitCode);
        break;
      case 'drain':
        this.draining = true;
        this.pump();
        break;
      case 'go-live':
        void this.goLive(action.epoch);
        break;
      case 'drop-peer':
        this.closeConn('dropped by the role machine');
        this.paused = true;
        break;
      case 'append-noop':
      case 'hold-outputs':
      case 'release-all':
      case 'admit':
      case 'release-through':
      case 'epoch-won':
        break;
      default:
        throw new Error(`${this.id} asked to ${action.type}`);
    }
  }

  halt(reason: string, exitCode: number): void {
    if (this.halted || this.crashed) return;
    this.halted = { reason, exitCode };
    this.sim.note(`${this.id}: HALT (${exitCode}): ${reason}`);
    this.sim.onHalt(this, reason, exitCode);
    this.stopEverything();
  }

  /** The host died (SIGKILL, power): nothing more happens on it. */
  crash(): void {
    if (this.crashed) return;
    this.sim.note(`${this.id}: CRASH`);
    this.stopEverything();
    this.crashed = true;
  }

  private stopEverything(): void {
    this.tickTimer?.cancel();
    this.serving?.stop();
    this.closeConn('stopping');
    void this.vm?.terminate();
  }

  // ---------------------------------------------------------------- the backup side

  private welcomed = false;

  private dial(): void {
    if (this.crashed || this.halted || this.paused || this.conn || this.connecting || this.serving) return;
    const target = this.sim.routeFor(this);
    if (!target) {
      this.env.timers.after(RECONNECT_DELAY_MS, () => this.dial());
      return;
    }
    this.connecting = true;
    this.primaryId = target.id;
    this.sim.net.connect(
      this,
      target,
      (end) => target.serving?.accept(end) ?? false,
      (end) => {
        this.connecting = false;
        if (!end) return void this.env.timers.after(RECONNECT_DELAY_MS, () => this.dial());
        if (this.paused || this.serving || this.halted) return end.close('not wanted');
        this.conn = end;
        this.welcomed = false;
        end.onMessage = (m) => this.onMessage(end, m);
        end.onClose = (reason) => this.onClosed(end, reason);
        end.send({ kind: 'frame', bytes: encodeControlFrame({ t: 'auth', nodeId: this.id, resumeFromSeq: this.stream!.receivedSeq }) });
        this.env.timers.after(HANDSHAKE_TIMEOUT_MS, () => {
          if (this.conn === end && !this.welcomed) this.closeConn('handshake timeout');
        });
      },
    );
  }

  private closeConn(reason: string): void {
    const end = this.conn;
    if (!end) return;
    this.conn = null;
    end.close(reason);
    this.onClosed(end, reason);
  }

  private onClosed(end: End, reason: string): void {
    if (this.conn === end) this.conn = null;
    const wasWelcomed = this.welcomed;
    this.welcomed = false;
    if (wasWelcomed && !this.serving && !this.paused) this.step({ type: 'peer-down', nowMs: this.env.clock.monoMs(), reason });
    if (!this.paused && !this.serving) this.env.timers.after(RECONNECT_DELAY_MS, () => this.dial());
  }

  private onMessage(end: End, m: Message): void {
    if (this.conn !== end || this.paused || this.serving) return;
    const nowMs = this.env.clock.monoMs();
    const stream = this.stream!;
    try {
      if (m.kind === 'snapshot') {
        if (!this.config || this.replayedSeq !== 0 || this.queue.length > 0) return;
        this.performStream(end, stream.snapshotReceived(m.seq, nowMs));
        void this.bootFromSnapshot(m.seq, m.pos, m.snapshot);
        return;
      }
      if (m.kind !== 'frame') return;
      const frame = decodeFrame(m.bytes);
      if (frame.type === 'control') {
        if (frame.message.t === 'refuse') return this.closeConn(`refused: ${String(frame.message.reason)}`);
        if (frame.message.t !== 'welcome' || this.welcomed) throw new RefusalError(4007, `protocol error: unexpected ${frame.message.t}`);
        const snap = frame.message.snapshot as { seq: number; pos: number } | undefined;
        this.performStream(end, stream.welcome(Number(frame.message.firstSeq), snap ? { seq: snap.seq, pos: snap.pos, bytes: 1, sha256: '' } : null, nowMs));
        this.welcomed = true;
        // Joining by snapshot: nothing to take over with until it is in (bootFromSnapshot steps peer-up).
        if (!snap || this.vm) this.step({ type: 'peer-up', nowMs });
        if (!this.config) {
          this.config = this.sim.config;
          if (!snap) void this.bootVm(null);
        }
        return;
      }
      if (!this.welcomed) throw new RefusalError(4007, 'protocol error: frame before the welcome');
      if (frame.type === 'entries') this.performStream(end, stream.onEntries(frame.entries, nowMs));
      else if (frame.type === 'heartbeat') this.performStream(end, stream.onHeartbeat(frame.seq, nowMs));
      else throw new RefusalError(4007, `protocol error: unexpected ${frame.type} frame`);
    } catch (error) {
      if (!(error instanceof FrameError) && !(error instanceof RefusalError)) throw error;
      this.sim.note(`${this.id}: closing the channel: ${error.message}`);
      this.closeConn(error.message);
    }
  }

  private performStream(end: End | null, actions: BackupSessionAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send-ack':
          this.sim.receivedBy(this, a.seq);
          end?.send({ kind: 'frame', bytes: encodeAckFrame(a.seq) });
          break;
        case 'send-heartbeat':
          // As hypervisor/node/backup.ts: every heartbeat carries the replay progress.
          end?.send({ kind: 'frame', bytes: encodeHeartbeatFrame(a.seq, this.faults.noReplayProgress ? undefined : { replayedSeq: this.replayedSeq, backlogMs: this.estimatedBacklogMs }) });
          break;
        case 'deliver':
          this.onEntries(a.entries);
          break;
        case 'primary-silent':
          // A silent connection may be half-open: drop it, dial again.
          if (this.conn) this.closeConn('primary silent');
          break;
        case 'primary-heard':
          break;
      }
    }
  }

  /**
   * Boots the replaying VM. A joiner welcomed from seq 1 by one primary and then joined by snapshot
   * (by the same primary after its log grew, or by another) replaces the VM it booted for seq 1: it
   * never replayed anything on it.
   */
  private async bootVm(snapshot: { seq: number; pos: number; snapshot: import('../../hypervisor/vm/vm.js').Snapshot } | null): Promise<boolean> {
    const old = this.vm;
    const vm = this.env.startVm(this.config!.limits) as SimVm;
    this.vm = vm;
    if (old) void old.terminate();
    try {
      await vm.boot(this.config!, 'replay', snapshot?.snapshot);
    } catch (error) {
      if (this.vm !== vm || this.crashed || this.halted) return false; // replaced (a later join) or stopped meanwhile
      throw error;
    }
    if (this.vm !== vm) return false;
    this.pump();
    return true;
  }

  private async bootFromSnapshot(seq: number, pos: number, snapshot: import('../../hypervisor/vm/vm.js').Snapshot): Promise<void> {
    this.replayedSeq = seq;
    this.replayedPos = pos;
    this.sim.note(`${this.id}: joined by snapshot at seq ${seq}`);
    if (!(await this.bootVm({ seq, pos, snapshot }))) return;
    this.step({ type: 'peer-up', nowMs: this.env.clock.monoMs() });
    // A slow join on a busy host: the main thread stalls right after the boot (loading, the first
    // replays), while the primary's frames wait unread in the socket.
    if (this.faults.snapshotStallMs) {
      this.lastStallAtMs = this.world.nowMs + this.faults.snapshotStallMs;
      this.pause(this.faults.snapshotStallMs);
    }
  }

  private onEntries(entries: Entry[]): void {
    if (this.serving || this.halted) return;
    const assembled: Assembled[] = [];
    try {
      for (const entry of entries) this.assembler.push(entry, assembled);
    } catch (error) {
      this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: (error as Error).message });
      return;
    }
    this.queue.push(...assembled);
    this.pump();
  }

  /** Backup replay: as hypervisor/node/backup.ts pump(), one task per VM call. */
  private pump(): void {
    const vm = this.vm;
    if (this.replaying || !vm || !vm.inner || this.halted || this.crashed) return;
    while (this.queue.length > 0 && this.queue[0]!.type === 'control') {
      const { entry } = this.queue.shift() as Extract<Assembled, { type: 'control' }>;
      if (entry.kind === Kind.Epoch) this.step({ type: 'epoch-seen', nowMs: this.env.clock.monoMs(), epoch: decodeEpochMark(entry.payload).epoch });
      this.replayedSeq = entry.seq;
    }
    if (this.queue.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      if (this.draining) {
        this.draining = false;
        this.step({ type: 'drained', nowMs: this.env.clock.monoMs() });
      }
      return;
    }
    const task = (this.queue[0] as Extract<Assembled, { type: 'task' }>).entries;
    this.replaying = true;
    const startedMs = this.env.clock.monoMs();
    vm.replay([task]).then(
      (reply) => {
        this.replaying = false;
        this.replayCost.replayed(reply.results.length, this.env.clock.monoMs() - startedMs);
        this.queue.shift();
        const result = reply.results[0]!;
        if (result.divergence) {
          const d = result.divergence;
          this.sim.onDivergence(this, `seq ${d.seq} pos ${d.pos}: expected ${d.expected}, got ${d.actual}`);
          this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `replay diverged at seq ${d.seq}`, exitCode: EXIT_DIVERGED });
          return;
        }
        this.replayedSeq = task[task.length - 1]!.seq;
        this.replayedPos = result.pos;
        this.pump();
      },
      (error: Error) => {
        this.replaying = false;
        this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `replay failed: ${error.message}` });
      },
    );
  }

  /** What the backup reports as its replay backlog: queued tasks at its measured cost (as hypervisor/node/backup.ts). */
  get estimatedBacklogMs(): number {
    let tasks = 0;
    for (const item of this.queue) if (item.type === 'task') tasks++;
    return this.replayCost.estimateMs(tasks);
  }

  /** The backup's replay backlog (received, not yet replayed), in entries. */
  get backlog(): number {
    return this.receivedSeq - this.replayedSeq;
  }

  /** What a takeover would cost now: the virtual time to replay every task received and not yet replayed. */
  get backlogReplayMs(): number {
    if (this.serving || !this.vm) return 0;
    let tasks = 0;
    for (const item of this.queue) if (item.type === 'task') tasks++;
    return tasks * this.timing.replayTaskMs * (this.faults.replaySlowdown ?? 1);
  }

  private whenReplayed(): Promise<void> {
    if (!this.replaying && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.pump();
    });
  }

  private async goLive(epoch: number): Promise<void> {
    const vm = this.vm;
    if (!vm?.inner) return this.halt('won the epoch but never received the guest', 77);
    this.paused = true;
    this.closeConn('going live');
    await this.whenReplayed();
    const state = await vm.goLive();
    if (this.halted || this.crashed) return;
    const serving = new SimServing(this, new Log(this.replayedSeq, this.replayedPos));
    this.serving = serving;
    serving.start({ results: [], state }, epoch);
    serving.loop.reissue(await vm.pendingFetches());
    this.sim.note(`${this.id}: LIVE in epoch ${epoch} from seq ${this.replayedSeq}`);
    this.sim.onLive(this, epoch, this.replayedSeq, this.primaryId);
  }

  // ---------------------------------------------------------------- faults

  pause(forMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, this.world.nowMs + forMs);
    this.lastStallAtMs = Math.max(this.lastStallAtMs, this.pausedUntilMs);
    this.sim.note(`${this.id}: PAUSE ${forMs} ms`);
  }
}
