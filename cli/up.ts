// `ftjs up`: the embedded default. A primary and a backup as two child processes on 127.0.0.1, a
// shared directory under a temporary folder (or the arbiter given), and a front door that routes to
// whichever node is live. It supervises the pair: a lost node is replaced by a fresh backup that joins
// the survivor, and while the service runs unprotected it says so, loudly and in GET /_ft/up.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { DEFAULT_HEARTBEAT_MS } from '../hypervisor/node/pair.js';
import { type ArbiterFlags, addArbiterOptions, arbiterFrom } from './arbiter-flags.js';
import { freePort } from './child.js';
import { addEdgeOptions, adminTokenFrom, type EdgeFlags } from './edge-flags.js';
import { forwardedArgs } from './forward-flags.js';
import { createLogger } from './logger.js';
import { addBundleOption, addCronOption, addServeOptions, addVmOptions, heartbeatTimeoutFor, port, positiveInt } from './options.js';
import { Router } from './router.js';
import { type Member, ProtectionWatch } from './up-watch.js';

interface UpFlags extends ArbiterFlags, EdgeFlags {
  bundle: boolean;
  port: number;
  host: string;
  pretty?: boolean;
  logLevel: string;
  heartbeatMs: number;
  heartbeatTimeoutMs?: number;
}

