// `ftjs up`: the embedded default. A primary and a backup as two child processes on 127.0.0.1, a
// shared directory under a temporary folder, and a front door that routes to whichever is live.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { freePort } from './child.js';
import { createLogger } from './logger.js';
import { DEFAULT_HEARTBEAT_MS } from '../hypervisor/node/pair.js';
import { addBundleOption, addCronOption, heartbeatTimeoutFor, port, positiveInt } from './options.js';
import { Router } from './router.js';

interface UpFlags {
  bundle: boolean;
  port: number;
  host: string;
  pretty?: boolean;
  logLevel: string;
  heartbeatMs: number;
  heartbeatTimeoutMs?: number;
  cron: string[];
}

const CLI = fileURLToPath(new URL('./ftjs.js', import.meta.url));
const DEFAULT_GUEST = fileURLToPath(new URL('../../guest-apps/kv.js', import.meta.url));


export function registerUp(program: Command): void {
  const command = program
    .command('up')
    .summary('run a primary + backup pair behind one front door (the default for npm start)')
    .description('Start a primary and a backup of <entry> (default guest-apps/kv.js) as child processes on 127.0.0.1, with a fresh shared directory and secret, and a front door that routes to whichever node is live. Ctrl-C stops everything.')
    .argument('[entry]', 'the guest entry (.js, .mjs, .ts, .tsx, .jsx), bundled with its npm dependencies', DEFAULT_GUEST)
    .option('-p, --port <port>', 'front door port', port, 8080)
    .option('--host <host>', 'front door address', '127.0.0.1')
    .option('--pretty', 'human-readable logs (default on a terminal)')
    .option('--log-level <level>', 'trace|debug|info|warn|error', 'info')
    .option('--heartbeat-ms <ms>', 'heartbeat period of the pair', positiveInt('--heartbeat-ms'), DEFAULT_HEARTBEAT_MS)
    .option('--heartbeat-timeout-ms <ms>', 'silence after which a node declares its peer lost (default: 3 heartbeat periods)', positiveInt('--heartbeat-timeout-ms'));
  addBundleOption(command);
  // The primary takes the schedule; it travels to the backup in the boot config.
  addCronOption(command).action(async (entry: string, flags: UpFlags) => {
      // Checked before anything starts: a bad pair of values would only fail inside both children.
      const heartbeatTimeoutMs = heartbeatTimeoutFor(flags.heartbeatMs, flags.heartbeatTimeoutMs);
      const pretty = flags.pretty ?? process.stdout.isTTY === true;
      const logger = createLogger({ pretty, level: flags.logLevel, name: 'up' });
      const sharedDir = mkdtempSync(path.join(tmpdir(), 'ftjs-shared-'));
      const secret = randomBytes(24).toString('base64url');
      const [primaryPort, backupPort, replicationPort] = [await freePort(), await freePort(), await freePort()];
      const common = ['--shared-dir', sharedDir, '--log-level', flags.logLevel, ...(pretty ? ['--pretty'] : []), '--heartbeat-ms', String(flags.heartbeatMs), '--heartbeat-timeout-ms', String(heartbeatTimeoutMs)];
      const children: ChildProcess[] = [];
      const pids: Record<string, number | undefined> = {};
      let stopping = false;
      const launch = (name: string, args: string[]) => {
        const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FTJS_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] });
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
        child.on('exit', (code, signal) => {
          if (!stopping) logger.warn({ node: name, code, signal }, `${name} exited (code ${code ?? signal}); the other node carries on`);
        });
        children.push(child);
        pids[name] = child.pid;
      };
      const crons = flags.cron.flatMap((c) => ['--cron', c]);
      launch('primary', ['primary', entry, ...(flags.bundle === false ? ['--no-bundle'] : []), '--port', String(primaryPort), '--replication-port', String(replicationPort), '--node-id', 'primary', ...crons, ...common]);
      launch('backup', ['backup', '--primary', `ws://127.0.0.1:${replicationPort}`, '--port', String(backupPort), '--node-id', 'backup', ...common]);

      const router = new Router({
        nodes: [
          { name: 'primary', url: `http://127.0.0.1:${primaryPort}` },
          { name: 'backup', url: `http://127.0.0.1:${backupPort}` },
        ],
        healthIntervalMs: 50,
        waitForLiveMs: 5_000,
        logger,
      });
      await new Promise<void>((resolve, reject) => {
        router.server.once('error', reject);
        router.server.listen(flags.port, flags.host, () => resolve());
      });
      router.start();
      const frontDoor = `http://${flags.host}:${(router.server.address() as net.AddressInfo).port}`;
      logger.info(
        // The children's pids, so an operator (or a test) can stop one node and watch the other take over.
        { frontDoor, primary: `http://127.0.0.1:${primaryPort}`, backup: `http://127.0.0.1:${backupPort}`, primaryPid: pids.primary, backupPid: pids.backup, sharedDir },
        `ftjs up: front door ${frontDoor} (primary http://127.0.0.1:${primaryPort} pid ${pids.primary}, backup http://127.0.0.1:${backupPort} pid ${pids.backup}); Ctrl-C stops everything`,
      );
      const stop = () => {
        if (stopping) return;
        stopping = true;
        logger.info('stopping the pair');
        router.stop();
        for (const child of children) child.kill('SIGTERM');
        const exits = children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve))));
        void Promise.all(exits).then(() => {
          rmSync(sharedDir, { recursive: true, force: true });
          process.exit(0);
        });
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
