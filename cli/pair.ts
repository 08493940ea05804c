// `ftjs primary` and `ftjs backup`: the two halves of a fault-tolerant pair.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Command, InvalidArgumentError } from 'commander';
import type { Logger } from 'pino';
import { arbiterFactory } from '../hypervisor/node/arbiter-select.js';
import { BackupNode } from '../hypervisor/node/backup.js';
import { DEFAULT_CHECKPOINT_KEEP } from '../hypervisor/node/checkpoint.js';
import { COMPRESS_DUTY_FLAG, checkDutyPercent, DEFAULT_COMPRESS_DUTY_PERCENT } from '../hypervisor/node/checkpoint-compress.js';
import { type Env, realEnv } from '../hypervisor/node/env.js';
import { DEFAULT_LIVE_LOOP_OPTIONS, type LiveLoopOptions } from '../hypervisor/node/live-loop.js';
import { DEFAULT_PAIR_SETTINGS, type PairSettings } from '../hypervisor/node/pair.js';
import { type CheckpointSettings, type HaltEvent, PrimaryNode } from '../hypervisor/node/primary.js';
import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { DEFAULT_PRIORITY_BOOST_STEPS, describePriority, PRIORITY_BOOST_FLAG, priorityChange } from '../hypervisor/worker/priority.js';
import { type ChannelTls, checkChannelUrl, readChannelTls, type TlsFlags } from '../logging-channel/channel-tls.js';
import { DEFAULT_JOIN_BY_SNAPSHOT_AFTER_ENTRIES } from '../logging-channel/primary-channel.js';
import { type ArbiterChoice, type ArbiterFlags, addArbiterOptions, arbiterFrom, checkpointDirFor } from './arbiter-flags.js';
import { addEdgeOptions, type Edge, type EdgeFlags, edgeFrom, portOf } from './edge-flags.js';
import { type GuestFlags, prepareGuest } from './guest.js';
import { createLogger } from './logger.js';
import {
  addBundleOption,
  addChannelTlsOptions,
  addCronOption,
  addLogOptions,
  addServeOptions,
  addTraceSizeOption,
  addVmOptions,
  heartbeatTimeoutFor,
  limitsFrom,
  nonNegativeInt,
  port,
  positiveInt,
  positiveNumber,
  type ServeFlags,
  traceSegmentBytes,
  type VmFlags,
} from './options.js';
import { readSecret } from './secret.js';

interface PairFlags extends ServeFlags, GuestFlags, TlsFlags, ArbiterFlags, EdgeFlags {
  port: number;
  host: string;
  secret?: string;
  secretFile?: string;
  nodeId?: string;
  heartbeatMs: number;
  heartbeatTimeoutMs?: number;
  maxLagMs: number;
  maxReplayLagMs: number;
  leaseMs: number;
  phiThreshold: number;
  phiMaxDelayMs: number;
  witnessGraceMs: number;
  maxLogBufferBytes: number;
  trace?: string;
  traceMaxMb: number;
  traceOutputsMaxBytes: number;
  pretty?: boolean;
  logLevel: string;
}