const CLI = fileURLToPath(new URL('./ftjs.js', import.meta.url));
const DEFAULT_GUEST = fileURLToPath(new URL('../../guest-apps/kv.js', import.meta.url));
/** A replacement backup that lived shorter than this counts as a failed join: the next one waits longer. */
const SHORT_LIFE_MS = 10_000;
/** Wait before a replacement backup; doubled after each failed join, up to RESTART_DELAY_MAX_MS. */
const RESTART_DELAY_MS = 250;
const RESTART_DELAY_MAX_MS = 8_000;
/** How long a child gets to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

export function registerUp(program: Command): void {
  const command = program
    .command('up')
    .summary('run a primary + backup pair behind one front door, and keep it protected (the default for npm start)')
    .description(
      'Start a primary and a backup of <entry> (default guest-apps/kv.js) as child processes on 127.0.0.1, with a fresh shared directory (or --shared-dir / --arbiter) and secret, and a front door that routes to whichever node is live. ' +
        'A node that is lost is replaced by a fresh backup that joins the survivor; while no backup is attached and in sync, `up` warns every few seconds and GET /_ft/up on the front door says so (every response also carries ftjs-protected: yes|no). ' +
        'Guest, limit and edge flags go to the nodes. Ctrl-C stops everything; the nodes also stop if `up` dies.',
    )
    .argument('[entry]', 'the guest entry (.js, .mjs, .ts, .tsx, .jsx), bundled with its npm dependencies', DEFAULT_GUEST)
    .option('-p, --port <port>', 'front door port', port, 8080)
    .option('--host <host>', 'front door address', '127.0.0.1')
    .option('--pretty', 'human-readable logs (default on a terminal)')
    .option('--log-level <level>', 'trace|debug|info|warn|error', 'info')
    .option('--heartbeat-ms <ms>', 'heartbeat period of the pair', positiveInt('--heartbeat-ms'), DEFAULT_HEARTBEAT_MS)
    .option('--heartbeat-timeout-ms <ms>', 'silence after which a node declares its peer lost (default: 3 heartbeat periods)', positiveInt('--heartbeat-timeout-ms'));
  addArbiterOptions(command, 'shared directory for the epoch claims (default: a fresh temporary one, removed on exit)');
  addEdgeOptions(command);
  addVmOptions(command);
  addServeOptions(command);
  addBundleOption(command);
  // The primary takes the schedule; it travels to the backups in the boot config.
  addCronOption(command).action(async (entry: string, flags: UpFlags) => {
    await runUp(program, command, entry, flags);
  });
}

async function runUp(program: Command, command: Command, entry: string, flags: UpFlags): Promise<void> {
  // Checked before anything starts: a bad value would only fail inside the children.
  const heartbeatTimeoutMs = heartbeatTimeoutFor(flags.heartbeatMs, flags.heartbeatTimeoutMs);
  const adminToken = adminTokenFrom(flags);
  const pretty = flags.pretty ?? process.stdout.isTTY === true;
  const logger = createLogger({ pretty, level: flags.logLevel, name: 'up' });
  const tempDir = flags.arbiter === undefined && flags.sharedDir === undefined ? mkdtempSync(path.join(tmpdir(), 'ftjs-shared-')) : null;
  const arbiter = tempDir ? { where: tempDir } : arbiterFrom(flags);
  const removeTemp = () => tempDir && rmSync(tempDir, { recursive: true, force: true });

  const watch = new ProtectionWatch({ logger, adminToken, router: null });
  const router = new Router({ nodes: [], healthIntervalMs: 50, waitForLiveMs: 5_000, logger, frontStatus: () => watch.snapshot(), adminToken });
  watch.router = router;
  // The front door binds first: a port that is taken ends `up` before any node exists.
  try {
    await new Promise<void>((resolve, reject) => {
      router.server.once('error', reject);
      router.server.listen(flags.port, flags.host, () => resolve());
    });
  } catch (error) {
    removeTemp();
    throw new Error(`front door ${flags.host}:${flags.port}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; no node was started`);
  }
  const frontDoor = `http://${flags.host}:${(router.server.address() as net.AddressInfo).port}`;

  const sub = (name: string) => program.commands.find((c) => c.name() === name)!;
  const skip = new Set(['--port', '--host', '--pretty', '--log-level', '--heartbeat-ms', '--heartbeat-timeout-ms', '--shared-dir', '--create-shared-dir']);
  const arbiterArgs = tempDir || flags.sharedDir !== undefined ? ['--shared-dir', arbiter.where] : [];
  const common = [...arbiterArgs, '--log-level', flags.logLevel, ...(pretty ? ['--pretty'] : []), '--heartbeat-ms', String(flags.heartbeatMs), '--heartbeat-timeout-ms', String(heartbeatTimeoutMs)];
  const secret = randomBytes(24).toString('base64url');
  let stopping = false;
  let backups = 0;
  let restartDelayMs = RESTART_DELAY_MS;

  const launch = (member: Omit<Member, 'child' | 'startedAtMs'>, args: string[]): Member => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FTJS_SECRET: secret, FTJS_PARENT_WATCH: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    forwardOutput(child, member.name, pretty);
    const m: Member = { ...member, child, startedAtMs: Date.now() };
    watch.members.set(m.name, m);
    router.addNode({ name: m.name, url: `http://127.0.0.1:${m.port}` });
    child.on('exit', (code, signal) => void onExit(m, code, signal));
    return m;
  };
  const launchBackup = async (primaryReplicationPort: number): Promise<Member> => {
    backups++;
    const name = backups === 1 ? 'backup' : `backup-${backups}`;
    const [httpPort, replicationPort] = [await freePort(), await freePort()];
    const args = [
      'backup',
      '--primary',
      `ws://127.0.0.1:${primaryReplicationPort}`,
      '--port',
      String(httpPort),
      '--replication-port',
      String(replicationPort),
      '--node-id',
      name,
      ...forwardedArgs(command, sub('backup'), skip),
      ...common,
    ];
    return launch({ name, port: httpPort, replicationPort }, args);
  };

  // A lost node: the survivor runs alone; a fresh backup joins it as soon as it is live. (A node fenced
  // by a newer epoch does not exit: it joins the winner as a fresh backup itself, cli/pair.ts, and stays
  // a member; its status says backup, and protection returns once it is attached and in sync.)
  const onExit = async (m: Member, code: number | null, signal: NodeJS.Signals | null) => {
    watch.members.delete(m.name);
    router.removeNode(m.name);
    if (stopping) return;
    watch.lost(m.name, `${m.name} exited (${signal ?? `code ${code}`})`);
    if (!watch.everLive) {
      logger.fatal({ node: m.name, code, signal }, `${m.name} exited (${signal ?? `code ${code}`}) before the service ever served: not restarting (its log above says why)`);
      return stop(1);
    }
    if (watch.members.size === 0) {
      logger.fatal({ node: m.name, code, signal }, `${m.name} exited (${signal ?? `code ${code}`}) and no node is left: the service is down`);
      return stop(1);
    }
    logger.error({ node: m.name, code, signal }, `${m.name} exited (${signal ?? `code ${code}`}); the service is UNPROTECTED until a fresh backup joins the survivor`);
    const lived = Date.now() - m.startedAtMs;
    restartDelayMs = lived < SHORT_LIFE_MS ? Math.min(restartDelayMs * 2, RESTART_DELAY_MAX_MS) : RESTART_DELAY_MS;
    await heal();
  };
  let healing = false;
  const heal = async () => {
    if (healing) return;
    healing = true;
    try {
      await new Promise((resolve) => setTimeout(resolve, restartDelayMs));
      // Joins go to the live node only: a backup cannot take a backup.
      let live: Member | undefined;
      while (!stopping && !(live = watch.liveMember())) await new Promise((resolve) => setTimeout(resolve, 100));
      if (stopping || !live) return;
      if (watch.members.size >= 2) return; // someone already joined
      const joiner = await launchBackup(live.replicationPort);
      logger.warn({ node: joiner.name, survivor: live.name, pid: joiner.child.pid }, `starting ${joiner.name} (pid ${joiner.child.pid}) to join ${live.name} and protect the service again`);
    } finally {
      healing = false;
    }
  };

  const stop = (exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    watch.stop();
    logger.info('stopping the pair');
    const drained = router.stop();
    const children = [...watch.members.values()].map((m) => m.child);
    for (const child of children) child.kill('SIGTERM');
    const killer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), STOP_GRACE_MS);
    const exits = children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve))));
    void Promise.all([...exits, drained]).then(() => {
      clearTimeout(killer);
      removeTemp();
      process.exit(exitCode);
    });
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  // Whatever ends `up` (a crash included) ends its nodes; SIGKILL is covered by their stdin pipe.
  process.on('exit', () => {
    for (const m of watch.members.values()) m.child.kill('SIGKILL');
  });

  const [primaryPort, replicationPort] = [await freePort(), await freePort()];
  const primary = launch({ name: 'primary', port: primaryPort, replicationPort }, [
    'primary',
    entry,
    '--port',
    String(primaryPort),
    '--replication-port',
    String(replicationPort),
    '--node-id',
    'primary',
    ...forwardedArgs(command, sub('primary'), skip),
    ...common,
  ]);
  const backup = await launchBackup(replicationPort);
  router.start();
  watch.start();
  logger.info(
    // The children's pids, so an operator (or a test) can stop one node and watch the other take over.
    { frontDoor, primary: `http://127.0.0.1:${primaryPort}`, backup: `http://127.0.0.1:${backup.port}`, primaryPid: primary.child.pid, backupPid: backup.child.pid, arbiter: arbiter.where },
    `ftjs up: front door ${frontDoor} (primary http://127.0.0.1:${primaryPort} pid ${primary.child.pid}, backup http://127.0.0.1:${backup.port} pid ${backup.child.pid}); GET ${frontDoor}/_ft/up shows protection; Ctrl-C stops everything`,
  );
}

/** A child's output on ours, line by line (prefixed with its name when pretty). */
function forwardOutput(child: ChildProcess, name: string, pretty: boolean): void {
  const prefix = (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        out.write(pretty ? `[${name}] ${buffered.slice(0, nl)}\n` : `${buffered.slice(0, nl)}\n`);
        buffered = buffered.slice(nl + 1);
      }
    });
  };
  prefix(child.stdout!, process.stdout);
  prefix(child.stderr!, process.stderr);
}

export type { Logger };
