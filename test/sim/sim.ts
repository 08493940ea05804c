// One seeded simulation of the whole pair: a primary, its backup, joining backups, clients, the front
// door's routing and the shared directory, on virtual time, with real QuickJS VMs running real guests
// (guest-apps/kv.js, bank.js). The nodes are the production ones (hypervisor/node/primary.ts and
// backup.ts, with their serving side and logging-channel shells) on a simulated Env (sim-node.ts). The
// seed picks the app, the faults and every delay. Invariants are checked after every event; liveness
// once the faults have healed. See test/sim/main.ts for the CLI.

import './sync-zlib.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { DEFAULT_PAIR_SETTINGS, type PairSettings } from '../../hypervisor/node/pair.js';
import type { Serving } from '../../hypervisor/node/serving.js';
import { makeBootConfig } from '../../hypervisor/vm/boot-config.js';
import { loadGuest } from '../../hypervisor/vm/sources.js';
import { STATE_HASH_PAGE_BYTES } from '../../hypervisor/vm/state-hash.js';
import type { BootConfig, Vm } from '../../hypervisor/vm/vm.js';
import { TRACK_MAP_ADDRESS, TRACK_MAP_BYTES } from '../../hypervisor/vm/wasm-dirty.js';
import { FRAME_TAG_BYTES } from '../../logging-channel/frame-mac.js';
import { decodeFrame } from '../../logging-channel/frames.js';
import { InvariantError } from '../../logging-channel/invariant.js';
import { BANK_ACCOUNTS, BankClient, type Client, type HttpRequest, type HttpResponse, KvClient } from './clients.js';
import { SharedDirectory } from './sim-arbiter.js';
import { Network, pairKey, type SimListener } from './sim-net.js';
import { CHANNEL_URL, type NodeFaults, SimHost } from './sim-node.js';
import { type Owner, World } from './world.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type App = 'kv' | 'bank';

export interface SimOptions {
  seed: number;
  /** Virtual ms during which faults are injected (from 1 s on). */
  faultMs?: number;
  /** After the faults heal: the service must be live and protected within this long. */
  livenessMs?: number;
  /** How many faults the seed injects, at most. */
  maxFaults?: number;
  clients?: number;
  /** Faults planted in the first primary (A) or backup (B). */
  plant?: Plant;
  /** Accuracy (DESIGN invariant 7: a stalled node never claims on its own silence) fails the run (default), or only counts. */
  strictAccuracy?: boolean;
  /** A fixed scenario instead of the seed's random faults. */
  scenario?: Scenario;
  verbose?: boolean;
  /**
   * Joins' snapshot bodies deflated as in production (deflateBodies), instead of the simulator's
   * zero-page codec (zero-page-bodies.ts, a sixth of a seed cheaper). Another codec sends another
   * number of frames, so another schedule: the seeds named before the zero-page codec were found with
   * deflate, and replay their runs with it.
   */
  deflateJoins?: boolean;
}

export type Plant = 'early-release' | 'loser-serves' | 'stall-claim' | 'replay-backlog' | 'no-reverify';
/**
 * 'two-primaries': a second primary is started on the same shared directory (no clients: the state
 * one of them served is lost by design); within the lease only one may serve.
 * 'slow-join': the backup is lost, and the fresh one that joins boots for 3 s and then stalls its
 * main thread for up to 3 s; it must not take that for its primary's death.
 */
export type Scenario = 'two-primaries' | 'slow-join';
export const SCENARIOS: readonly Scenario[] = ['two-primaries', 'slow-join'];
export const PLANTS: readonly Plant[] = ['early-release', 'loser-serves', 'stall-claim', 'replay-backlog', 'no-reverify'];

export interface SimResult {
  seed: number;
  app: App;
  ok: boolean;
  violations: string[];
  /** Takeovers on the backup's own stall (DESIGN invariant 7; a violation too unless strictAccuracy is false). */
  accuracy: string[];
  digest: string;
  steps: number;
  simMs: number;
  faults: string[];
  requests: number;
  /** The live node's and its backup's states were compared at the end (and matched, if ok). */
  comparedStates: boolean;
  /** Why no node could serve at the end without losing an acknowledged effect (liveness not judged), or null. */
  unavailable: string | null;
}

const configs = new Map<App, BootConfig>();
function configFor(app: App): BootConfig {
  let c = configs.get(app);
  if (!c) {
    c = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', `${app}.js`)), {});
    configs.set(app, c);
  }
  return c;
}

const silent = pino({ level: 'silent' });
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

export const SIM_PAIR: PairSettings = { ...DEFAULT_PAIR_SETTINGS, maxLogBufferBytes: 8 * 1024 * 1024 };

