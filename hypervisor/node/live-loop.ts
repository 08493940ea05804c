// The live event loop on the node's main thread: queues events from the world (inbound requests,
// timer deadlines, outbound fetch results), hands them to the VM worker in batches, appends the
// resulting entries to the log, and passes every output through the output gate (the Output Rule).

import type { Logger } from 'pino';
import type { HeaderList, RawEntry } from '../../logging-channel/entry.js';
import type { Log } from '../../recorder/log.js';
import type { ConsoleLine, LiveEvent, Output, TaskResult } from '../vm/vm.js';
import type { RunReply, VmState } from '../worker/vm-protocol.js';
import { pauseAfterBatchMs } from './admission.js';
import { CronScheduler } from './cron-scheduler.js';
import { type Env, realEnv, type TimerHandle, type VmHandle } from './env.js';
import { ResponseStream } from './response-stream.js';

export interface OutputGate {
  /** Release `release` once the entry `seq` is safe (acknowledged by the backup, or at once when alone). */
  hold(seq: number, release: () => void): void;
}

export interface LiveLoopOptions {
  /** Events waiting for the VM; past it new requests get 503. */
  maxQueuedEvents: number;
  /** Events handed to the worker in one message. */
  batchMaxEvents: number;
  fetchTimeoutMs: number;
  maxFetchResponseBytes: number;
  /** Consulted before each batch: false holds new requests in the queue (lag control). */
  admit?: () => boolean;
  /**
   * Consulted after each batch: the fraction (0..1] of the full rate to admit at. Below 1 the batch
   * is smaller and the loop pauses after it (hypervisor/node/admission.ts), so the VM runs about
   * that fraction of the time: the primary slows before it holds.
   */
  rate?: () => number;
}

/** A slowed loop still starts a batch at least this often. */
export const MAX_PACE_PAUSE_MS = 100;

export const DEFAULT_LIVE_LOOP_OPTIONS: LiveLoopOptions = {
  maxQueuedEvents: 1024,
  batchMaxEvents: 64,
  fetchTimeoutMs: 30_000,
  maxFetchResponseBytes: 8 * 1024 * 1024,
};

export interface GuestResponse {
  /** Seq of the last entry of the task that produced the response. */
  seq: number;
  status: number;
  statusText: string;
  headers: HeaderList;
  body: Uint8Array;
  /** A streamed response: `body` is empty and the chunks come through this, as the gate releases them. */
  stream: ResponseStream | null;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

type Waiter = (response: GuestResponse) => void;

export class LiveLoop {
  private readonly queue: Array<{ event: LiveEvent; waiter?: Waiter }> = [];
  private readonly waiters = new Map<number, Waiter>();
  /** Streamed responses whose head was produced and whose end was not, by request id (those with a client). */
  private readonly streams = new Map<number, ResponseStream>();
  private running = false;
  private stopped = false;
  private idleResolvers: Array<() => void> = [];
  private timer: { handle: TimerHandle; timerId: number; deadlineMs: number } | null = null;
  /** Admission slowed: the pause after the last batch, until the next may start. */
  private paceTimer: TimerHandle | null = null;
  private readonly timersQueued = new Set<number>();
  /** Outbound fetches in flight, by fetch id: the guest may abort them. */
  private readonly fetchControllers = new Map<number, AbortController>();
  /** Aborts released before their fetch (not expected: the gate releases in order). */
  private readonly abortedBeforeStart = new Set<number>();
  private lastState: VmState | null = null;
  private cron: CronScheduler | null = null;
  /** Seq of the last TaskEnd appended: the state the VM is in. */
  lastTaskSeq = 0;
  tasksRun = 0;
  /** VM runs (batches of events) so far: tasks per batch is what spreads the per-batch costs. */
  batchesRun = 0;
  onFatal: (error: Error) => void = () => {};
  /** Called with each task's TaskEnd seq and result once its entries are in the log (the trace keeps its outputs). */
  onTask: ((seq: number, result: TaskResult) => void) | null = null;

