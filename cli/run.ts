// `ftjs run`: serve a guest unreplicated, optionally recording a trace.

import type { Command } from 'commander';
import { realEnv } from '../hypervisor/node/env.js';
import { DEFAULT_LIVE_LOOP_OPTIONS } from '../hypervisor/node/live-loop.js';
import { StandaloneNode } from '../hypervisor/node/standalone.js';
import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { startupMark } from '../hypervisor/vm/startup-marks.js';
import { addEdgeOptions, type EdgeFlags, edgeFrom, portOf } from './edge-flags.js';
import { type GuestFlags, prepareGuest } from './guest.js';
import { createLogger } from './logger.js';
import { addBundleOption, addCronOption, addLogOptions, addServeOptions, addTraceSizeOption, addVmOptions, limitsFrom, port, type ServeFlags, traceSegmentBytes, type VmFlags } from './options.js';

interface RunFlags extends VmFlags, ServeFlags, GuestFlags, EdgeFlags {
  port: number;
  host: string;
  record?: string;
  trace?: string;
  traceMaxMb: number;
  traceOutputsMaxBytes: number;
  pretty?: boolean;
  logLevel: string;
  cron: string[];
  testScheduled?: boolean;
}

export function registerRun(program: Command): void {
  const command = program
    .command('run')
    .summary('serve a guest unreplicated (optionally recording a trace)')
    .description('Serve the guest module <entry> over HTTP in one VM, without a backup. With --record, every nondeterministic input is written to a trace that `ftjs replay` re-executes bit for bit.')
    .argument('<entry>', 'the guest entry (.js, .mjs, .ts, .tsx, .jsx; export default { fetch(request, env, ctx) }), bundled with its npm dependencies')
    .option('-p, --port <port>', 'HTTP port (0 picks a free one)', port, 8080)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--record <file>', 'write a trace of the run to <file> (must not exist)')
    .option('--trace <file>', 'same as --record (the name the pair commands use)');
  addTraceSizeOption(command);
  addCronOption(command);
  command.option('--test-scheduled', 'serve POST /_ft/scheduled?cron=EXPR, which fires one of the --cron triggers now (for trying a scheduled() handler; off by default: any client could fire it)');
  addVmOptions(command);
  addBundleOption(command);
  addServeOptions(command);
  addEdgeOptions(command);
  addLogOptions(command);
  command.action(async (entry: string, flags: RunFlags) => {
    const logger = createLogger({ pretty: flags.pretty, level: flags.logLevel, name: 'run' });
    const guest = await prepareGuest(entry, flags, logger);
    startupMark('guest prepared');
    const config = makeBootConfig(guest, flags.env, limitsFrom(flags), flags.cron);
    startupMark('boot config made');
    flags.record ??= flags.trace;
    const edge = edgeFrom(flags, [flags.port]);
    const node = await StandaloneNode.start({
      config,
      host: flags.host,
      port: flags.port,
      ...(flags.record ? { recordPath: flags.record, traceSegmentBytes: traceSegmentBytes(flags), traceOutputsMaxBytes: flags.traceOutputsMaxBytes } : {}),
      maxRequestBytes: flags.maxRequestBytes,
      testScheduled: flags.testScheduled === true,
      env: { ...realEnv, fetch: edge.fetch },
      frontDoor: edge.frontDoor,
      loop: { ...DEFAULT_LIVE_LOOP_OPTIONS, maxQueuedEvents: flags.maxQueuedRequests, fetchTimeoutMs: flags.fetchTimeoutMs, maxFetchResponseBytes: flags.maxFetchResponseBytes },
      logger,
    });
    const bound = portOf(node.url);
    if (bound !== undefined) edge.ownPort(bound);
    logger.info({ url: node.url, record: flags.record ?? null }, `serving ${entry} on ${node.url}`);
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'stopping');
      node.stop().then(
        () => process.exit(),
        (error: Error) => {
          logger.error({ err: error }, 'stop failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });
}
