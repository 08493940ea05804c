// Flags shared by the commands that boot a VM: limits, env, logging. Each limit has a name, a default
// (hypervisor/vm/limits.ts and friends) and a flag here.

import { type Command, InvalidArgumentError } from 'commander';
import { CronError, parseCron } from '../hypervisor/node/cron.js';
import { DEFAULT_MAX_REQUEST_BYTES } from '../hypervisor/node/front-door.js';
import { DEFAULT_LIVE_LOOP_OPTIONS } from '../hypervisor/node/live-loop.js';
import { DEFAULT_LIMITS, MAX_STACK_KB_LIMIT, MAX_STACK_WHY, TASK_WALL_BACKSTOP_BUDGETS, type VmLimits } from '../hypervisor/vm/limits.js';
import { DEFAULT_TRACE_OUTPUTS_MAX_BYTES, MAX_TRACE_OUTPUTS_MAX_BYTES } from '../logging-channel/task-outputs.js';

export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

export function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number > 0, got "${value}"`);
    return n;
  };
}

export function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0, got "${value}"`);
    return n;
  };
}

/** The heartbeat timeout: three periods unless given; it must be longer than one period. */
export function heartbeatTimeoutFor(heartbeatMs: number, heartbeatTimeoutMs: number | undefined): number {
  const timeoutMs = heartbeatTimeoutMs ?? 3 * heartbeatMs;
  if (timeoutMs <= heartbeatMs) throw new Error(`--heartbeat-timeout-ms (${timeoutMs}) must exceed --heartbeat-ms (${heartbeatMs})`);
  return timeoutMs;
}

/** `--max-stack-kb`: bounded by the engine's own stack (hypervisor/vm/limits.ts); past it the VM cannot boot. */
function maxStackKb(value: string): number {
  const kb = positiveInt('--max-stack-kb')(value);
  if (kb > MAX_STACK_KB_LIMIT) throw new InvalidArgumentError(`--max-stack-kb must be at most ${MAX_STACK_KB_LIMIT}: ${MAX_STACK_WHY} (got ${kb})`);
  return kb;
}

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`not a TCP port: "${value}"`);
  return n;
}