function addPairOptions(command: Command): Command {
  addArbiterOptions(command);
  addEdgeOptions(command);
  return addChannelTlsOptions(
    addTraceSizeOption(
      command
        .option('--secret-file <file>', 'file holding the shared secret of the pair (or set FTJS_SECRET); at least 16 bytes, never sent in clear')
        .option('--secret <secret>', 'the shared secret itself: visible to every local user in ps, so prefer --secret-file or FTJS_SECRET (a warning says so)')
        .option('--node-id <id>', "this node's name in logs and epoch claims (default: host-role-random)")
        .option('--heartbeat-ms <ms>', 'heartbeat period of the logging channel', positiveInt('--heartbeat-ms'), DEFAULT_PAIR_SETTINGS.heartbeatMs)
        .option('--heartbeat-timeout-ms <ms>', 'silence after which the peer is declared lost (default: 3 heartbeat periods)', positiveInt('--heartbeat-timeout-ms'))
        .option('--max-lag-ms <ms>', 'primary: past this backup lag, stop admitting new requests', positiveInt('--max-lag-ms'), DEFAULT_PAIR_SETTINGS.maxLagMs)
        .option(
          '--max-replay-lag-ms <ms>',
          'primary: past this backup replay backlog (what a takeover would drain), stop admitting new requests; a backup over it is "catching up", not protecting',
          positiveInt('--max-replay-lag-ms'),
          DEFAULT_PAIR_SETTINGS.maxReplayLagMs,
        )
        .option(
          '--lease-ms <ms>',
          'a serving node re-verifies its epoch on the shared directory at least this often, and halts once a newer one exists',
          positiveInt('--lease-ms'),
          DEFAULT_PAIR_SETTINGS.leaseMs,
        )
        .option(
          '--phi-threshold <phi>',
          'past the heartbeat timeout, a peer is suspected once phi (how unlikely its silence is, given the jitter learned from its frames) reaches this',
          positiveNumber('--phi-threshold'),
          DEFAULT_PAIR_SETTINGS.phiThreshold,
        )
        .option(
          '--phi-max-delay-ms <ms>',
          'the longest the learned jitter may put suspicion off past the heartbeat timeout (a real death still goes live within the timeout + 1 s)',
          nonNegativeInt('--phi-max-delay-ms'),
          DEFAULT_PAIR_SETTINGS.phiMaxDelayMs,
        )
        .option(
          '--witness-grace-ms <ms>',
          'the longest a silent peer whose beacon on the shared directory still moves (alive, only busy) is not suspected past the heartbeat timeout',
          nonNegativeInt('--witness-grace-ms'),
          DEFAULT_PAIR_SETTINGS.witnessGraceMs,
        )
        .option(
          '--max-log-buffer-bytes <n>',
          'primary: bound on the log kept for the backup; unacknowledged bytes past it stop admission',
          positiveInt('--max-log-buffer-bytes'),
          DEFAULT_PAIR_SETTINGS.maxLogBufferBytes,
        )
        .option('--trace <file>', "also write this node's log as a trace file (replayable with ftjs replay)")
        .option(
          `${PRIORITY_BOOST_FLAG} <steps>`,
          'nice steps this node asks for above the priority it was started with (at most nice -10), so that heartbeats and replay are not starved by ordinary work on a busy host; needs root or CAP_SYS_NICE, else the node runs as started and logs why; 0: off',
          boostSteps,
          DEFAULT_PRIORITY_BOOST_STEPS,
        ),
    ),
  );
}

const ADVERTISE_HELP =
  'the host other nodes dial to reach this logging channel, recorded with each epoch this node holds so that a node it fences joins it as a backup; needed when --replication-host is a wildcard address such as 0.0.0.0 (default: --replication-host)';

/** `--replication-advertise-host`: a host name or address another node can dial, not a wildcard. */
function advertiseHost(value: string): string {
  const bracketed = value.includes(':') && !value.startsWith('[') ? `[${value}]` : value;
  let host: string;
  try {
    host = new URL(`ws://${bracketed}:1`).hostname;
  } catch {
    throw new InvalidArgumentError(`--replication-advertise-host must be a host name or an IP address, got "${value}"`);
  }
  if (host === '0.0.0.0' || host === '[::]') throw new InvalidArgumentError(`--replication-advertise-host must name an address others can dial, not the wildcard "${value}"`);
  return value;
}

function boostSteps(value: string): number {
  const steps = nonNegativeInt(PRIORITY_BOOST_FLAG)(value);
  if (steps > 20) throw new InvalidArgumentError(`${PRIORITY_BOOST_FLAG} must be at most 20 (the whole nice range), got ${steps}`);
  return steps;
}

/** What cli/ftjs.ts did to the node's priority before its threads started, said once at start. */
function logPriority(logger: Logger): void {
  const change = priorityChange();
  if (!change) return;
  logger.info({ nice: change.kind === 'raised' ? change.toNice : change.nice }, describePriority(change));
}

interface ReplicationFlags {
  replicationHost: string;
  replicationAdvertiseHost?: string;
  joinBySnapshotAfter: number;
}

