// `ftjs drill --netns` (Linux, root): the drill's pair, its clients and its etcd in separate network
// namespaces joined by veth pairs on a bridge (cli/netns/topology.ts), with faults made by the kernel:
// iptables drops for partitions (of the logging channel alone, one way or both; of one node from the
// arbiter alone; of the clients from the primary) and random loss, and latency/jitter on the channel by
// tc netem, or, on kernels without netem, by a delaying relay in the wire namespace (said so in the
// output). It checks the same invariants and reports the same figures as `ftjs drill`.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { type LogLine, NodeProcess, timeOf } from './child.js';
import type { RoundResult, WorkloadOptions } from './drill.js';
import { chooseService } from './drill-service.js';
import {
  caller,
  clientGapMs,
  type DrillTiming,
  endOfRoundChecks,
  evidenceOf,
  fencedAsExpected,
  findLiveNode,
  goLiveViolation,
  lateReleases,
  REJOINED,
  takeoverSeqOf,
  timingArgs,
  within,
} from './drill-workload.js';
import { buildTopology, ensureTool, flushRules, iptables, NetnsUnavailable, netemAvailable, netemDelay, netnsUnavailableReason, type Topology } from './netns/topology.js';
import { Router } from './router.js';

/** What a losing backup logs when it joins the winner again instead of exiting (cli/pair.ts). */

/** Fault kinds of a netns drill. */
export const NETNS_FAULTS = ['kill-primary', 'pause-primary', 'partition', 'partition-oneway', 'arbiter-primary', 'clients', 'loss'] as const;
export type NetnsFault = (typeof NETNS_FAULTS)[number];

/** Faults after which a node must run alone in a new epoch (the others must not cost a failover). */
const FAILOVER: ReadonlySet<NetnsFault> = new Set(['kill-primary', 'pause-primary', 'partition', 'partition-oneway']);
/** How long a fault that heals (arbiter, clients, loss) lasts: past the etcd lease's TTL. */
export const DEFAULT_FAULT_HOLD_MS = 4_000;
export const DEFAULT_LOSS_PERCENT = 10;

const NODE_PORT = 8080;
const CHANNEL_PORT = 9090;
const RELAY_PORT = 9091;
const ETCD_PORT = 2379;
const DELAY_RELAY = fileURLToPath(new URL('./netns/delay-relay.js', import.meta.url));

export interface NetnsOptions {
  /** Round trip added between primary and backup on the logging channel, ms. */
  latencyMs: number;
  jitterMs: number;
  lossPercent: number;
  holdMs: number;
}

/** The namespaces, etcd and the latency mechanism of one drill (kept across its rounds). */
export class NetnsLab {
  private etcd: ChildProcess | null = null;
  private etcdDir: string | null = null;
  private relay: ChildProcess | null = null;
  /** 'netem', 'relay' (kernel without netem) or 'none' (no latency asked). */
  latencyBy: 'netem' | 'relay' | 'none' = 'none';
  private constructor(
    readonly topology: Topology,
    readonly options: NetnsOptions,
  ) {}