export class Sim {
  readonly world: World;
  readonly net: Network;
  readonly directory: SharedDirectory;
  readonly nodes: SimHost[] = [];
  readonly clients: Client[] = [];
  readonly config: BootConfig;
  readonly app: App;
  readonly violations: string[] = [];
  readonly accuracy: string[] = [];
  /** Until when the network between nodes had a fault (a partition or chaos), per node pair or for all. */
  private netFaultUntil = new Map<string, number>();
  /** Until when the shared directory was slow or failing for everyone (kept after the heal clears the faults). */
  private dirFaultUntil = -Infinity;
  readonly faultLog: string[] = [];
  private readonly speakers = new Map<number, string>();
  /** Every output released: [epoch, seq, node] (the lineage check). */
  private readonly releases: Array<{ epoch: number; seq: number; node: string }> = [];
  /** Each epoch a node went live in, and the seq its log continued from. */
  private readonly epochBases = new Map<number, { node: string; baseSeq: number }>();
  /** Serving incarnation -> the highest seq a backup of it has received. */
  private readonly received = new Map<string, number>();
  private healthyView: SimHost[] = [];
  /** Each serving side's identity for the checker (one per go-live), and the listener its backups dial. */
  private readonly incarnations = new WeakMap<Serving, string>();
  private readonly listenerIncarnation = new Map<number, string>();
  private nodeCount = 0;
  private requests = 0;
  /** The final state comparison ran (the backup had caught up). */
  comparedStates = false;
  /** Per epoch, the nodes that ever held its log: its speaker, and every node attached to it or replaying it. */
  private readonly epochHolders = new Map<number, Set<SimHost>>();
  private unavailable: string | null = null;

  constructor(readonly options: SimOptions) {
    this.world = new World(options.seed);
    this.world.verbose = options.verbose ?? false;
    this.net = new Network(this.world, {
      route: (from, url) => this.routeFor(from, url),
      onWire: (from, listener, frame) => this.onWire(from, listener, frame),
    });
    this.directory = new SharedDirectory(this.world);
    this.app = this.world.chance(0.5) ? 'kv' : 'bank';
    this.config = configFor(this.app);
  }

  note(line: string): void {
    this.world.note(line);
  }

  violate(what: string): void {
    if (this.violations.length < 10) this.violations.push(`t=${this.world.nowMs.toFixed(1)} ms: ${what}`);
  }

  // ---------------------------------------------------------------- hooks the nodes call

  /** An output leaves `node` (serving side `serving`), for the task whose last entry is `seq`. */
  released(node: SimHost, serving: Serving, seq: number, release: () => void): void {
    const machine = node.machine!;
    const epoch = machine.epoch;
    // The Output Rule: with a backup attached in this epoch, the backup must hold the entry.
    if (machine.hasBackup) {
      const got = this.received.get(this.incarnations.get(serving) ?? '') ?? 0;
      if (got < seq) this.violate(`Output Rule: ${node.id} released the output of seq ${seq} in epoch ${epoch}, but its backup has received only through seq ${got}`);
    }
    // One speaker per epoch.
    const speaker = this.speakers.get(epoch);
    if (speaker === undefined) this.speakers.set(epoch, node.id);
    else if (speaker !== node.id) this.violate(`two speakers in epoch ${epoch}: ${speaker} and ${node.id}`);
    // The lineage: a newer epoch that started from an earlier seq does not hold this output's effect.
    for (const [e, base] of this.epochBases) {
      if (e > epoch && base.baseSeq < seq && base.node !== node.id)
        this.violate(`acknowledged effect lost: ${node.id} released seq ${seq} in epoch ${epoch}, but epoch ${e} (${base.node}) continues from seq ${base.baseSeq}`);
    }
    if (this.releases.length < 100_000) this.releases.push({ epoch, seq, node: node.id });
    release();
  }

  /**
   * A frame on the wire from `from` to the node that listens on `listener`: an ACK is the backup's
   * word that it holds every entry through its seq (it acknowledges on receipt, before replay).
   */
  private onWire(from: Owner, listener: SimListener, sealed: Uint8Array): void {
    if (from === listener.owner || sealed.byteLength <= FRAME_TAG_BYTES) return;
    const incarnation = this.listenerIncarnation.get(listener.id);
    if (incarnation === undefined) return;
    let frame;
    try {
      frame = decodeFrame(sealed.subarray(0, sealed.byteLength - FRAME_TAG_BYTES));
    } catch {
      return; // not a sealed frame (the auth), or not one that decodes: no ack
    }
    if (frame.type === 'ack') this.received.set(incarnation, Math.max(this.received.get(incarnation) ?? 0, frame.seq));
  }

  onHalt(node: SimHost, reason: string, exitCode: number): void {
    if (exitCode === 70) this.violate(`${node.id} stopped on a broken invariant or a dead VM: ${reason}`);
    if (exitCode === 76) this.violate(`divergence on ${node.id}: ${reason}`);
  }

  /** `node` goes live in `epoch` with a log that continues from `baseSeq`. */
  onLive(node: SimHost, epoch: number, baseSeq: number, tookOverFrom: string | null = null): void {
    const other = this.epochBases.get(epoch);
    if (other && other.node !== node.id) this.violate(`two nodes live in epoch ${epoch}: ${other.node} and ${node.id}`);
    this.epochBases.set(epoch, { node: node.id, baseSeq });
    // A node speaks in an epoch only once it activated it (hypervisor/node/arbiter.ts, Activation).
    const seal = this.directory.seals.get(epoch);
    if (seal?.kind !== 'activated' || seal.nodeId !== node.id)
      this.violate(`${node.id} is live in epoch ${epoch}, which it did not activate (seal: ${seal ? `${seal.kind} by ${seal.nodeId}` : 'none'})`);
    if (tookOverFrom !== null) this.judgeAccuracy(node, tookOverFrom, epoch);
    for (const r of this.releases) {
      if (r.epoch < epoch && r.seq > baseSeq && r.node !== node.id) {
        this.violate(`acknowledged effect lost: ${r.node} released seq ${r.seq} in epoch ${r.epoch}, but ${node.id} goes live in epoch ${epoch} from seq ${baseSeq}`);
        break;
      }
    }
  }