/** The logging channel a node listens on for backups, as `{ replication }`, with the host it advertises. */
function replicationListen(flags: ReplicationFlags, port: number, secret: string, tls: { tls?: ChannelTls }) {
  return {
    host: flags.replicationHost,
    port,
    secret,
    joinBySnapshotAfterEntries: flags.joinBySnapshotAfter,
    ...(flags.replicationAdvertiseHost !== undefined ? { advertiseHost: flags.replicationAdvertiseHost } : {}),
    ...tls,
  };
}

interface CheckpointFlags {
  checkpointEvery?: number;
  checkpointEveryMs?: number;
  checkpointKeep: number;
  checkpointCompressPercent: number;
  checkpointDir?: string;
  restoreFrom?: string;
}

function checkpointOptions(flags: PairFlags & CheckpointFlags, arbiter: ArbiterChoice): { checkpoint?: CheckpointSettings; restoreFrom?: string } {
  const on = flags.checkpointEvery !== undefined || flags.checkpointEveryMs !== undefined;
  if (!on && flags.checkpointDir !== undefined) throw new Error('--checkpoint-dir needs --checkpoint-every or --checkpoint-every-ms');
  const checkpoint: CheckpointSettings | undefined = on
    ? {
        dir: checkpointDirFor(arbiter, flags.checkpointDir),
        keep: flags.checkpointKeep,
        compressDutyPercent: flags.checkpointCompressPercent,
        ...(flags.checkpointEvery !== undefined ? { everyEntries: flags.checkpointEvery } : {}),
        ...(flags.checkpointEveryMs !== undefined ? { everyMs: flags.checkpointEveryMs } : {}),
      }
    : undefined;
  return { ...(checkpoint ? { checkpoint } : {}), ...(flags.restoreFrom !== undefined ? { restoreFrom: flags.restoreFrom } : {}) };
}

const COMPRESS_DUTY_OPTION = `${COMPRESS_DUTY_FLAG} <percent>`;
const COMPRESS_DUTY_HELP = "durable checkpoints: the share of time (1-100) a checkpoint's compression may keep a core busy; it waits the rest, so the guest's traffic is not stalled behind it";