function envPair(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--env takes KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

const MiB = 1024 * 1024;

/** `--cron "<expr>"` (repeatable): checked here, so a bad expression is an error naming its field before anything starts. */
function cronList(value: string, previous: string[]): string[] {
  try {
    parseCron(value);
  } catch (error) {
    if (error instanceof CronError) throw new InvalidArgumentError(error.message);
    throw error;
  }
  return [...previous, value];
}

export function addCronOption(command: Command): Command {
  return command.option(
    '--cron <expression>',
    'a cron trigger in the Workers syntax, e.g. "*/5 * * * *" (UTC; repeatable): each firing calls the guest\'s scheduled(controller, env, ctx) as a recorded event',
    cronList,
    [],
  );
}

export function addVmOptions(command: Command): Command {
  return command
    .option('--env <KEY=VALUE>', 'a string the guest sees in env (repeatable)', envPair, {})
    .option('--memory-limit-mb <mb>', 'guest heap limit; over it the guest gets an out-of-memory error', positiveInt('--memory-limit-mb'), DEFAULT_LIMITS.memoryLimitBytes / MiB)
    .option('--max-stack-kb <kb>', `guest stack (at most ${MAX_STACK_KB_LIMIT}); deeper recursion is a guest stack-overflow error`, maxStackKb, DEFAULT_LIMITS.maxStackBytes / 1024)
    .option(
      '--task-budget-ms <ms>',
      `CPU budget of one task, in the VM thread's CPU time (${TASK_WALL_BACKSTOP_BUDGETS}x it in wall time at most); past it the task is preempted and its request gets 503`,
      positiveInt('--task-budget-ms'),
      DEFAULT_LIMITS.taskBudgetMs,
    )
    .option('--max-response-bytes <n>', 'largest response body a guest may return (else 500)', positiveInt('--max-response-bytes'), DEFAULT_LIMITS.maxResponseBytes)
    .option(
      '--max-streamed-response-bytes <n>',
      'largest body a streamed (ReadableStream) response may send; past it the response is cut off',
      positiveInt('--max-streamed-response-bytes'),
      DEFAULT_LIMITS.maxStreamedResponseBytes,
    )
    .option('--max-open-streams <n>', 'streamed responses in progress at once; one more gets 503', positiveInt('--max-open-streams'), DEFAULT_LIMITS.maxOpenStreams)
    .option('--max-timers <n>', 'timers a guest may hold at once', positiveInt('--max-timers'), DEFAULT_LIMITS.maxTimers)
    .option('--max-pending-fetches <n>', 'outbound fetches a guest may have in flight', positiveInt('--max-pending-fetches'), DEFAULT_LIMITS.maxPendingFetches)
    .option('--max-console-lines <n>', 'console lines kept per task', positiveInt('--max-console-lines'), DEFAULT_LIMITS.maxConsoleLinesPerTask)
    .option('--idempotency-max-keys <n>', 'Idempotency-Key responses remembered for exactly-once retries', positiveInt('--idempotency-max-keys'), DEFAULT_LIMITS.idempotencyMaxKeys)
    .option('--idempotency-ttl-ms <ms>', 'how long a finished Idempotency-Key is remembered', positiveInt('--idempotency-ttl-ms'), DEFAULT_LIMITS.idempotencyTtlMs)
    .option(
      '--response-timeout-ms <ms>',
      'a request the guest has not answered within this time gets 504 (decided on the recorded clock)',
      positiveInt('--response-timeout-ms'),
      DEFAULT_LIMITS.responseTimeoutMs,
    );
}

/** `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS on the logging channel (logging-channel/channel-tls.ts). */
export function addChannelTlsOptions(command: Command): Command {
  return command
    .option('--tls-cert <file>', "logging channel over TLS (wss://), mutual: this node's certificate (PEM); needs --tls-key and --tls-ca too")
    .option('--tls-key <file>', 'the private key (PEM) of --tls-cert')
    .option('--tls-ca <file>', "the CA (PEM) that signs both nodes' certificates: the primary requires a backup certificate it signed, the backup checks the primary's against it");
}

/** `--no-bundle` (flags.bundle false): load the entry's ES modules as they are instead of bundling it (cli/guest.ts). */
export function addBundleOption(command: Command): Command {
  return command.option(
    '--no-bundle',
    'load <entry> as ES modules as they are, for code that is already bundled: relative imports only (found by an ES module lexer), no TypeScript, no npm packages. By default <entry> (.js, .mjs, .ts, .tsx, .jsx) is bundled with its npm dependencies by esbuild at boot',
  );
}

export function addServeOptions(command: Command): Command {
  return command
    .option('--max-request-bytes <n>', 'largest request body accepted (else 413)', positiveInt('--max-request-bytes'), DEFAULT_MAX_REQUEST_BYTES)
    .option('--max-queued-requests <n>', 'requests waiting for the VM; past it new ones get 503', positiveInt('--max-queued-requests'), DEFAULT_LIVE_LOOP_OPTIONS.maxQueuedEvents)
    .option('--fetch-timeout-ms <ms>', 'timeout of a guest outbound fetch', positiveInt('--fetch-timeout-ms'), DEFAULT_LIVE_LOOP_OPTIONS.fetchTimeoutMs)
    .option('--max-fetch-response-bytes <n>', 'largest outbound fetch response a guest may receive', positiveInt('--max-fetch-response-bytes'), DEFAULT_LIVE_LOOP_OPTIONS.maxFetchResponseBytes);
}

export function addLogOptions(command: Command): Command {
  return command.option('--pretty', 'human-readable logs (default when stdout is a terminal)').option('--log-level <level>', 'trace|debug|info|warn|error', 'info');
}

export interface VmFlags {
  env: Record<string, string>;
  memoryLimitMb: number;
  maxStackKb: number;
  taskBudgetMs: number;
  maxResponseBytes: number;
  maxStreamedResponseBytes: number;
  maxOpenStreams: number;
  maxTimers: number;
  maxPendingFetches: number;
  maxConsoleLines: number;
  idempotencyMaxKeys: number;
  idempotencyTtlMs: number;
  responseTimeoutMs: number;
}

export function limitsFrom(flags: VmFlags): VmLimits {
  return {
    ...DEFAULT_LIMITS,
    memoryLimitBytes: flags.memoryLimitMb * MiB,
    maxStackBytes: flags.maxStackKb * 1024,
    taskBudgetMs: flags.taskBudgetMs,
    maxResponseBytes: flags.maxResponseBytes,
    maxStreamedResponseBytes: flags.maxStreamedResponseBytes,
    maxOpenStreams: flags.maxOpenStreams,
    maxTimers: flags.maxTimers,
    maxPendingFetches: flags.maxPendingFetches,
    maxConsoleLinesPerTask: flags.maxConsoleLines,
    idempotencyMaxKeys: flags.idempotencyMaxKeys,
    idempotencyTtlMs: flags.idempotencyTtlMs,
    responseTimeoutMs: flags.responseTimeoutMs,
  };
}

export interface ServeFlags {
  maxRequestBytes: number;
  maxQueuedRequests: number;
  fetchTimeoutMs: number;
  maxFetchResponseBytes: number;
}

/** Default size of one trace segment (`--trace-max-mb`). */
export const DEFAULT_TRACE_MAX_MB = 1024;

/**
 * `--trace-max-mb`: traces rotate into numbered segments (file, file.1, file.2, ...) of at most this size.
 * `--trace-outputs-max-bytes`: what a trace keeps of each task's outputs and console lines.
 */
export function addTraceSizeOption(command: Command): Command {
  return command
    .option(
      '--trace-max-mb <mb>',
      'largest trace file: past it the trace continues in <file>.1, <file>.2, ... (each a valid trace; `ftjs replay <file>` reads them all as one)',
      positiveInt('--trace-max-mb'),
      DEFAULT_TRACE_MAX_MB,
    )
    .option(
      '--trace-outputs-max-bytes <bytes>',
      `the trace also keeps what each task emitted (response status, headers and body; outbound requests; console lines), up to this many bytes per task (bodies past it are cut and marked), so a divergence report can show the expected outputs; trace-only, never sent to the backup; 0: off (at most ${MAX_TRACE_OUTPUTS_MAX_BYTES})`,
      (value: string) => {
        const n = nonNegativeInt('--trace-outputs-max-bytes')(value);
        if (n > MAX_TRACE_OUTPUTS_MAX_BYTES) throw new InvalidArgumentError(`--trace-outputs-max-bytes must be at most ${MAX_TRACE_OUTPUTS_MAX_BYTES}, got "${value}"`);
        return n;
      },
      DEFAULT_TRACE_OUTPUTS_MAX_BYTES,
    );
}

/** The bytes of one trace segment from `--trace-max-mb`. */
export function traceSegmentBytes(flags: { traceMaxMb: number }): number {
  return flags.traceMaxMb * MiB;
}