  /**
   * A backup took over from `fromId`: was that primary really gone? If it was alive, not stalled and
   * reachable over the channel, and the backup itself had just stalled, the takeover was on the
   * backup's own silence (DESIGN invariant 7). Why a correct node never trips this, and the stall rule
   * it holds the node to: role.ts, forgetSilenceBeforeStall.
   */
  private judgeAccuracy(node: SimHost, fromId: string, epoch: number): void {
    const old = this.nodes.find((n) => n.id === fromId);
    if (!old || old.crashed || old.halted) return;
    // Judged at the taker's decision, its first claim of this epoch: once sent, a claim cannot be
    // taken back (the shared directory decides it when it lands), so a stall while it is in flight
    // (a slow directory) did not make it. A stall counts only if it came before the claim.
    const decision = node.claimedAt.get(epoch) ?? { atMs: this.world.nowMs, lastStallAtMs: node.lastStallAtMs };
    const windowMs = 3 * SIM_PAIR.heartbeatTimeoutMs;
    const since = decision.atMs - windowMs;
    if (old.lastStallAtMs >= since) return;
    if ((this.netFaultUntil.get(pairKey(node.id, old.id)) ?? -Infinity) >= since || (this.netFaultUntil.get('*') ?? -Infinity) >= since) return;
    // A directory that was slow or failing may have kept the old primary from fencing first (its claim
    // against the taker did not complete); the takeover is then a race, not a stall mistaken for a death.
    if (Math.max(this.dirFaultUntil, this.directory.faults.slow?.untilMs ?? -Infinity) >= since) return;
    if (decision.lastStallAtMs < since) return;
    const what = `accuracy: ${node.id} took over from ${old.id}, which was alive and reachable, on the silence of its own stall (it stalled until t=${decision.lastStallAtMs.toFixed(0)}, claimed at t=${decision.atMs.toFixed(0)})`;
    this.accuracy.push(`t=${this.world.nowMs.toFixed(1)} ms: ${what}`);
    if (this.options.strictAccuracy ?? true) this.violate(what);
  }

  /**
   * Where a backup dials: the service address (CHANNEL_URL) reaches the node that serves (the operator's
   * --primary, found by asking health), on its channel's listener; any other address names one listener
   * (ws://sim:PORT, as a serving node reports and records it), refused once that is closed.
   */
  routeFor(from: Owner, url = CHANNEL_URL): SimListener | null {
    if (url !== CHANNEL_URL) {
      const port = Number(/:(\d+)$/.exec(url)?.[1]);
      const listener = [...this.net.open].find((l) => 7000 + l.id === port) ?? null;
      if (listener !== null && from instanceof SimHost) from.primaryId = listener.owner.id;
      return listener;
    }
    // Of the nodes that say they serve, the one in the newest epoch (a stopped old primary still says so).
    let best: { node: SimHost; listener: SimListener } | null = null;
    for (const n of this.nodes) {
      if (n === from || n.liveLoop === null) continue;
      let newest: SimListener | null = null;
      for (const l of this.net.open) if (l.owner === n && (newest === null || l.id > newest.id)) newest = l;
      if (newest === null) continue;
      if (best === null || n.machine!.epoch > best.node.machine!.epoch) best = { node: n, listener: newest };
    }
    if (best === null) return null;
    if (from instanceof SimHost) from.primaryId = best.node.id;
    return best.listener;
  }

  // ---------------------------------------------------------------- nodes

  spawn(faults: NodeFaults = {}): SimHost {
    const id = String.fromCharCode(65 + this.nodeCount++);
    const node = new SimHost(id, this, this.world, SIM_PAIR, this.options.verbose ? this.nodeLogger(id) : silent, { taskMs: 0.5, replayTaskMs: 0.5 }, faults);
    this.nodes.push(node);
    return node;
  }

  /** --verbose: the node's own log lines, on virtual time (printed, not hashed: the digest stays the seed's). */
  private nodeLogger(id: string): pino.Logger {
    const world = this.world;
    return pino(
      { level: 'info' },
      {
        write(line: string): void {
          const { msg, level } = JSON.parse(line) as { msg: string; level: number };
          console.log(`${world.nowMs.toFixed(3)} ${id} ${level >= 50 ? 'ERROR' : level >= 40 ? 'WARN' : 'info'}: ${msg}`);
        },
      },
    );
  }