function compressDutyPercent(value: string): number {
  try {
    return checkDutyPercent(Number(value));
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function secretFrom(flags: PairFlags, logger: Logger): string {
  const { secret, warnings } = readSecret(flags);
  for (const warning of warnings) logger.warn(warning);
  return secret;
}

/** The `--tls-*` files as `{ tls }`, or nothing when TLS is off. */
function tlsFrom(flags: PairFlags): { tls?: ChannelTls } {
  const tls = readChannelTls(flags);
  return tls ? { tls } : {};
}

/**
 * The arbiter the flags name; for etcd, its client loaded now, before the node starts: loading it takes
 * up to a second on a busy machine, which must not stall heartbeats or a join later.
 */
async function loadedArbiter(flags: ArbiterFlags): Promise<ArbiterChoice> {
  const arbiter = arbiterFrom(flags);
  if (arbiter.kind === 'etcd') await import('../hypervisor/node/arbiter-etcd.js');
  return arbiter;
}

/** The node's world: the chosen arbiter, and outbound fetch through the egress policy. */
function nodeEnv(arbiter: ArbiterChoice, edge: Edge): Env {
  return { ...realEnv, arbiter: arbiterFactory(arbiter.etcd), fetch: edge.fetch };
}

function pairSettings(flags: PairFlags): PairSettings {
  const heartbeatTimeoutMs = heartbeatTimeoutFor(flags.heartbeatMs, flags.heartbeatTimeoutMs);
  return {
    ...DEFAULT_PAIR_SETTINGS,
    heartbeatMs: flags.heartbeatMs,
    heartbeatTimeoutMs,
    maxLagMs: flags.maxLagMs,
    maxReplayLagMs: flags.maxReplayLagMs,
    leaseMs: flags.leaseMs,
    phiThreshold: flags.phiThreshold,
    phiMaxDelayMs: flags.phiMaxDelayMs,
    witnessGraceMs: flags.witnessGraceMs,
    maxLogBufferBytes: flags.maxLogBufferBytes,
  };
}

function loopOptions(flags: ServeFlags): LiveLoopOptions {
  return { ...DEFAULT_LIVE_LOOP_OPTIONS, maxQueuedEvents: flags.maxQueuedRequests, fetchTimeoutMs: flags.fetchTimeoutMs, maxFetchResponseBytes: flags.maxFetchResponseBytes };
}

/**
 * The one path for a node that halts (primary or backup). One that lost its epoch (a backup's lost
 * claim, or a primary or live node fenced by a newer epoch) joins the epoch's winner as a fresh backup:
 * the address the arbiter records for it (HaltEvent.rejoinUrl), or a backup's own --primary
 * (`givenPrimary`; null for a primary, which never had one). A false suspicion costs a delay, never a
 * node. Any other halt, or no address to join, ends the process with the halt's exit code. SIGINT and
 * SIGTERM stop whichever node runs now.
 */
function keepRejoining(first: PrimaryNode | BackupNode, givenPrimary: string | null, start: (primaryUrl: string, rejoins: number, joinsEpoch?: number) => Promise<BackupNode>, logger: Logger): void {
  let node: PrimaryNode | BackupNode = first;
  let rejoins = 0;
  const watch = (n: PrimaryNode | BackupNode) =>
    n.once('halt', (e: HaltEvent) => {
      const target = e.rejoin ? (e.rejoinUrl ?? givenPrimary) : null;
      if (target === null) {
        logger.error({ exitCode: e.exitCode }, `exiting: ${e.reason}`);
        logger.flush?.();
        process.exit(e.exitCode);
      }
      rejoins++;
      const whom = e.winner ? `the node that serves now, ${e.winner.nodeId} (epoch ${e.winner.epoch}), at ${target},` : 'it again';
      logger.warn({ rejoins, primary: target }, `lost epoch (${e.reason}); joining ${whom} as a fresh backup`);
      void start(target, rejoins, e.winner?.epoch).then(
        (fresh) => {
          node = fresh;
          watch(fresh);
        },
        (error: Error) => {
          logger.error({ err: error }, `cannot join ${target}: ${error.message}`);
          process.exit(e.exitCode);
        },
      );
    });
  watch(first);
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    void node.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

export function registerPair(program: Command): void {
  const primary = program
    .command('primary')
    .summary('serve a guest and stream its log to a backup')
    .description(
      'Serve the guest on --port and accept one backup on --replication-port. Outputs are held until the backup acknowledges the entry that produced them; with no backup attached the primary runs alone in the epoch it holds.',
    )
    .argument('<entry>', 'the guest entry (.js, .mjs, .ts, .tsx, .jsx), bundled with its npm dependencies')
    .option('-p, --port <port>', 'HTTP port for guest traffic', port, 8081)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--replication-port <port>', 'port of the logging channel (WebSocket)', port, 9091)
    .option('--replication-host <host>', 'address of the logging channel', '127.0.0.1')
    .option('--replication-advertise-host <host>', ADVERTISE_HELP, advertiseHost)
    .option(
      '--join-by-snapshot-after <entries>',
      'a fresh backup joins by a snapshot of the VM (then the log after it) once the log is this long; 0: always',
      nonNegativeInt('--join-by-snapshot-after'),
      DEFAULT_JOIN_BY_SNAPSHOT_AFTER_ENTRIES,
    )
    .option(
      '--checkpoint-every <entries>',
      'durable checkpoints: write a snapshot of the VM and the log since it to the checkpoint directory once this many log entries were appended since the last one (default: off)',
      positiveInt('--checkpoint-every'),
    )
    .option(
      '--checkpoint-every-ms <ms>',
      'durable checkpoints: also (or only) once this long has passed since the last one, if the guest ran since (default: off)',
      positiveInt('--checkpoint-every-ms'),
    )
    .option('--checkpoint-keep <n>', 'checkpoints kept; older ones and the logs only they need are removed', positiveInt('--checkpoint-keep'), DEFAULT_CHECKPOINT_KEEP)
    .option(COMPRESS_DUTY_OPTION, COMPRESS_DUTY_HELP, compressDutyPercent, DEFAULT_COMPRESS_DUTY_PERCENT)
    .option('--checkpoint-dir <dir>', 'where checkpoints and their logs go (default: --shared-dir; required with --arbiter etcd)')
    .option(
      '--restore-from <dir>',
      'after both nodes were lost: boot from the newest valid checkpoint in <dir> plus its log instead of booting the guest fresh (<entry> must be the same guest); logs the durable end and what may be missing after it',
    );
  addPairOptions(primary);
  addCronOption(primary);
  addVmOptions(primary);
  addBundleOption(primary);
  addServeOptions(primary);
  addLogOptions(primary);
  primary.action(async (entry: string, flags: PairFlags & VmFlags & CheckpointFlags & ReplicationFlags & { replicationPort: number; cron: string[] }) => {
    const nodeId = flags.nodeId ?? `${hostname()}-primary-${randomUUID().slice(0, 8)}`;
    const logger = createLogger({ pretty: flags.pretty, level: flags.logLevel, name: nodeId });
    logPriority(logger);
    const arbiter = await loadedArbiter(flags);
    const edge = edgeFrom(flags, [flags.port, flags.replicationPort]);
    const checkpoints = checkpointOptions(flags, arbiter);
    const env = nodeEnv(arbiter, edge);
    const secret = secretFrom(flags, logger);
    const node = await PrimaryNode.start({
      config: makeBootConfig(await prepareGuest(entry, flags, logger), flags.env, limitsFrom(flags), flags.cron),
      nodeId,
      host: flags.host,
      port: flags.port,
      replicationHost: flags.replicationHost,
      replicationPort: flags.replicationPort,
      ...(flags.replicationAdvertiseHost !== undefined ? { replicationAdvertiseHost: flags.replicationAdvertiseHost } : {}),
      sharedDir: arbiter.where,
      env,
      frontDoor: edge.frontDoor,
      secret,
      ...tlsFrom(flags),
      pair: pairSettings(flags),
      maxRequestBytes: flags.maxRequestBytes,
      loop: loopOptions(flags),
      ...(flags.trace ? { tracePath: flags.trace, traceSegmentBytes: traceSegmentBytes(flags), traceOutputsMaxBytes: flags.traceOutputsMaxBytes } : {}),
      ...checkpoints,
      joinBySnapshotAfterEntries: flags.joinBySnapshotAfter,
      logger,
    });
    for (const url of [node.url, node.replicationUrl]) {
      const p = portOf(url);
      if (p !== undefined) edge.ownPort(p);
    }
    logger.info({ url: node.url, replication: node.replicationUrl, arbiter: arbiter.where }, `primary serving ${entry} on ${node.url}; logging channel on ${node.replicationUrl}`);
    // Fenced (a newer epoch serves): it joins the winner as a fresh backup, on the ports it had, so
    // that once live again it serves where it served and takes backups where it took them.
    const ports = { http: portOf(node.url) ?? flags.port, replication: portOf(node.replicationUrl) ?? flags.replicationPort };
    const rejoin = (primaryUrl: string, rejoins: number, joinsEpoch?: number) =>
      BackupNode.start({
        primaryUrl,
        ...(joinsEpoch !== undefined ? { joinsEpoch } : {}),
        nodeId,
        host: flags.host,
        port: ports.http,
        sharedDir: arbiter.where,
        env,
        frontDoor: edge.frontDoor,
        secret,
        ...tlsFrom(flags),
        guestHash: node.config.guestHash,
        replication: replicationListen(flags, ports.replication, secret, tlsFrom(flags)),
        pair: pairSettings(flags),
        maxRequestBytes: flags.maxRequestBytes,
        loop: loopOptions(flags),
        ...(flags.trace ? { tracePath: `${flags.trace}.rejoin-${rejoins}`, traceSegmentBytes: traceSegmentBytes(flags), traceOutputsMaxBytes: flags.traceOutputsMaxBytes } : {}),
        ...(checkpoints.checkpoint ? { checkpoint: checkpoints.checkpoint } : {}),
        logger,
      });
    keepRejoining(node, null, rejoin, logger);
  });

  const backup = program
    .command('backup')
    .summary("replay a primary's log one step behind, ready to take over")
    .description(
      'Dial the primary, receive its guest and boot config (verified by hash and engine version), acknowledge and replay its log. Guest traffic gets 503 with Retry-After until this node goes live.',
    )
    .argument('[entry]', "optional: the guest entry; if given, its bundle (or, with --no-bundle, its modules) must hash as the primary's")
    .requiredOption('--primary <url>', "the primary's logging channel, ws://HOST:PORT (wss://HOST:PORT with --tls-cert, --tls-key, --tls-ca)")
    .option('-p, --port <port>', 'HTTP port (health, status; guest traffic once live)', port, 8082)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--checkpoint-every <entries>', 'once live (after a failover): durable checkpoints every this many log entries (default: off)', positiveInt('--checkpoint-every'))
    .option('--checkpoint-every-ms <ms>', 'once live: durable checkpoints also (or only) this often, if the guest ran since (default: off)', positiveInt('--checkpoint-every-ms'))
    .option('--checkpoint-keep <n>', 'checkpoints kept', positiveInt('--checkpoint-keep'), DEFAULT_CHECKPOINT_KEEP)
    .option(COMPRESS_DUTY_OPTION, COMPRESS_DUTY_HELP, compressDutyPercent, DEFAULT_COMPRESS_DUTY_PERCENT)
    .option('--checkpoint-dir <dir>', 'where checkpoints and their logs go (default: --shared-dir; required with --arbiter etcd)')
    .option(
      '--replication-port <port>',
      'once live (after a failover): accept a fresh backup on this logging-channel port, so the service is protected again (default: off; the node then runs alone)',
      port,
    )
    .option('--replication-host <host>', 'address of that logging channel', '127.0.0.1')
    .option('--replication-advertise-host <host>', ADVERTISE_HELP, advertiseHost)
    .option(
      '--join-by-snapshot-after <entries>',
      'once live: a fresh backup joins by snapshot once the log is this long; 0: always',
      nonNegativeInt('--join-by-snapshot-after'),
      DEFAULT_JOIN_BY_SNAPSHOT_AFTER_ENTRIES,
    );
  addPairOptions(backup);
  addServeOptions(backup);
  addBundleOption(backup);
  addLogOptions(backup);
  backup.action(async (entry: string | undefined, flags: PairFlags & CheckpointFlags & ReplicationFlags & { primary: string; replicationPort?: number }) => {
    const nodeId = flags.nodeId ?? `${hostname()}-backup-${randomUUID().slice(0, 8)}`;
    const logger = createLogger({ pretty: flags.pretty, level: flags.logLevel, name: nodeId });
    logPriority(logger);
    const secret = secretFrom(flags, logger);
    const tls = tlsFrom(flags);
    // Before anything starts: a scheme that does not match the TLS flags is a usage error.
    checkChannelUrl(flags.primary, tls.tls);
    const arbiter = await loadedArbiter(flags);
    const edge = edgeFrom(flags, [flags.port, flags.replicationPort]);
    const checkpoints = checkpointOptions(flags, arbiter);
    const guestHash = entry ? (await prepareGuest(entry, flags, logger)).hash : undefined;
    const start = (primaryUrl: string, rejoins: number, joinsEpoch?: number) =>
      BackupNode.start({
        primaryUrl,
        ...(joinsEpoch !== undefined ? { joinsEpoch } : {}),
        nodeId,
        host: flags.host,
        port: flags.port,
        sharedDir: arbiter.where,
        env: nodeEnv(arbiter, edge),
        frontDoor: edge.frontDoor,
        secret,
        ...tls,
        ...(guestHash !== undefined ? { guestHash } : {}),
        ...(flags.replicationPort !== undefined ? { replication: replicationListen(flags, flags.replicationPort, secret, tls) } : {}),
        pair: pairSettings(flags),
        maxRequestBytes: flags.maxRequestBytes,
        loop: loopOptions(flags),
        ...(flags.trace
          ? { tracePath: rejoins === 0 ? flags.trace : `${flags.trace}.rejoin-${rejoins}`, traceSegmentBytes: traceSegmentBytes(flags), traceOutputsMaxBytes: flags.traceOutputsMaxBytes }
          : {}),
        ...checkpoints,
        logger,
      });
    const node = await start(flags.primary, 0);
    const bound = portOf(node.url);
    if (bound !== undefined) edge.ownPort(bound);
    logger.info({ url: node.url, primary: flags.primary, arbiter: arbiter.where }, `backup of ${flags.primary}; health and status on ${node.url}`);
    keepRejoining(node, flags.primary, start, logger);
  });
}