  /** Builds everything, or throws NetnsUnavailable saying why (never a silent fallback to 127.0.0.1). */
  static async open(options: NetnsOptions, say: (line: string) => void): Promise<NetnsLab> {
    const why = netnsUnavailableReason();
    if (why) throw new NetnsUnavailable(why);
    ensureTool('iptables', 'iptables', say);
    ensureTool('etcd', 'etcd-server', say);
    const topology = buildTopology(0);
    const lab = new NetnsLab(topology, options);
    try {
      say(
        `netns: primary ${topology.ns.primary} ${topology.ip.primary}, backup ${topology.ns.backup} ${topology.ip.backup}, etcd ${topology.ns.etcd} ${topology.ip.etcd}, wire ${topology.ns.wire} ${topology.ip.wire} (bridge), clients in the host namespace ${topology.ip.clients}`,
      );
      await lab.startEtcd();
      if (options.latencyMs > 0 || options.jitterMs > 0) {
        const netem = netemAvailable(topology);
        if (netem.ok) {
          netemDelay(topology, options.latencyMs, options.jitterMs);
          lab.latencyBy = 'netem';
          say(`netns: latency by tc netem: ${options.latencyMs} ms round trip${options.jitterMs ? ` ± ${options.jitterMs} ms` : ''} on the nodes' links`);
        } else {
          lab.latencyBy = 'relay';
          say(
            `netns: tc netem unavailable in this kernel (${netem.why}): latency by relay in namespace ${topology.ns.wire} (${topology.ip.wire}:${RELAY_PORT}), ${options.latencyMs} ms round trip${options.jitterMs ? ` ± ${options.jitterMs} ms` : ''} on the logging channel`,
          );
        }
      }
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  get etcdUrl(): string {
    return `etcd://${this.topology.ip.etcd}:${ETCD_PORT}`;
  }

  private async startEtcd(): Promise<void> {
    const t = this.topology;
    this.etcdDir = mkdtempSync(path.join(tmpdir(), 'ftjs-netns-etcd-'));
    const client = `http://${t.ip.etcd}:${ETCD_PORT}`;
    this.etcd = spawn(
      'ip',
      [
        'netns',
        'exec',
        t.ns.etcd,
        'etcd',
        '--name',
        'arbiter',
        '--data-dir',
        this.etcdDir,
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        'http://127.0.0.1:2380',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const r = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline || this.etcd.exitCode !== null) throw new NetnsUnavailable(`etcd in ${t.ns.etcd} did not become healthy`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Where the backup dials the primary's logging channel: straight, or through the delaying relay. */
  async channelTarget(): Promise<string> {
    const t = this.topology;
    if (this.latencyBy !== 'relay') return `ws://${t.ip.primary}:${CHANNEL_PORT}`;
    if (!this.relay) {
      const { latencyMs, jitterMs } = this.options;
      this.relay = spawn(
        'ip',
        ['netns', 'exec', t.ns.wire, process.execPath, DELAY_RELAY, t.ip.wire, String(RELAY_PORT), t.ip.primary, String(CHANNEL_PORT), String(latencyMs / 2), String(jitterMs / 2)],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        this.relay!.stdout!.once('data', () => resolve());
        this.relay!.once('exit', (code) => reject(new Error(`the delay relay exited with ${code}`)));
      });
    }
    return `ws://${t.ip.wire}:${RELAY_PORT}`;
  }

  /** Heals every iptables fault. */
  heal(): void {
    for (const ns of [this.topology.ns.primary, this.topology.ns.backup]) flushRules(ns);
  }

  async close(): Promise<void> {
    this.relay?.kill('SIGKILL');
    if (this.etcd && this.etcd.exitCode === null) {
      const gone = new Promise((resolve) => this.etcd!.once('exit', resolve));
      this.etcd.kill('SIGKILL');
      await gone;
    }
    if (this.etcdDir) rmSync(this.etcdDir, { recursive: true, force: true });
    this.topology.teardown();
  }
}

/** The iptables rules of a fault (inside the primary's namespace; none in the host's). */
export function faultRules(fault: NetnsFault, t: Topology, lossPercent: number): Array<{ ns: string; args: string[] }> {
  const inP = (args: string[]) => ({ ns: t.ns.primary, args });
  const channelIn = ['-p', 'tcp', '--dport', String(CHANNEL_PORT)];
  const channelOut = ['-p', 'tcp', '--sport', String(CHANNEL_PORT)];
  switch (fault) {
    case 'partition':
      return [inP(['-A', 'INPUT', ...channelIn, '-j', 'DROP']), inP(['-A', 'OUTPUT', ...channelOut, '-j', 'DROP'])];
    case 'partition-oneway':
      // The primary's frames never reach the backup; the backup's acks and heartbeats still reach it.
      return [inP(['-A', 'OUTPUT', ...channelOut, '-j', 'DROP'])];
    case 'arbiter-primary':
      return [inP(['-A', 'OUTPUT', '-d', t.ip.etcd, '-j', 'DROP']), inP(['-A', 'INPUT', '-s', t.ip.etcd, '-j', 'DROP'])];
    case 'clients':
      return [inP(['-A', 'INPUT', '-s', t.ip.clients, '-j', 'DROP']), inP(['-A', 'OUTPUT', '-d', t.ip.clients, '-j', 'DROP'])];
    case 'loss': {
      const p = (lossPercent / 100).toFixed(4);
      const random = ['-m', 'statistic', '--mode', 'random', '--probability', p, '-j', 'DROP'];
      return [inP(['-A', 'INPUT', ...channelIn, ...random]), inP(['-A', 'OUTPUT', ...channelOut, ...random])];
    }
    default:
      return [];
  }
}

export async function runNetnsRound(
  lab: NetnsLab,
  round: number,
  fault: NetnsFault,
  entry: string,
  random: () => number,
  timing: DrillTiming,
  progress: (msg: string) => void,
  choice: WorkloadOptions,
): Promise<RoundResult & { commands: string[]; nodeWarnings: string[] }> {
  const t = lab.topology;
  const commands: string[] = [];
  const secret = Buffer.from(Array.from({ length: 24 }, () => Math.floor(random() * 256))).toString('base64url');
  const arbiter = `${lab.etcdUrl}/drill-${process.pid}-${Date.now()}-r${round}`;
  const common = ['--arbiter', arbiter, '--host', '0.0.0.0', '--port', String(NODE_PORT), ...timingArgs(timing), '--log-level', 'info'];
  const env = { FTJS_SECRET: secret };
  // Each node takes backups on its own address, so that the one fenced by a failover joins the other as a backup.
  const channel = (ip: string) => ['--replication-host', '0.0.0.0', '--replication-port', String(CHANNEL_PORT), '--replication-advertise-host', ip];
  const primary = new NodeProcess('primary', ['primary', entry, ...channel(t.ip.primary), '--node-id', 'primary', ...common], env, undefined, ['ip', 'netns', 'exec', t.ns.primary]);
  const released: Array<{ node: string; epoch: number; seq: number; atMs: number }> = [];
  const router = new Router({
    nodes: [
      { name: 'primary', url: `http://${t.ip.primary}:${NODE_PORT}` },
      { name: 'backup', url: `http://${t.ip.backup}:${NODE_PORT}` },
    ],
    healthIntervalMs: 20,
    waitForLiveMs: 10_000,
    logger: pino({ level: 'silent' }),
    onUpstreamResponse: (node, headers, atMs) => {
      if (headers['ftjs-seq'] !== undefined) released.push({ node, epoch: Number(headers['ftjs-epoch']), seq: Number(headers['ftjs-seq']), atMs });
    },
  });
  let backup: NodeProcess | null = null;
  const violations: string[] = [];
  let lateCovered = 0;
  try {
    await primary.waitFor((l) => typeof l.replication === 'string', 'primary serving', 30_000);
    const target = await lab.channelTarget();
    backup = new NodeProcess('backup', ['backup', '--primary', target, ...channel(t.ip.backup), '--node-id', 'backup', ...common], env, undefined, ['ip', 'netns', 'exec', t.ns.backup]);
    await backup.waitFor((l) => typeof l.primary === 'string' && typeof l.url === 'string', 'backup listening', 30_000);
    await primary.waitFor((l) => l.msg === 'backup attached', 'backup attached', 30_000);
    await new Promise<void>((resolve) => router.server.listen(0, '127.0.0.1', resolve));
    router.start();
    const call = caller(`http://127.0.0.1:${(router.server.address() as net.AddressInfo).port}`);
    const service = await chooseService(call, choice.workload, choice.kvPrefix);
    progress(`round ${round}: pair up in ${t.ns.primary} / ${t.ns.backup} (channel ${target}); workload: ${service.description}`);
    await service.prepare(call, `r${round}`);
    const workload = service.load(call, random, `t-${round}`);
    workload.start();

    const delayMs = 400 + Math.floor(random() * 800);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const faultAt = Date.now();
    progress(`round ${round}: ${fault} after ${delayMs} ms of load (${workload.acks.length} writes acknowledged so far)`);
    const b = backup;
    const rules = faultRules(fault, t, lab.options.lossPercent);
    for (const rule of rules) {
      commands.push(`ip netns exec ${rule.ns} iptables -w ${rule.args.join(' ')}`);
      iptables(rule.ns, rule.args);
    }
    if (fault === 'kill-primary') primary.signalSafe('SIGKILL');
    if (fault === 'pause-primary') primary.signalSafe('SIGSTOP');

    // Only a claim the fault caused: a loaded host may have had a node claim before it (a stalled backup dropped).
    const wonEpoch = (l: LogLine) => timeOf(l) >= faultAt && (l.name === 'backup' ? /^LIVE: won epoch \d+/ : /^won epoch \d+/).test(l.msg);
    let goLiveMs: number | null = null;
    let detectionMs: number | null = null;
    if (FAILOVER.has(fault)) {
      const winner = await Promise.any([
        primary.waitFor(wonEpoch, 'won epoch', 20_000).then((l) => ({ l, node: primary })),
        b.waitFor(wonEpoch, 'won epoch', 20_000).then((l) => ({ l, node: b })),
      ]).catch(() => null);
      if (!winner) violations.push(`no node went live within 20 s of the fault`);
      else {
        goLiveMs = Math.max(0, timeOf(winner.l) - faultAt);
        const lost = winner.node.lines.find((l) => timeOf(l) >= faultAt && /^(primary|backup) lost: /.test(l.msg));
        detectionMs = lost ? Math.max(0, timeOf(lost) - faultAt) : null;
        const slow = goLiveViolation(goLiveMs, timing);
        if (slow) violations.push(slow);
        const loser = winner.node === primary ? b : primary;
        if (fault === 'pause-primary') {
          const resumedAt = Date.now();
          primary.signalSafe('SIGCONT');
          await Promise.race([within(primary.exited, 10_000), primary.waitFor((l) => REJOINED.test(l.msg), 'a rejoin', 10_000).catch(() => null)]);
          const late = lateReleases(released, resumedAt, takeoverSeqOf(b));
          if (late.violation) violations.push(late.violation);
          lateCovered = late.covered;
        } else if (fault !== 'kill-primary') {
          await Promise.race([within(loser.exited, 10_000), loser.waitFor((l) => REJOINED.test(l.msg), 'a rejoin', 10_000).catch(() => null)]);
        }
        // The loser may instead join the winner as a fresh backup (it released nothing since): a delay, not a node.
        if (fault !== 'kill-primary' && !fencedAsExpected(loser))
          violations.push(`${fault}: the losing ${loser.name} ended with ${loser.exitCode ?? loser.signal ?? 'still running'}, expected exit 75 (lost epoch) or a rejoin`);
      }
    } else {
      await new Promise((resolve) => setTimeout(resolve, lab.options.holdMs));
    }
    if (rules.length > 0) {
      lab.heal();
      commands.push(`ip netns exec ${t.ns.primary} iptables -w -F   # healed after ${Date.now() - faultAt} ms`);
    }
    if (!FAILOVER.has(fault)) {
      // Healed: the service must carry on without a failover (loss may cost one: a lossy channel can look dead).
      const moved = [primary, b].find((p) => p.lines.some(wonEpoch));
      if (moved && fault !== 'loss') violations.push(`${fault}: ${moved.name} won a new epoch: a fault that cuts neither node from its peer must not cost a failover`);
      for (const p of [primary, b]) if (!p.running && p.exitCode !== 75) violations.push(`${p.name} exited with ${p.exitCode ?? p.signal}`);
      if (!moved && !primary.running) violations.push(`${fault}: the primary stopped without a failover`);
    }

    await new Promise((resolve) => setTimeout(resolve, 1000));
    await workload.stop();
    const acks = workload.acks;
    violations.push(...workload.violations);
    progress(`round ${round}: load stopped: ${acks.length} writes acknowledged of ${workload.issued} issued; checking the live node`);

    const live = await findLiveNode(
      [
        { p: primary, url: `http://${t.ip.primary}:${NODE_PORT}` },
        { p: b, url: `http://${t.ip.backup}:${NODE_PORT}` },
      ],
      violations,
    );
    const { writesLost, duplicates, ...checks } = await endOfRoundChecks(live, service, acks, [primary, b], released);
    violations.push(...checks.violations);
    return {
      round,
      fault: fault as RoundResult['fault'],
      workload: service.description,
      detectionMs,
      goLiveMs,
      clientGapMs: clientGapMs(workload.successes, faultAt),
      writesAcked: acks.length,
      writesLost,
      duplicates,
      liveNode: live?.p.name ?? null,
      epochs: checks.epochs,
      violations,
      commands,
      ...(lateCovered > 0 ? { lateCovered } : {}),
      // What the nodes warned about (a lease taken again after the arbiter came back, a channel loss): read with the figures.
      nodeWarnings: evidenceOf([primary, b], 8),
      ...(violations.length > 0 ? { evidence: evidenceOf([primary, b]) } : {}),
    };
  } finally {
    await router.stop(0); // the workload has ended: nothing left in flight to wait for
    lab.heal();
    await primary.kill();
    await backup?.kill();
  }
}