  /**
   * Watches each node's serving side from the event it appears in (before any output can leave: a
   * task takes virtual time): every release passes the checker (and, for the planted bug, no gate at
   * all), its listener's acks count for it, and each new epoch it speaks in is a go-live.
   */
  private watchServing(n: SimHost): void {
    const serving = n.serving;
    if (serving === null || n.crashed) return;
    if (!n.wrapped.has(serving)) {
      n.wrapped.add(serving);
      const incarnation = `${n.id}#${this.world.nowMs.toFixed(3)}`;
      this.incarnations.set(serving, incarnation);
      const outputs = serving.outputs;
      const gate = outputs.hold.bind(outputs);
      const releaseAtOnce = n.faults.releaseAtOnce === true;
      outputs.hold = (seq, release) => {
        const checked = (): void => this.released(n, serving, seq, release);
        if (releaseAtOnce) checked();
        else gate(seq, checked);
      };
    }
    const incarnation = this.incarnations.get(serving)!;
    for (const l of this.net.open) if (l.owner === n && !this.listenerIncarnation.has(l.id)) this.listenerIncarnation.set(l.id, incarnation);
    // Each epoch starts at its first mark in the log (epoch-history.ts): the log continues from the seq before it.
    const history = serving.retained.history.list;
    const last = history[history.length - 1];
    if (last === undefined || (n.seenEpoch !== null && last.epoch <= n.seenEpoch)) return;
    const first = n.seenEpoch === null;
    n.seenEpoch = last.epoch;
    // A fresh primary's boot epoch is not a go-live; a backup's first epoch is its takeover.
    if (first && !n.isBackupNode) return;
    if (first) this.note(`${n.id}: LIVE in epoch ${last.epoch} from seq ${last.fromSeq - 1}`);
    // It took over from the node that spoke in the epoch whose log it followed (the last one dialled
    // may be another: a stale node that refused it).
    const followed = history[history.length - 2];
    const from = followed === undefined ? n.primaryId : (this.speakers.get(followed.epoch) ?? this.epochBases.get(followed.epoch)?.node ?? n.primaryId);
    this.onLive(n, last.epoch, last.fromSeq - 1, first ? from : null);
  }

  // ---------------------------------------------------------------- the front door

  private refreshHealth(): void {
    this.healthyView = this.nodes.filter((n) => n.healthy);
    this.world.at(100, null, () => this.refreshHealth());
  }

  private readonly send = (client: Client, request: HttpRequest, answer: (r: HttpResponse | null) => void): void => {
    this.requests++;
    // A load balancer with a health view up to 100 ms old: it may still send to a node that just stopped.
    const view = this.healthyView.filter((n) => !n.halted);
    if (view.length === 0) return void this.world.at(1, client, () => answer({ status: 503, body: 'no live node', node: '-', epoch: 0 }));
    const node = view[0]!;
    this.world.at(this.net.delayMs(), node, () => {
      const loop = node.liveLoop;
      if (!loop) return void this.world.at(this.net.delayMs(), client, () => answer({ status: 503, body: `not serving (${node.role})`, node: node.id, epoch: node.machine?.epoch ?? 0 }));
      const headers: Array<[string, string]> = request.key ? [['idempotency-key', request.key]] : [];
      if (request.body) headers.push(['content-type', 'application/json']);
      loop.submitRequest(request.method, `http://sim${request.path}`, headers, utf8Encoder.encode(request.body)).then(
        (response) => {
          const epoch = node.machine?.epoch ?? 0;
          const body = utf8Decoder.decode(response.body);
          this.world.at(this.net.delayMs(), client, () => answer({ status: response.status, body, node: node.id, epoch }));
        },
        () => this.world.at(this.net.delayMs(), client, () => answer({ status: 503, body: 'queue full', node: node.id, epoch: 0 })),
      );
    });
  };

  // ---------------------------------------------------------------- faults

  private planFaults(startMs: number, endMs: number): void {
    const w = this.world;
    const count = w.int(1, this.options.maxFaults ?? 4);
    for (let i = 0; i < count; i++) {
      const at = w.int(startMs, endMs);
      const kind = w.pick(['crash', 'crash', 'pause', 'pause', 'clock', 'chaos', 'partition', 'arbiter', 'disk-fail', 'disk-slow'] as const);
      w.at(at - w.nowMs, null, () => this.inject(kind, endMs));
    }
  }

