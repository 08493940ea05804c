// `ftjs drill`: failover drills with invariant checks built in. Each round starts a fresh pair on
// 127.0.0.1 (a real shared directory, real processes), drives a client load of transfers with unique
// idempotency keys plus reads, injects one fault at a random moment, and checks what the clients saw:
// every acknowledged write present on the live node, no effect applied twice, one speaker per epoch,
// no divergence. The workload is the guest's (cli/drill-service.ts): bank.js's ledger, or the generic
// keyed store any guest with PUT/GET <prefix>/<key> can be checked with.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import { arbiterFrom } from './arbiter-flags.js';
import { freePort, type LogLine, NodeProcess, timeOf } from './child.js';
import { DEFAULT_FAULT_HOLD_MS, DEFAULT_LOSS_PERCENT, NETNS_FAULTS, type NetnsFault, NetnsLab, runNetnsRound } from './drill-netns.js';
import { type ReprotectRound, runReprotectDrill } from './drill-reprotect.js';
import { chooseService, WORKLOADS, type WorkloadChoice } from './drill-service.js';
import {
  arbiterArgs,
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
import { heartbeatTimeoutFor, positiveInt } from './options.js';
import { Relay } from './relay.js';
import { Router } from './router.js';
import { mulberry32 } from './seeded-random.js';

export const FAULTS = ['kill-primary', 'kill-backup', 'pause-primary', 'partition'] as const;
export type Fault = (typeof FAULTS)[number];

const DEFAULT_GUEST = fileURLToPath(new URL('../../guest-apps/bank.js', import.meta.url));
interface DrillFlags {
  rounds: number;
  fault: Fault | NetnsFault;
  netns?: boolean;
  latencyMs: number;
  jitterMs: number;
  lossPercent: number;
  faultHoldMs: number;
  json?: boolean;
  seed?: number;
  heartbeatMs: number;
  heartbeatTimeoutMs?: number;
  maxGoLiveMs: number;
  reprotect?: boolean;
  workload: WorkloadChoice;
  kvPrefix?: string;
  arbiter?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** Which workload a drill drives: `--workload`, and the prefix of the keyed store (`--kv-prefix`). */
export interface WorkloadOptions {
  workload: WorkloadChoice;
  kvPrefix?: string;
}

/** Default of --max-go-live-ms: drain, claim and switch, beyond the heartbeat timeout. */
export const DEFAULT_MAX_GO_LIVE_MS = 1000;

export interface RoundResult {
  round: number;
  fault: Fault | NetnsFault;
  /** The workload driven (bank ledger, or keyed store at a prefix). */
  workload: string;
  /** ms from the fault to the survivor declaring its peer lost. */
  detectionMs: number | null;
  /** ms from the fault to the survivor running alone in a new epoch. */
  goLiveMs: number | null;
  /** Longest stretch without a successful client response, around the fault. */
  clientGapMs: number;
  writesAcked: number;
  writesLost: number;
  duplicates: number;
  liveNode: string | null;
  epochs: Record<string, string[]>;
  violations: string[];
  /** pause-primary: responses of the old primary the drill read after its resume, all of seqs the backup had received before it claimed (read late, harmless). */
  lateCovered?: number;
  /** When a round broke: the nodes' warnings and errors, the evidence an operator reads first. */
  evidence?: string[];
}

export async function runRound(
  round: number,
  fault: Fault,
  entry: string,
  random: () => number,
  timing: DrillTiming,
  progress: (msg: string) => void,
  choice: WorkloadOptions = { workload: 'auto' },
): Promise<RoundResult> {
  const sharedDir = mkdtempSync(path.join(tmpdir(), 'ftjs-drill-'));
  const secret = randomBytes(24).toString('base64url');
  const [primaryPort, backupPort, replicationPort] = [await freePort(), await freePort(), await freePort()];
  const relay = fault === 'partition' ? new Relay(replicationPort) : null;
  const backupTarget = relay ? await relay.listen() : replicationPort;
  const common = [...arbiterArgs(timing, sharedDir, `drill-${process.pid}-${Date.now()}-r${round}`), ...timingArgs(timing), '--log-level', 'info'];
  const env = { FTJS_SECRET: secret };
  const primary = new NodeProcess('primary', ['primary', entry, '--port', String(primaryPort), '--replication-port', String(replicationPort), '--node-id', 'primary', ...common], env);
  const logger = pino({ level: 'silent' });
  const router = new Router({
    nodes: [
      { name: 'primary', url: `http://127.0.0.1:${primaryPort}` },
      { name: 'backup', url: `http://127.0.0.1:${backupPort}` },
    ],
    healthIntervalMs: 20,
    waitForLiveMs: 5_000,
    logger,
    // Guest responses as they leave a node (stamped by the node), timed at the front door.
    onUpstreamResponse: (node, headers, atMs) => {
      if (headers['ftjs-seq'] !== undefined) released.push({ node, epoch: Number(headers['ftjs-epoch']), seq: Number(headers['ftjs-seq']), atMs });
    },
  });
  const released: Array<{ node: string; epoch: number; seq: number; atMs: number }> = [];
  let backup: NodeProcess | null = null;
  const violations: string[] = [];
  let lateCovered = 0;
  try {
    await primary.waitFor((l) => typeof l.replication === 'string', 'primary serving', 20_000);
    backup = new NodeProcess('backup', ['backup', '--primary', `ws://127.0.0.1:${backupTarget}`, '--port', String(backupPort), '--node-id', 'backup', ...common], env);
    await backup.waitFor((l) => typeof l.primary === 'string' && typeof l.url === 'string', 'backup listening', 20_000);
    await primary.waitFor((l) => l.msg === 'backup attached', 'backup attached', 20_000);
    await new Promise<void>((resolve) => router.server.listen(0, '127.0.0.1', resolve));
    router.start();
    const door = `http://127.0.0.1:${(router.server.address() as net.AddressInfo).port}`;
    const call = caller(door);
    const service = await chooseService(call, choice.workload, choice.kvPrefix);
    progress(`round ${round}: pair up (primary :${primaryPort}, backup :${backupPort}); workload: ${service.description}`);
    await service.prepare(call, `r${round}`);
    const workload = service.load(call, random, `t-${round}`);
    workload.start();

    // The fault, at a random moment.
    const delayMs = 400 + Math.floor(random() * 800);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const faultAt = Date.now();
    progress(`round ${round}: ${fault} after ${delayMs} ms of load (${workload.acks.length} writes acknowledged so far)`);
    const b = backup;
    const survivor = fault === 'kill-backup' ? primary : b;
    switch (fault) {
      case 'kill-primary':
        primary.signalSafe('SIGKILL');
        break;
      case 'kill-backup':
        b.signalSafe('SIGKILL');
        break;
      case 'pause-primary':
        primary.signalSafe('SIGSTOP');
        break;
      case 'partition':
        relay!.cut();
        break;
    }

    // Wait for a node to run alone in a new epoch.
    let liveLine: LogLine | null = null;
    let lostLine: LogLine | null = null;
    // A primary runs alone once it won; a backup once it has also switched its port and serves.
    // Only a claim the fault caused: a loaded host may have had a node claim before it (a stalled backup dropped).
    const wonEpoch = (l: LogLine) => timeOf(l) >= faultAt && (l.name === 'backup' ? /^LIVE: won epoch \d+/ : /^won epoch \d+/).test(l.msg);
    if (fault === 'partition') {
      // The loser halts (its wait rejects when it exits); the first node to win is the one that counts.
      const winner = await Promise.any([
        primary.waitFor(wonEpoch, 'won epoch', 15_000).then((l) => ({ l, node: primary })),
        b.waitFor(wonEpoch, 'won epoch', 15_000).then((l) => ({ l, node: b })),
      ]).catch(() => null);
      if (winner) {
        liveLine = winner.l;
        lostLine = winner.node.lines.find((l) => timeOf(l) >= faultAt && /^(primary|backup) lost: /.test(l.msg)) ?? null;
        const loser = winner.node === primary ? b : primary;
        await Promise.race([within(loser.exited, 10_000), loser.waitFor((l) => REJOINED.test(l.msg), 'a rejoin', 10_000).catch(() => null)]);
        // The loser may instead join the winner as a fresh backup (it released nothing since): a delay, not a node.
        if (!fencedAsExpected(loser)) violations.push(`partition: the losing ${loser.name} ended with ${loser.exitCode ?? loser.signal ?? 'still running'}, expected exit 75 (lost epoch) or a rejoin`);
      }
    } else {
      liveLine = await survivor.waitFor(wonEpoch, 'won epoch', 15_000).catch(() => null);
      lostLine = survivor.lines.find((l) => timeOf(l) >= faultAt && /^(primary|backup) lost: /.test(l.msg)) ?? null;
    }
    const liveAt = liveLine ? timeOf(liveLine) : null;
    if (!liveLine) violations.push(`no node went live within 15 s of the fault`);
    // A node that won its epoch before the fault took a live peer for dead: a false failover (DESIGN
    // invariant 7), which the go-live figures below would otherwise show as a quick 0 ms.
    if (liveAt !== null && liveAt < faultAt) violations.push(`false failover: the ${liveLine!.name} won a new epoch ${faultAt - liveAt} ms before the fault (${lostLine?.msg ?? 'no reason logged'})`);
    const goLiveMs = liveAt !== null ? Math.max(0, liveAt - faultAt) : null;
    const slow = goLiveViolation(goLiveMs, timing);
    if (slow) violations.push(slow);
    if (fault === 'pause-primary') {
      // The old primary is stopped from the fault until now, which is after the backup went live:
      // anything it releases from here on would be a response from a replaced primary.
      const resumedAt = Date.now();
      primary.signalSafe('SIGCONT');
      await Promise.race([within(primary.exited, 10_000), primary.waitFor((l) => REJOINED.test(l.msg), 'a rejoin', 10_000).catch(() => null)]);
      if (!fencedAsExpected(primary))
        violations.push(`the paused primary did not halt with exit 75 (or join the winner as a fresh backup) after it resumed (got ${primary.exitCode ?? primary.signal ?? 'still running'})`);
      const late = lateReleases(released, resumedAt, takeoverSeqOf(b));
      if (late.violation) violations.push(late.violation);
      lateCovered = late.covered;
    }

    // More load on the survivor, then stop issuing and let every in-flight write be acknowledged.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await workload.stop();
    const acks = workload.acks;
    violations.push(...workload.violations);
    progress(`round ${round}: load stopped: ${acks.length} writes acknowledged of ${workload.issued} issued; checking the live node`);

    // Checks on the node that is live now.
    const live = await findLiveNode(
      [
        { p: primary, url: `http://127.0.0.1:${primaryPort}` },
        { p: b, url: `http://127.0.0.1:${backupPort}` },
      ],
      violations,
    );
    const { writesLost, duplicates, ...checks } = await endOfRoundChecks(live, service, acks, [primary, b], released);
    violations.push(...checks.violations);

    return {
      round,
      fault,
      workload: service.description,
      detectionMs: lostLine ? Math.max(0, timeOf(lostLine) - faultAt) : null,
      goLiveMs,
      clientGapMs: clientGapMs(workload.successes, faultAt),
      writesAcked: acks.length,
      writesLost,
      duplicates,
      liveNode: live?.p.name ?? null,
      epochs: checks.epochs,
      violations,
      ...(lateCovered > 0 ? { lateCovered } : {}),
      ...(violations.length > 0 ? { evidence: evidenceOf([primary, b]) } : {}),
    };
  } finally {
    await router.stop(0); // the workload has ended: nothing left in flight to wait for
    relay?.close();
    await primary.kill();
    await backup?.kill();
    rmSync(sharedDir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number | null {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1]! : (s[(s.length >> 1) - 1]! + s[s.length >> 1]!) / 2;
}

/** `rounds`: how many were asked for (a re-protect drill stops at the first broken round). */
export function summarize(results: RoundResult[], rounds = results.length) {
  const num = (xs: Array<number | null | undefined>) => xs.filter((x): x is number => typeof x === 'number');
  const gaps = results.map((r) => r.clientGapMs);
  const goLive = num(results.map((r) => r.goLiveMs));
  const detection = num(results.map((r) => r.detectionMs));
  const joins = num(results.map((r) => (r as Partial<ReprotectRound>).joinMs));
  const pauses = num(results.map((r) => (r as Partial<ReprotectRound>).joinPauseMs));
  return {
    rounds,
    join: joins.length > 0 ? { joinMs: { p50: median(joins), max: Math.max(...joins) }, pauseMs: { p50: median(pauses), max: Math.max(...pauses) } } : null,
    passed: results.filter((r) => r.violations.length === 0).length,
    detectionMs: { p50: median(detection), max: detection.length > 0 ? Math.max(...detection) : null },
    goLiveMs: { p50: median(goLive), max: goLive.length > 0 ? Math.max(...goLive) : null },
    clientGapMs: { p50: median(gaps), max: Math.max(...gaps) },
    writesAcked: results.reduce((a, r) => a + r.writesAcked, 0),
    writesLost: results.reduce((a, r) => a + r.writesLost, 0),
    duplicates: results.reduce((a, r) => a + r.duplicates, 0),
  };
}

function workloadChoice(value: string): WorkloadChoice {
  if (!(WORKLOADS as readonly string[]).includes(value)) throw new InvalidArgumentError(`--workload must be one of ${WORKLOADS.join(', ')}`);
  return value as WorkloadChoice;
}

function fault(value: string): Fault | NetnsFault {
  if (!(FAULTS as readonly string[]).includes(value) && !(NETNS_FAULTS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`--fault must be one of ${FAULTS.join(', ')} (or with --netns: ${NETNS_FAULTS.join(', ')})`);
  }
  return value as Fault | NetnsFault;
}

function nonNegative(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!(Number.isFinite(n) && n >= 0)) throw new InvalidArgumentError(`${flag} must be a number >= 0`);
    return n;
  };
}

export function registerDrill(program: Command): void {
  program
    .command('drill')
    .summary('failover drills: inject faults under load and check the invariants')
    .description(
      "Each round starts a fresh primary + backup pair on 127.0.0.1, drives keyed writes and reads (the guest's workload, see --workload), injects the fault at a random moment, and checks: every acknowledged write present on the live node, no effect applied twice, at most one node released outputs per epoch, no divergence. Prints a table per round and a summary; exits 1 if any invariant broke.\n" +
        'Faults: kill-primary (SIGKILL), kill-backup (SIGKILL), pause-primary (SIGSTOP, then SIGCONT once the backup is live: the old primary must halt without releasing anything), partition (the logging channel is cut through a relay; the shared directory stays reachable: exactly one node may be live afterwards).',
    )
    .argument('[entry]', 'the guest to drill (default guest-apps/bank.js)', DEFAULT_GUEST)
    .option(
      '--workload <kind>',
      'auto: what the guest declares at GET /.well-known/ftjs-drill ({"workload":"bank"} or {"workload":"kv","prefix":"/kv"}), else kv; bank: transfers between accounts (the bank.js API, reconciled to the cent, duplicates counted); kv: keyed writes and reads, PUT/GET <prefix>/<key> with Idempotency-Key (every acknowledged key read back)',
      workloadChoice,
      'auto',
    )
    .option('--kv-prefix <path>', "the keyed store's path prefix for --workload kv (default: the guest's declaration, else /kv)")
    .option('--rounds <n>', 'rounds to run (a fresh pair each)', positiveInt('--rounds'), 5)
    .requiredOption('--fault <kind>', `${FAULTS.join('|')}; with --netns: ${NETNS_FAULTS.join('|')}`, fault)
    .option(
      '--netns',
      'Linux, root: primary, backup, clients and a fresh etcd in separate network namespaces joined by veth pairs on a bridge; faults by iptables (partition: the channel both ways, partition-oneway: primary→backup only, arbiter-primary: the primary cut from etcd only, clients: the clients cut from the primary, loss: random loss on the channel) and latency on the channel by tc netem, or a delaying relay where the kernel has no netem',
    )
    .option('--latency-ms <ms>', '--netns: round trip added between primary and backup on the logging channel', nonNegative('--latency-ms'), 0)
    .option('--jitter-ms <ms>', '--netns: jitter on that round trip (uniform, ±)', nonNegative('--jitter-ms'), 0)
    .option('--loss-percent <p>', '--netns, --fault loss: packets of the channel dropped at random, each way', nonNegative('--loss-percent'), DEFAULT_LOSS_PERCENT)
    .option('--fault-hold-ms <ms>', '--netns: how long a fault that heals (arbiter-primary, clients, loss) lasts', positiveInt('--fault-hold-ms'), DEFAULT_FAULT_HOLD_MS)
    .option('--seed <n>', 'seed of the fault timing and the workload (default: random, printed)', positiveInt('--seed'))
    .option('--heartbeat-ms <ms>', 'heartbeat period of the pair', positiveInt('--heartbeat-ms'), 100)
    .option('--heartbeat-timeout-ms <ms>', 'silence after which a node declares its peer lost (default: 3 heartbeat periods)', positiveInt('--heartbeat-timeout-ms'))
    .option(
      '--max-go-live-ms <ms>',
      'go-live budget: a round fails unless a node runs alone within the heartbeat timeout plus this many ms of the fault (drain, claim, switch)',
      positiveInt('--max-go-live-ms'),
      DEFAULT_MAX_GO_LIVE_MS,
    )
    .option(
      '--reprotect',
      'one service through all rounds (with --fault kill-primary): after each failover a fresh backup joins the new live node by snapshot, and the next round kills that node; invariants are checked across all epochs',
    )
    .option('--json', 'print the results as JSON')
    .option('--arbiter <url>', 'claim epochs in etcd (etcd://host:port[,host:port]/prefix, etcds:// for TLS) instead of a fresh shared directory; each pair gets its own prefix under the given one')
    .option('--etcd-ca <file>', 'etcds://: CA certificate (PEM)')
    .option('--etcd-cert <file>', 'etcds://: client certificate (PEM)')
    .option('--etcd-key <file>', 'etcds://: client private key (PEM)')
    .option('--etcd-user <name>', 'etcd user (password from FTJS_ETCD_PASSWORD or --etcd-password-file)')
    .option('--etcd-password-file <file>', "file holding the etcd user's password")
    .action(async (entry: string, flags: DrillFlags) => {
      if (flags.reprotect && flags.fault !== 'kill-primary') throw new InvalidArgumentError('--reprotect drills consecutive failovers of one service: use it with --fault kill-primary');
      if (flags.netns) {
        if (flags.reprotect) throw new InvalidArgumentError('--netns does not drill --reprotect');
        if (flags.arbiter !== undefined) throw new InvalidArgumentError('--netns runs its own etcd in a namespace of its own (the arbiter on its own path): leave out --arbiter');
        if (!(NETNS_FAULTS as readonly string[]).includes(flags.fault)) throw new InvalidArgumentError(`--fault ${flags.fault} is not a --netns fault: ${NETNS_FAULTS.join(', ')}`);
      } else if (!(FAULTS as readonly string[]).includes(flags.fault)) throw new InvalidArgumentError(`--fault ${flags.fault} needs --netns`);
      else if (flags.latencyMs > 0 || flags.jitterMs > 0) throw new InvalidArgumentError('--latency-ms and --jitter-ms need --netns');
      const timing: DrillTiming = { heartbeatMs: flags.heartbeatMs, heartbeatTimeoutMs: heartbeatTimeoutFor(flags.heartbeatMs, flags.heartbeatTimeoutMs), maxGoLiveMs: flags.maxGoLiveMs };
      if (flags.arbiter !== undefined) {
        arbiterFrom(flags); // checked here, before a round starts a node with it
        const args: string[] = [];
        for (const [flag, value] of [
          ['--etcd-ca', flags.etcdCa],
          ['--etcd-cert', flags.etcdCert],
          ['--etcd-key', flags.etcdKey],
          ['--etcd-user', flags.etcdUser],
          ['--etcd-password-file', flags.etcdPasswordFile],
        ] as const) {
          if (value !== undefined) args.push(flag, flag === '--etcd-user' ? value : path.resolve(value));
        }
        timing.etcd = { url: flags.arbiter, args };
      }
      const seed = flags.seed ?? (randomBytes(4).readUInt32LE(0) % 1_000_000) + 1;
      const workloadOptions: WorkloadOptions = { workload: flags.workload, ...(flags.kvPrefix !== undefined ? { kvPrefix: flags.kvPrefix } : {}) };
      const random = mulberry32(seed);
      const progress = (msg: string) => process.stderr.write(`${msg}\n`);
      progress(`ftjs drill: ${flags.rounds} rounds of ${flags.fault}${flags.reprotect ? ' on one service, re-protected after each' : ''}, seed ${seed}`);
      const results: RoundResult[] = [];
      const report = (result: RoundResult) => {
        results.push(result);
        if (!flags.json) printRow(result, results.length === 1);
        for (const v of result.violations) progress(`  VIOLATION: ${v}`);
        for (const e of result.evidence ?? []) progress(`    ${e}`);
      };
      let latencyBy: string | null = null;
      if (flags.reprotect) {
        await runReprotectDrill(flags.rounds, entry, random, timing, progress, report, workloadOptions);
      } else if (flags.netns) {
        let lab: NetnsLab;
        try {
          lab = await NetnsLab.open({ latencyMs: flags.latencyMs, jitterMs: flags.jitterMs, lossPercent: flags.lossPercent, holdMs: flags.faultHoldMs }, progress);
        } catch (error) {
          progress(`ftjs drill --netns: ${(error as Error).message}`);
          process.exitCode = 2;
          return;
        }
        latencyBy = lab.latencyBy;
        try {
          for (let round = 1; round <= flags.rounds; round++) {
            try {
              const r = await runNetnsRound(lab, round, flags.fault as NetnsFault, entry, random, timing, progress, workloadOptions);
              for (const c of r.commands) progress(`  ${c}`);
              report(r);
            } catch (error) {
              // A round that could not even run (a node that did not start) is a broken round, not the end of the drill.
              const broken = { round, fault: flags.fault, workload: '?', detectionMs: null, goLiveMs: null, clientGapMs: 0, writesAcked: 0, writesLost: 0, duplicates: 0, liveNode: null, epochs: {} };
              report({ ...broken, violations: [`the round did not run: ${whatFailed(error as Error)}`] });
            }
          }
        } finally {
          await lab.close();
        }
      } else {
        for (let round = 1; round <= flags.rounds; round++) report(await runRound(round, flags.fault as Fault, entry, random, timing, progress, workloadOptions));
      }
      const summary = summarize(results, flags.rounds);
      const netns = flags.netns ? { latencyMs: flags.latencyMs, jitterMs: flags.jitterMs, latencyBy, lossPercent: flags.lossPercent, faultHoldMs: flags.faultHoldMs } : undefined;
      if (flags.json)
        console.log(
          JSON.stringify({ fault: flags.fault, reprotect: !!flags.reprotect, workload: results[0]?.workload ?? null, seed, timing, ...(netns ? { netns } : {}), summary, rounds: results }, null, 2),
        );
      else {
        const join = summary.join
          ? `; join by snapshot p50 ${summary.join.joinMs.p50} ms max ${summary.join.joinMs.max} ms, primary pause p50 ${summary.join.pauseMs.p50} ms max ${summary.join.pauseMs.max} ms`
          : '';
        console.log(
          `\nsummary (${flags.fault}${flags.reprotect ? ', one service' : ''}, seed ${seed}): ${summary.passed}/${summary.rounds} rounds passed; ` +
            (summary.goLiveMs.max === null
              ? 'no failover; '
              : `detection p50 ${summary.detectionMs.p50} ms max ${summary.detectionMs.max} ms; go-live p50 ${summary.goLiveMs.p50} ms max ${summary.goLiveMs.max} ms; `) +
            `client-visible gap p50 ${summary.clientGapMs.p50} ms max ${summary.clientGapMs.max} ms${join}; ` +
            `${summary.writesAcked} writes acknowledged, ${summary.writesLost} lost, ${summary.duplicates} duplicates`,
        );
      }
      process.exitCode = summary.passed === summary.rounds ? 0 : 1;
    });
}

function printRow(r: RoundResult, header: boolean): void {
  const cols = ['round', 'fault', 'detect ms', 'go-live ms', 'gap ms', 'acked', 'lost', 'dups', 'live', 'ok'];
  const cells = [r.round, r.fault, r.detectionMs ?? '-', r.goLiveMs ?? '-', r.clientGapMs, r.writesAcked, r.writesLost, r.duplicates, r.liveNode ?? '-', r.violations.length === 0 ? 'yes' : 'NO'].map(
    String,
  );
  const widths = [5, 16, 9, 10, 7, 6, 5, 5, 8, 3];
  if (header) console.log(cols.map((c, i) => c.padEnd(widths[i]!)).join(' '));
  console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join(' '));
}

/**
 * An error that broke a round, with its cause ("fetch failed" alone names no socket error) and the
 * drill's own frame that met it, so a round that did not run can be traced.
 */
function whatFailed(error: Error): string {
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  const frame = error.stack?.split('\n').find((line) => line.includes('/dist/') && !line.includes('node_modules'));
  return `${error.message}${cause}${frame ? `, at ${frame.trim().replace(/^at /, '')}` : ''}`;
}