  constructor(
    private readonly vm: VmHandle,
    private readonly log: Log,
    private readonly gate: OutputGate,
    private readonly logger: Logger,
    private readonly options: LiveLoopOptions,
    /** Wall clock for timer deadlines, timers, outbound fetch. */
    private readonly env: Pick<Env, 'clock' | 'timers' | 'fetch'> = realEnv,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  get vmState(): VmState | null {
    return this.lastState;
  }

  /** Takes the result of the boot task (or the state after go-live) and starts serving. */
  start(reply: RunReply): void {
    this.absorb(reply);
    // Streams the VM was sending when this node took over (go-live, restart from a checkpoint) have
    // no client here: their clients were connected to the node that failed. Cancel them.
    for (const requestId of reply.state.openStreams ?? []) if (!this.streams.has(requestId)) this.cancelStream(requestId);
    this.schedule();
  }

  /** Re-issues outbound fetches that started and never completed (after go-live). */
  reissue(fetches: Array<Extract<Output, { kind: 'fetch' }>>): void {
    for (const f of fetches) this.performFetch(f);
  }

  submitRequest(method: string, url: string, headers: HeaderList, body: Uint8Array): Promise<GuestResponse> {
    if (this.stopped) return Promise.reject(new QueueFullError('the node is stopping'));
    if (this.queue.length >= this.options.maxQueuedEvents) {
      return Promise.reject(new QueueFullError(`request queue is full (${this.options.maxQueuedEvents} waiting, --max-queued-requests)`));
    }
    return new Promise<GuestResponse>((resolve) => {
      this.queue.push({ event: { kind: 'request', method, url, headers, body }, waiter: resolve });
      this.schedule();
    });
  }

  /**
   * Fires cron triggers (Workers syntax, UTC) on this node's clock, from now on: each firing becomes a
   * queued 'scheduled' event, so it is recorded like a request and a replay re-delivers it from the log.
   * Only the live side evaluates schedules; a backup starts them when it goes live (Serving.start).
   */
  startCrons(expressions: readonly string[]): void {
    if (expressions.length === 0 || this.stopped || this.cron) return;
    this.cron = new CronScheduler(expressions, (cron, scheduledTimeMs) => this.triggerCron(cron, scheduledTimeMs));
    const next = this.cron.nextFiringMs;
    this.logger.info(
      { crons: expressions, nextFiring: next === null ? null : new Date(next).toISOString() },
      `cron triggers armed (${expressions.length}); next firing ${next === null ? 'never' : new Date(next).toISOString()}`,
    );
  }

  /** Queues one firing of `cron` (a schedule's, or `--test-scheduled`'s /_ft/scheduled). */
  triggerCron(cron: string, scheduledTimeMs: number): void {
    if (this.stopped) return;
    this.logger.debug({ cron, scheduledTime: new Date(scheduledTimeMs).toISOString() }, 'cron trigger fired');
    this.queue.push({ event: { kind: 'scheduled', event: { cron, scheduledTimeMs } } });
    this.schedule();
  }

  /**
   * The client of a streamed response went away before its end: a recorded event tells the guest, whose
   * stream is then cancelled (a no-op task when the stream ended meanwhile).
   */
  private cancelStream(requestId: number): void {
    if (this.stopped) return;
    this.queue.push({ event: { kind: 'stream-cancel', requestId } });
    this.schedule();
  }

  /** Stops taking requests and resolves once the VM is idle. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.handle.cancel();
    this.timer = null;
    this.paceTimer?.cancel();
    this.paceTimer = null;
    this.cron?.stop();
    if (!this.running) return;
    await new Promise<void>((resolve) => this.idleResolvers.push(resolve));
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) {
      if (!this.running) this.notifyIdle();
      return;
    }
    if (this.paceTimer !== null) return; // slowed: the pause after the last batch resumes us
    if (this.options.admit && !this.options.admit()) return; // lag control: kick() resumes
    this.running = true;
    void this.pump();
  }

  /** Lag control lifted: try again. */
  kick(): void {
    this.schedule();
  }

  private notifyIdle(): void {
    const resolvers = this.idleResolvers;
    this.idleResolvers = [];
    for (const r of resolvers) r();
  }

  private async pump(): Promise<void> {
    const rate = Math.min(1, this.options.rate?.() ?? 1);
    const startedMs = this.env.clock.monoMs();
    try {
      const batch = this.queue.splice(0, rate < 1 ? Math.max(1, Math.floor(this.options.batchMaxEvents * rate)) : this.options.batchMaxEvents);
      for (const item of batch) if (item.event.kind === 'timer') this.timersQueued.delete(item.event.timerId);
      this.batchesRun++;
      const reply = await this.vm.run(batch.map((b) => b.event));
      // Map each request to the VM's id for it before any output is processed: a response can come
      // from a later task of the same batch.
      reply.results.forEach((result, i) => {
        const waiter = batch[i]!.waiter;
        if (waiter && result.requestId) this.waiters.set(result.requestId, waiter);
      });
      this.absorb(reply);
    } catch (error) {
      this.running = false;
      this.onFatal(error as Error);
      return;
    }
    this.running = false;
    const pauseMs = pauseAfterBatchMs(this.env.clock.monoMs() - startedMs, rate, MAX_PACE_PAUSE_MS);
    if (pauseMs > 0 && !this.stopped) {
      this.paceTimer = this.env.timers.after(pauseMs, () => {
        this.paceTimer = null;
        this.schedule();
      });
    }
    this.schedule();
  }

  private absorb(reply: RunReply): void {
    const { results } = reply;
    if (results.length > 0) {
      // One append for the whole batch: the log's sinks (the logging channel, lag tracking, the
      // trace) do their per-append work once per batch rather than once per task.
      let count = 0;
      for (const result of results) {
        if (result.entries.length === 0) throw new Error(`live loop: a ${result.kind} task returned no log entries (every live task ends with a TaskEnd)`);
        count += result.entries.length;
      }
      const raw: RawEntry[] = new Array(count);
      let i = 0;
      for (const result of results) for (const entry of result.entries) raw[i++] = entry;
      let seq = this.log.append(raw)[0]!.seq - 1;
      for (const result of results) {
        seq += result.entries.length;
        this.absorbTask(seq, result);
      }
    }
    this.lastState = reply.state;
    this.armTimer(reply.state.nextTimer);
  }

  /** `tag`: the seq of the task's TaskEnd, already in the log. */
  private absorbTask(tag: number, result: TaskResult): void {
    this.lastTaskSeq = tag;
    this.tasksRun++;
    this.onTask?.(tag, result);
    if (result.console.length > 0) this.printConsole(result.console, tag);
    for (const output of result.outputs) {
      switch (output.kind) {
        case 'response': {
          const waiter = this.waiters.get(output.requestId);
          this.waiters.delete(output.requestId);
          if (!waiter) continue; // the client is gone (or this is a replayed request after go-live)
          this.gate.hold(tag, () => waiter({ seq: tag, status: output.status, statusText: output.statusText, headers: output.headers, body: output.body, stream: null }));
          break;
        }
        case 'head': {
          const waiter = this.waiters.get(output.requestId);
          this.waiters.delete(output.requestId);
          if (!waiter) continue;
          const requestId = output.requestId;
          const stream = new ResponseStream(() => this.cancelStream(requestId));
          this.streams.set(requestId, stream);
          this.gate.hold(tag, () => waiter({ seq: tag, status: output.status, statusText: output.statusText, headers: output.headers, body: output.body, stream }));
          break;
        }
        // Each chunk and the end wait for the entries of the task that produced them (the Output Rule).
        case 'chunk': {
          const stream = this.streams.get(output.requestId);
          if (stream) this.gate.hold(tag, () => stream.write(output.body));
          break;
        }
        case 'end': {
          const stream = this.streams.get(output.requestId);
          this.streams.delete(output.requestId);
          if (stream) this.gate.hold(tag, () => stream.end(output.error));
          break;
        }
        case 'fetch':
          this.gate.hold(tag, () => this.performFetch(output));
          break;
      }
    }
    for (const fetchId of result.fetchAborts) this.gate.hold(tag, () => this.cancelFetch(fetchId));
  }

  /** The guest aborted outbound fetch `fetchId` (its VM no longer waits for it): cancel the request. */
  private cancelFetch(fetchId: number): void {
    const controller = this.fetchControllers.get(fetchId);
    if (!controller) {
      this.abortedBeforeStart.add(fetchId);
      return;
    }
    this.fetchControllers.delete(fetchId);
    controller.abort();
  }

  private printConsole(lines: ConsoleLine[], seq: number): void {
    for (const line of lines) {
      const level = line.level === 'error' ? 'error' : line.level === 'warn' ? 'warn' : line.level === 'debug' ? 'debug' : 'info';
      this.logger[level]({ seq, guest: true }, line.text);
    }
  }

  private armTimer(next: { timerId: number; deadlineMs: number } | null): void {
    if (this.stopped) return;
    if (next && this.timersQueued.has(next.timerId)) next = null;
    if (this.timer && next && this.timer.timerId === next.timerId && this.timer.deadlineMs === next.deadlineMs) return;
    this.timer?.handle.cancel();
    this.timer = null;
    if (!next) return;
    const { timerId, deadlineMs } = next;
    const delayMs = Math.max(0, Math.min(deadlineMs - this.env.clock.wallMs(), 2_147_483_647));
    const handle = this.env.timers.after(delayMs, () => {
      this.timer = null;
      this.timersQueued.add(timerId);
      this.queue.push({ event: { kind: 'timer', timerId } });
      this.schedule();
    });
    this.timer = { handle, timerId, deadlineMs };
  }

  private performFetch(output: Extract<Output, { kind: 'fetch' }>): void {
    const { fetchId } = output;
    if (this.abortedBeforeStart.delete(fetchId)) return;
    const cancel = new AbortController();
    this.fetchControllers.set(fetchId, cancel);
    const finish = (result: Omit<Extract<LiveEvent, { kind: 'fetch-result' }>['result'], 'fetchId'>) => {
      // Cancelled by the guest: the VM forgot this fetch, its result must not become an event.
      if (this.fetchControllers.get(fetchId) !== cancel) return;
      this.fetchControllers.delete(fetchId);
      if (this.stopped) return;
      this.queue.push({ event: { kind: 'fetch-result', result: { fetchId, ...result } } });
      this.schedule();
    };
    const failed = (message: string) => finish({ error: message, status: 0, statusText: '', headers: [], body: new Uint8Array(0) });
    const init: RequestInit = {
      method: output.method,
      headers: output.headers,
      redirect: 'manual',
      signal: AbortSignal.any([AbortSignal.timeout(this.options.fetchTimeoutMs), cancel.signal]),
    };
    if (output.body.byteLength > 0) init.body = output.body as Uint8Array<ArrayBuffer>;
    this.env
      .fetch(output.url, init)
      .then(async (response) => {
        const body = await readLimited(response, this.options.maxFetchResponseBytes);
        const headers: HeaderList = [];
        response.headers.forEach((value, name) => headers.push([name, value]));
        finish({ error: null, status: response.status, statusText: response.statusText, headers, body });
      })
      .catch((error: Error) => {
        const cause = (error as { cause?: Error }).cause;
        // The guest's abort, not a failure: nothing to deliver.
        if (cancel.signal.aborted) return;
        const message = error.name === 'TimeoutError' ? `timed out after ${this.options.fetchTimeoutMs} ms (--fetch-timeout-ms)` : `${error.message}${cause ? `: ${cause.message}` : ''}`;
        this.logger.warn({ fetchId, url: output.url }, `outbound fetch failed: ${message}`);
        failed(message);
      });
  }
}

async function readLimited(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? -1);
  if (declared > maxBytes) throw new Error(`response of ${declared} bytes exceeds --max-fetch-response-bytes=${maxBytes}`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      if (total > maxBytes) throw new Error(`response exceeds --max-fetch-response-bytes=${maxBytes}`);
      chunks.push(chunk);
    }
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return body;
}