  private inject(kind: string, healAtMs: number): void {
    const w = this.world;
    const alive = this.nodes.filter((n) => n.running);
    if (alive.length === 0) return;
    const serving = alive.find((n) => n.serving && n.machine!.speaks);
    const untilMs = (lo: number, hi: number): number => Math.min(healAtMs, w.nowMs + w.int(lo, hi));
    let what = '';
    switch (kind) {
      case 'crash': {
        // Never the last copy: a primary only while its backup is attached, a backup any time.
        // Never the last copy of the state: some other node must hold a VM (a serving node, or a
        // backup that has booted one), and a serving victim's own backup must be one of them.
        const victim = w.pick(alive);
        const holds = (n: SimHost): boolean => n !== victim && n.running && n.vm?.inner != null;
        if (!this.nodes.some(holds)) return;
        if (victim.serving) {
          const backup = this.nodes.find((n) => n.id === victim.serving!.attachedNodeId);
          if (!(victim.serving.attached && victim.machine!.hasBackup && backup && holds(backup))) return;
        }
        victim.crash();
        what = `crash ${victim.id}`;
        this.spawnJoinerLater();
        break;
      }
      case 'pause': {
        const victim = w.pick(alive);
        const ms = w.int(50, 1_500);
        victim.pause(ms);
        what = `pause ${victim.id} ${ms} ms`;
        break;
      }
      case 'clock': {
        const victim = w.pick(alive);
        const ms = w.int(100, 2_000);
        victim.clockOffsetMs += ms;
        victim.lastStallAtMs = w.nowMs;
        victim.wallOffsetMs += w.int(-5_000, 5_000);
        what = `clock jump ${victim.id} +${ms} ms`;
        break;
      }
      case 'chaos': {
        const until = untilMs(200, 1_500);
        this.net.faults.chaos = { untilMs: until, loss: 0.05, dup: 0.05, reorder: 0.05, maxDelayMs: 30 };
        this.netFaultUntil.set('*', until);
        what = `network chaos until ${until}`;
        break;
      }
      case 'partition': {
        if (!serving) return;
        const other = alive.find((n) => n !== serving);
        if (!other) return;
        const until = untilMs(200, 2_000);
        this.net.faults.partitions.set(pairKey(serving.id, other.id), until);
        this.netFaultUntil.set(pairKey(serving.id, other.id), until);
        what = `partition ${serving.id}|${other.id} until ${until}`;
        break;
      }
      case 'arbiter': {
        const victim = w.pick(alive);
        const until = untilMs(200, 3_000);
        this.directory.faults.partitionedUntil.set(victim.id, until);
        what = `shared directory unreachable from ${victim.id} until ${until}`;
        break;
      }
      case 'disk-fail': {
        const until = untilMs(200, 2_000);
        const code = w.pick(['EIO', 'ENOSPC'] as const);
        this.directory.faults.failing = { untilMs: until, code };
        this.dirFaultUntil = Math.max(this.dirFaultUntil, until);
        what = `shared directory fails with ${code} until ${until}`;
        break;
      }
      case 'disk-slow': {
        const until = untilMs(500, 3_000);
        const ms = w.int(50, 2_500);
        this.directory.faults.slow = { untilMs: until, ms };
        this.dirFaultUntil = Math.max(this.dirFaultUntil, until);
        what = `shared directory takes ${ms} ms per operation until ${until}`;
        break;
      }
    }
    this.faultLog.push(`${w.nowMs.toFixed(0)}: ${what}`);
    this.note(`FAULT ${what}`);
  }

  /** Re-protection: a fresh node joins whichever node serves, a little after a node was lost. */
  private spawnJoinerLater(): void {
    if (this.nodeCount >= 6) return;
    this.world.at(this.world.int(200, 1_500), null, () => {
      // One joiner at a time, as an operator starts one: a second is refused while the first is attached (4005, final for it).
      if (this.nodeCount >= 6 || this.nodes.some((n) => !n.crashed && !n.halted && n.machine?.role !== 'halted' && !n.serving)) return;
      const node = this.spawn();
      this.note(`${node.id}: starts as a joining backup`);
      node.startBackup();
    });
  }

  /** Spawn a joiner whenever the serving node runs alone and no spare is on its way. */
  private watchProtection(): void {
    const w = this.world;
    w.at(500, null, () => {
      // A live node alone, or a primary whose backup is gone (a second primary's survivor).
      const live = this.nodes.find((n) => n.healthy && !n.machine!.hasBackup);
      const spare = this.nodes.some((n) => !n.crashed && !n.halted && n.machine?.role !== 'halted' && !n.serving);
      if (live && !spare) {
        if (this.nodeCount < 6) {
          const node = this.spawn();
          this.note(`${node.id}: starts as a joining backup (the live node runs alone)`);
          node.startBackup();
        }
      }
      this.watchProtection();
    });
  }

  // ---------------------------------------------------------------- the run

  private check(): void {
    for (const n of this.nodes) this.watchServing(n);
    for (const n of this.nodes) {
      if (!n.running) continue;
      const epoch = n.machine!.epoch;
      if (n.serving !== null) this.holds(n, epoch);
      else if (n.receivedSeq > 0) this.holds(n, epoch);
      const attached = this.nodes.find((b) => b.id === n.serving?.attachedNodeId);
      if (attached !== undefined) this.holds(attached, epoch);
    }
    // Bounded lag (DESIGN invariant 5): a takeover never has more to replay than the timeout plus its budget.
    for (const n of this.nodes) {
      if (!n.running) continue;
      const ms = n.backlogReplayMs;
      if (ms > SIM_PAIR.heartbeatTimeoutMs + SIM_PAIR.maxLagMs && !this.violations.some((v) => v.includes('bounded lag'))) {
        this.violate(`bounded lag: ${n.id}'s replay backlog would take ${Math.round(ms)} ms to replay (bound ${SIM_PAIR.heartbeatTimeoutMs + SIM_PAIR.maxLagMs} ms)`);
      }
    }
    for (const c of this.clients) if (c.violation && !this.violations.some((v) => v.includes(c.violation!))) this.violate(c.violation);
    this.checkLease();
  }

  /** Since when each healthy node has served while a newer epoch existed on the shared directory. */
  private readonly supersededSince = new Map<SimHost, number>();

