// An unreplicated node (`ftjs run`): one live VM behind the front door, outputs released at once,
// the log optionally recorded to a trace file.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Kind } from '../../logging-channel/entry.js';
import { DEFAULT_TRACE_OUTPUTS_MAX_BYTES } from '../../logging-channel/task-outputs.js';
import { TraceWriter, traceOutputsHook } from '../../logging-channel/trace-writer.js';
import { Log, traceSink } from '../../recorder/log.js';
import { traceHeaderFor } from '../vm/boot-config.js';
import { startupMark } from '../vm/startup-marks.js';
import type { BootConfig } from '../vm/vm.js';
import { type Env, realEnv, type VmHandle } from './env.js';
import { createFrontDoor, type EdgeOptions } from './front-door.js';
import { LiveLoop, type LiveLoopOptions } from './live-loop.js';

export interface StandaloneOptions {
  config: BootConfig;
  host: string;
  port: number;
  recordPath?: string;
  /** Rotate the trace into segments of this many bytes (TraceWriterOptions.segmentBytes). */
  traceSegmentBytes?: number;
  /** What the trace keeps of each task's outputs, in bytes (0: none). Default DEFAULT_TRACE_OUTPUTS_MAX_BYTES. */
  traceOutputsMaxBytes?: number;
  maxRequestBytes: number;
  /** Serve POST /_ft/scheduled, which fires a configured cron trigger now (`--test-scheduled`). */
  testScheduled?: boolean;
  loop: LiveLoopOptions;
  /** Front-door settings from the CLI (--public-url, --admin-token-file): the guest's origin, the operator token. */
  frontDoor?: EdgeOptions;
  /** The world this node runs in (default: the real one). */
  env?: Env;
  logger: Logger;
}

export class StandaloneNode {
  private stopping: Promise<void> | null = null;

  private constructor(
    private readonly vm: VmHandle,
    private readonly loop: LiveLoop,
    private readonly log: Log,
    private readonly server: Server,
    private readonly trace: TraceWriter | null,
    private readonly traceOut: { close(): void } | null,
    private readonly logger: Logger,
    readonly url: string,
  ) {}

  static async start(options: StandaloneOptions): Promise<StandaloneNode> {
    const { config, logger } = options;
    const trace = options.recordPath
      ? await TraceWriter.open(
          options.recordPath,
          traceHeaderFor(config, 'run', { outputsMaxBytes: options.traceOutputsMaxBytes ?? DEFAULT_TRACE_OUTPUTS_MAX_BYTES }),
          options.traceSegmentBytes ? { segmentBytes: options.traceSegmentBytes } : {},
        )
      : null;
    const log = new Log();
    const traceOut = trace ? traceSink(trace) : null;
    if (traceOut) log.addSink(traceOut.sink);
    const env = options.env ?? realEnv;
    const vm = env.startVm(config.limits);
    let loop: LiveLoop | null = null;
    vm.onFatal = (error) => {
      logger.fatal({ err: error }, 'the VM died; stopping');
      process.exitCode = 70;
      void loop?.stop();
    };
    const started = env.clock.monoMs();
    let bootReply;
    try {
      startupMark('boot sent');
      bootReply = await vm.boot(config, 'live');
      startupMark('boot reply');
    } catch (error) {
      await vm.terminate();
      await trace?.close();
      throw error;
    }
    loop = new LiveLoop(vm, log, { hold: (_seq, release) => release() }, logger, options.loop, env);
    loop.onFatal = vm.onFatal;
    if (trace) loop.onTask = traceOutputsHook(trace);
    loop.start(bootReply);
    loop.startCrons(config.crons ?? []);
    trace?.flush();
    logger.info(
      {
        guest: config.entry,
        guestHash: config.guestHash.slice(0, 12),
        bootMs: Math.round(env.clock.monoMs() - started),
        memoryBytes: bootReply.state.memoryBytes,
        bootImage: bootReply.bootImage,
        bootTimings: bootReply.bootTimings,
      },
      'guest booted',
    );
    if (bootReply.bootImage?.problems?.length) logger.warn({ problems: bootReply.bootImage.problems }, `boot image cache: ${bootReply.bootImage.problems.join('; ')}`);

    const node: { loop: LiveLoop } = { loop };
    const server = createFrontDoor(
      {
        liveLoop: () => node.loop,
        notLiveReason: () => 'stopping',
        identity: () => ({ node: 'standalone', epoch: 0 }),
        healthy: () => true,
        ...(options.testScheduled ? { testScheduled: () => config.crons ?? [] } : {}),
        status: async () => ({
          role: 'standalone',
          epoch: 0,
          seq: log.lastSeq,
          taskSeq: node.loop.lastTaskSeq,
          pos: node.loop.vmState?.pos ?? 0,
          tasks: node.loop.tasksRun,
          batches: node.loop.batchesRun,
          queued: node.loop.queued,
          guestTimeMs: node.loop.vmState?.guestTimeMs ?? 0,
          memoryBytes: node.loop.vmState?.memoryBytes ?? 0,
          recording: options.recordPath ?? null,
        }),
      },
      { maxRequestBytes: options.maxRequestBytes, retryAfterSeconds: 1, ...options.frontDoor },
      logger,
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
    startupMark('listening');
    const address = server.address() as AddressInfo;
    const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    return new StandaloneNode(vm, loop, log, server, trace, traceOut, logger, url);
  }

  get lastSeq(): number {
    return this.log.lastSeq;
  }

  /** Stops serving, lets the VM go idle, records the final state hash, closes the trace. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.server.close();
      this.server.closeAllConnections();
      await this.loop.stop();
      if (this.vm.alive) {
        const state = await this.vm.state(true);
        this.log.appendControl(Kind.StateHash, new Uint8Array(Buffer.from(state.stateHash!, 'hex')));
        this.logger.info({ seq: this.log.lastSeq, pos: state.pos, stateHash: state.stateHash }, 'final state');
      }
      if (this.trace) {
        this.traceOut?.close();
        await this.trace.close();
        this.logger.info({ trace: this.trace.path, bytes: this.trace.bytesWritten }, 'trace closed');
      }
      await this.vm.terminate();
    })();
    return this.stopping;
  }
}