  /**
   * The lease (DESIGN, the arbiter): a node that serves while a newer epoch exists stops within
   * --lease-ms, plus a heartbeat timeout for the check to come and go. Not judged while the
   * directory was slow, failing or cut off from it, or while the node itself was stalled.
   */
  private checkLease(): void {
    const w = this.world;
    const newest = this.directory.newest;
    for (const n of this.nodes) {
      if (!n.healthy || n.machine!.epoch >= newest) {
        this.supersededSince.delete(n);
        continue;
      }
      const since = this.supersededSince.get(n) ?? w.nowMs;
      this.supersededSince.set(n, since);
      const boundMs = SIM_PAIR.leaseMs + SIM_PAIR.heartbeatTimeoutMs;
      if (w.nowMs - since <= boundMs) continue;
      const f = this.directory.faults;
      const troubled = (f.slow?.untilMs ?? -Infinity) >= since - boundMs || (f.failing?.untilMs ?? -Infinity) >= since - boundMs || (f.partitionedUntil.get(n.id) ?? -Infinity) >= since - boundMs;
      if (troubled || n.lastStallAtMs >= since - boundMs) continue;
      if (!this.violations.some((v) => v.includes('lease:'))) {
        this.violate(`lease: ${n.id} still serves in epoch ${n.machine!.epoch} ${Math.round(w.nowMs - since)} ms after epoch ${newest} was claimed (--lease-ms ${SIM_PAIR.leaseMs})`);
      }
    }
  }

  async run(): Promise<SimResult> {
    const w = this.world;
    const o = this.options;
    const plant = o.plant;
    const faultStart = 1_000;
    const faultEnd = faultStart + (o.faultMs ?? 4_000);
    const liveness = o.livenessMs ?? 5_000;
    const primary = this.spawn(plantFaults(plant, 'primary', this));
    const backup = this.spawn(plantFaults(plant, 'backup', this));
    primary.startPrimary(this.config);
    w.at(5, null, () => backup.startBackup());
    this.refreshHealth();
    this.watchProtection();
    const clients = o.clients ?? (o.scenario === 'two-primaries' ? 0 : 3);
    for (let i = 0; i < clients; i++) {
      const id = `c${i}`;
      const client = this.app === 'kv' ? new KvClient(id, w, this.send, [20, 120]) : new BankClient(id, w, this.send, [20, 120], i === 0, () => (this.clients[0] as BankClient).opened);
      this.clients.push(client);
      client.start(300 + i * 7);
    }
    if (o.scenario) runScenario(o.scenario, this, faultStart);
    else if (plant) plantScenario(plant, this, faultStart);
    else this.planFaults(faultStart, faultEnd);
    const checked = (): void => this.check();
    try {
      await w.runUntil(faultEnd, checked);
      this.heal();
      this.note('HEALED');
      await w.runUntil(faultEnd + liveness, checked);
      this.checkLiveness(faultEnd);
      await this.finalReads(faultEnd + liveness);
    } catch (error) {
      if (error instanceof InvariantError) this.violate(`production invariant: ${error.message}`);
      else this.violate(`the simulation crashed: ${(error as Error).stack ?? String(error)}`);
    }
    for (const c of this.clients) c.stopped = true;
    for (const n of this.nodes) n.crash();
    this.check();
    return {
      seed: o.seed,
      app: this.app,
      ok: this.violations.length === 0,
      violations: this.violations,
      accuracy: this.accuracy,
      digest: w.digest(),
      steps: w.steps,
      simMs: w.nowMs,
      faults: this.faultLog,
      requests: this.requests,
      comparedStates: this.comparedStates,
      unavailable: this.unavailable,
    };
  }

  private heal(): void {
    this.net.faults.partitions.clear();
    this.net.faults.chaos = null;
    this.directory.faults.partitionedUntil.clear();
    this.directory.faults.failing = null;
    this.directory.faults.slow = null;
  }

  /** Once healed: one node serves and is healthy, clients got answers since, and a backup protects it. */
  private checkLiveness(healedAtMs: number): void {
    const live = this.nodes.filter((n) => n.healthy);
    const gone = live.length === 0 ? this.acknowledgedStateGone() : null;
    if (gone !== null) {
      this.unavailable = gone;
      this.note(`liveness not judged: ${gone}`);
      return;
    }
    if (live.length !== 1) {
      this.violate(`liveness: ${live.length} healthy nodes ${this.options.livenessMs ?? 5_000} ms after the faults healed (${this.nodes.map((n) => `${n.id}:${n.role}`).join(' ')})`);
      return;
    }
    const stuck = this.clients.filter((c) => c.lastAckAtMs < healedAtMs + 1);
    if (stuck.length > 0) this.violate(`liveness: ${stuck.map((c) => c.id).join(', ')} got no answer after the faults healed`);
    const node = live[0]!;
    const backup = this.nodes.find((n) => n.id === node.serving?.attachedNodeId);
    if (!node.machine!.hasBackup || !backup?.running) {
      this.violate(`liveness: ${node.id} is not protected ${this.options.livenessMs ?? 5_000} ms after the faults healed (${this.nodes.map((n) => `${n.id}:${n.role}`).join(' ')})`);
    } else if (backup.backlog > 2_000) {
      this.violate(`bounded lag: ${backup.id}'s replay backlog is ${backup.backlog} entries (a takeover would replay them all)`);
    }
  }

  /**
   * A legitimately unavailable end: every node that ever held the log of the newest epoch served crashed
   * (the simulator restarts no crashed node, and restores none). That epoch's speaker may have released
   * outputs that only those logs hold, and no survivor can know it did not, so none may serve (one
   * that did could lose an acknowledged effect). A node that held the log (served in the epoch, or was
   * attached to its speaker, even unknowingly) and let it go, halted or rejoined fresh, keeps the
   * liveness check: that is the production code's doing, not the schedule's.
   */
  private acknowledgedStateGone(): string | null {
    const newest = Math.max(0, ...this.epochHolders.keys());
    const holders = [...(this.epochHolders.get(newest) ?? [])];
    if (holders.length === 0 || holders.some((n) => !n.crashed)) return null;
    return `every node that held the log of epoch ${newest} (the newest served) crashed: ${holders.map((n) => n.id).join(', ')}; none restarts`;
  }

  private holds(n: SimHost, epoch: number): void {
    if (epoch <= 0) return;
    const set = this.epochHolders.get(epoch) ?? new Set<SimHost>();
    set.add(n);
    this.epochHolders.set(epoch, set);
  }

  /** Reads back everything the clients were told, through the front door. */
  private async finalReads(fromMs: number): Promise<void> {
    for (const c of this.clients) c.stopped = true;
    const w = this.world;
    const reader = new FinalReader(w, this.send);
    if (this.app === 'kv') {
      for (const c of this.clients as KvClient[]) {
        // What may be read is fixed when the read is sent: a PUT answered after it may or may not precede it.
        for (const key of c.lastAcked.keys()) {
          const acceptable = c.acceptable(key);
          reader.get(`/kv/${key}`, (r) => c.checkRead(key, r, acceptable));
        }
      }
    } else {
      const acknowledged = (this.clients as BankClient[]).map((c) => c.acknowledged());
      reader.get('/transfers?limit=1000', (r) => {
        const { transfers, count } = JSON.parse(r.body) as { transfers: Array<{ id: string }>; count: number };
        (this.clients as BankClient[]).forEach((c, i) => c.checkFinal(transfers, count, acknowledged[i]));
      });
      reader.get('/audit', (r) => {
        const audit = JSON.parse(r.body) as { ok: boolean };
        if (!audit.ok) this.violate('the final ledger does not balance');
      });
      void BANK_ACCOUNTS;
    }
    await w.runUntil(fromMs + 3_000, () => this.check());
    if (reader.pending > 0 && this.unavailable === null) this.violate(`liveness: ${reader.pending} final reads got no answer within 3 s`);
    this.compareStates();
  }

  /**
   * No divergence: once the live node is idle and its backup has replayed through the live node's
   * last task, both VMs hold the same state: memory and device tables, the two inputs of the state
   * hash (state-hash.ts), compared byte for byte. Hashing them would rehash every page of both VMs
   * here (nothing refreshes the sim's page trees between tasks), about an eighth of a seed's time; the
   * hash itself is checked against a full rehash in memory-tracker.test.ts.
   */
  private compareStates(): void {
    const live = this.nodes.find((n) => n.healthy);
    const backup = live && this.nodes.find((n) => n.id === live.serving?.attachedNodeId);
    const a = live?.vm?.inner;
    const b = backup?.vm?.inner;
    if (!live || !backup || !a || !b || !backup.running) return;
    if (live.serving!.loop.queued > 0 || backup.replayedSeq < live.serving!.loop.lastTaskSeq || backup.backlog > 0) return;
    if (a.taskCount !== b.taskCount) return; // the backup is at another task boundary
    this.comparedStates = true;
    const difference = stateDifference(a, b);
    if (difference) this.violate(`divergence: ${live.id} and its backup ${backup.id} hold different states after ${a.taskCount} tasks (${difference})`);
  }
}

/**
 * Where two VMs' states differ (the first differing 4 KiB page, or the device tables), or null. Their
 * live memories are compared in place (a snapshot would copy each whole, 16 MiB), all but the
 * engine's write-tracking map, which is not state (Vm.snapshot leaves it out too).
 */
function stateDifference(a: Vm, b: Vm): string | null {
  const va = a.memoryView();
  const vb = b.memoryView();
  if (va.byteLength !== vb.byteLength) return `memory ${va.byteLength} vs ${vb.byteLength} bytes`;
  const ma = Buffer.from(va.buffer, va.byteOffset, va.byteLength);
  const mb = Buffer.from(vb.buffer, vb.byteOffset, vb.byteLength);
  const mapEnd = Math.min(ma.byteLength, TRACK_MAP_ADDRESS + TRACK_MAP_BYTES);
  for (const [from, to] of [
    [0, Math.min(ma.byteLength, TRACK_MAP_ADDRESS)],
    [mapEnd, ma.byteLength],
  ] as const) {
    if (from >= to || ma.subarray(from, to).equals(mb.subarray(from, to))) continue;
    for (let at = from - (from % STATE_HASH_PAGE_BYTES); at < to; at += STATE_HASH_PAGE_BYTES) {
      const lo = Math.max(at, from);
      const hi = Math.min(at + STATE_HASH_PAGE_BYTES, to);
      if (!ma.subarray(lo, hi).equals(mb.subarray(lo, hi))) return `memory page ${at / STATE_HASH_PAGE_BYTES} differs`;
    }
  }
  const da = JSON.stringify(a.devices());
  const db = JSON.stringify(b.devices());
  return da === db ? null : `device tables differ: ${da.slice(0, 200)} vs ${db.slice(0, 200)}`;
}

/** Sends final reads, retrying until answered. */
class FinalReader implements Owner {
  readonly id = 'reader';
  crashed = false;
  pausedUntilMs = 0;
  pending = 0;

  constructor(
    private readonly world: World,
    private readonly send: (client: Client, request: HttpRequest, answer: (r: HttpResponse | null) => void) => void,
  ) {}

  get(path: string, check: (r: HttpResponse) => void): void {
    this.pending++;
    const attempt = (): void => {
      let done = false;
      this.world.at(1_000, this, () => {
        if (!done) {
          done = true;
          attempt();
        }
      });
      this.send(this as unknown as Client, { method: 'GET', path, body: '', key: null }, (r) => {
        if (done) return;
        if (!r || r.status === 503) return;
        done = true;
        this.pending--;
        check(r);
      });
    };
    attempt();
  }
}

/** The planted bugs: faults inside one simulated node (never a production switch). */
function plantFaults(plant: Plant | undefined, role: 'primary' | 'backup', sim: Sim): NodeFaults {
  switch (plant) {
    case 'early-release':
      // The Output Rule's gate lets every output out at once.
      return role === 'primary' ? { releaseAtOnce: true } : {};
    case 'loser-serves':
      // A lost claim is taken for a win: the loser goes on serving in the epoch it lost.
      return { claimResult: (r) => (r === 'lost' ? 'won' : r) };
    case 'replay-backlog':
      // The backup replays 100x slower than the primary runs, and its heartbeats do not say so.
      return role === 'backup' ? { replaySlowdown: 100, noReplayProgress: true } : {};
    case 'no-reverify':
      // Every epoch check (after a pause, and the lease's) answers "still ours".
      return role === 'primary' ? { newestEpoch: (newest, own) => own ?? newest } : {};
    case 'stall-claim':
      // The backup's ticks run through its pauses: it never sees its own stall.
      return role === 'backup' ? { tickThroughPauses: true } : {};
    case undefined:
      void sim;
      return {};
  }
}

/** The fault schedule that exposes each planted bug (plus the seed's usual faults). */
function plantScenario(plant: Plant, sim: Sim, faultStart: number): void {
  const w = sim.world;
  const at = faultStart + w.int(0, 2_000);
  const a = (): SimHost => sim.nodes[0]!;
  const b = (): SimHost => sim.nodes[1]!;
  switch (plant) {
    case 'early-release':
    case 'replay-backlog':
      // A crash of the primary: what it released early, or what the backup must replay, shows.
      w.at(at, null, () => {
        if (w.chance(0.5)) a().crash();
        sim.note('FAULT (plant scenario) crash A');
      });
      break;
    case 'loser-serves':
      // Both sides claim: a partition between primary and backup.
      w.at(at, null, () => {
        sim.net.faults.partitions.set(pairKey('A', 'B'), w.nowMs + w.int(400, 2_000));
        sim.note('FAULT (plant scenario) partition A|B');
      });
      break;
    case 'stall-claim':
      // The backup stalls past the heartbeat timeout while the primary is fine but slow to reach the
      // shared directory (so it does not fence the backup first): a backup blind to its own stall
      // wakes to a silence that is its own, and claims on it.
      w.at(at, null, () => {
        const ms = w.int(100, 1_500);
        b().pause(ms);
        sim.directory.faults.partitionedUntil.set('A', w.nowMs + ms + w.int(0, 1_000));
        sim.note(`FAULT (plant scenario) pause B ${ms} ms, A cannot reach the shared directory meanwhile`);
      });
      break;
    case 'no-reverify':
      // Either the primary stalls past the timeout and its backup takes over meanwhile, or a second
      // primary starts on the same shared directory (only the lease stops the first).
      if (w.chance(0.5)) w.at(at, null, () => a().pause(w.int(100, 1_500)));
      else secondPrimary(sim, at);
      break;
  }
}

/** A second primary started on the same shared directory at `atMs` (operator error; the lease's case). */
function secondPrimary(sim: Sim, atMs: number): void {
  sim.world.at(atMs, null, () => {
    const node = sim.spawn();
    sim.note(`FAULT (scenario) ${node.id}: a second primary starts on the same shared directory`);
    node.startPrimary(sim.config);
  });
}

function runScenario(scenario: Scenario, sim: Sim, faultStart: number): void {
  const w = sim.world;
  switch (scenario) {
    case 'two-primaries':
      secondPrimary(sim, w.int(0, faultStart + 2_000));
      break;
    case 'slow-join':
      // The backup is lost; the joiner that replaces it boots for 3 s, then stalls up to 3 s.
      w.at(faultStart + w.int(0, 1_000), null, () => {
        const b = sim.nodes[1]!;
        if (b.crashed || b.halted) return;
        b.crash();
        sim.note('FAULT (scenario) crash B');
        const stallMs = w.int(500, 3_000);
        w.at(w.int(100, 500), null, () => {
          const node = sim.spawn({ bootMs: 3_000, snapshotStallMs: stallMs });
          sim.note(`FAULT (scenario) ${node.id}: joins, boots for 3000 ms, then stalls ${stallMs} ms`);
          node.startBackup();
        });
      });
      break;
  }
}
