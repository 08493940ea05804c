// Shared helpers for process-level tests: real `ftjs` processes, real sockets on 127.0.0.1.
// Tests wait on conditions (a log line, a health check, an exit), never on fixed sleeps.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'dist/cli/ftjs.js');

export function tempDir(prefix = 'ftjs-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A running `ftjs` child process whose JSON log lines are collected. */
export class FtjsProcess {
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  readonly exited: Promise<number | null>;
  /** Called on every new log line and on exit: the pending waitForLog calls. */
  private readonly lineWaiters = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith('{')) {
          try {
            this.lines.push(JSON.parse(line) as LogLine);
          } catch {
            /* not a log line */
          }
        }
      }
      for (const waiter of [...this.lineWaiters]) waiter();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve(code);
        for (const waiter of [...this.lineWaiters]) waiter();
      }),
    );
  }

  find(predicate: (line: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(predicate);
  }

  /**
   * The first log line (earlier ones included) that `predicate` accepts. Each line is tested once, as it
   * arrives: no polling (a 20 ms poll re-tested every line of a chatty node 50 times a second, and
   * answered up to 20 ms late). A line the predicate throws on does not match.
   */
  waitForLog(predicate: (line: LogLine) => boolean, what: string, timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let tested = 0;
      const settle = (finish: () => void) => {
        clearTimeout(timer);
        this.lineWaiters.delete(check);
        finish();
      };
      const check = () => {
        for (; tested < this.lines.length; tested++) {
          const line = this.lines[tested]!;
          let matched = false;
          try {
            matched = predicate(line);
          } catch {
            /* not a match */
          }
          if (matched) return settle(() => resolve(line));
        }
        if (this.exitCode !== null) settle(() => reject(new Error(`process exited with ${this.exitCode} before ${what}: ${this.stderr.slice(-2000)}`)));
      };
      const timer = setTimeout(() => settle(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
      this.lineWaiters.add(check);
      check();
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.exitCode === null && this.signal === null) this.child.kill(signal);
    return this.exited;
  }
}

export function spawnFtjs(args: string[], env: Record<string, string> = {}): FtjsProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, FTJS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new FtjsProcess(child);
}

/** Starts `ftjs run` on a free port and waits until it serves. */
export async function startRun(
  app: string,
  options: { record?: string; env?: Record<string, string>; processEnv?: Record<string, string>; args?: string[] } = {},
): Promise<FtjsProcess & { url: string }> {
  const args = ['run', app, '--port', '0', '--log-level', 'info'];
  if (options.record) args.push('--record', options.record);
  for (const [k, v] of Object.entries(options.env ?? {})) args.push('--env', `${k}=${v}`);
  args.push(...(options.args ?? []));
  const proc = spawnFtjs(args, options.processEnv);
  try {
    const line = await proc.waitForLog((l) => typeof l.url === 'string' && l.msg.startsWith('serving'), 'the node to serve');
    return Object.assign(proc, { url: line.url as string });
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
}

export interface Step {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface StepResult {
  status: number;
  body: string;
}

export async function send(baseUrl: string, step: Step): Promise<StepResult> {
  const init: RequestInit = { method: step.method, headers: step.headers ?? {} };
  if (step.body !== undefined) init.body = step.body;
  const response = await fetch(baseUrl + step.path, init);
  return { status: response.status, body: await response.text() };
}

export async function runSteps(baseUrl: string, steps: Step[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const step of steps) results.push(await send(baseUrl, step));
  return results;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an `ftjs` command to completion. */
export async function ftjs(args: string[], env: Record<string, string> = {}, input?: string): Promise<CommandResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (input !== undefined) child.stdin!.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

export interface ReplayJson {
  console: Array<{ seq: number; level: string; text: string }>;
  summary: Record<string, unknown> & {
    ok: boolean;
    tasks: number;
    entries: number;
    lastSeq: number;
    finalStateHash: string;
    divergence: null | { seq: number; pos: number; expected: string; actual: string };
  };
}

/** `ftjs replay --json`, parsed. */
export async function replayJson(trace: string, env: Record<string, string> = {}, extra: string[] = []): Promise<CommandResult & ReplayJson> {
  const result = await ftjs(['replay', trace, '--json', ...extra], env);
  const console: ReplayJson['console'] = [];
  let summary: ReplayJson['summary'] | undefined;
  for (const line of result.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const parsed = JSON.parse(line) as { type: string };
    if (parsed.type === 'console') console.push(parsed as unknown as ReplayJson['console'][number]);
    if (parsed.type === 'summary') summary = parsed as unknown as ReplayJson['summary'];
  }
  if (!summary) throw new Error(`replay printed no summary (exit ${result.code}): ${result.stderr} ${result.stdout.slice(-500)}`);
  return { ...result, console, summary };
}

export const TEST_SECRET = 'test-secret-0123456789abcdef';

export async function status(url: string): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${url}/_ft/status`);
  } catch {
    // A pooled keep-alive socket the node closed as it was reused ("other side closed"): ask once more,
    // on a fresh connection. A node that is gone fails this one too.
    res = await fetch(`${url}/_ft/status`, { headers: { connection: 'close' } });
  }
  return (await res.json()) as Record<string, unknown>;
}

export interface PairProcesses {
  primary: FtjsProcess & { url: string; replication: string };
  backup: FtjsProcess & { url: string };
  sharedDir: string;
  stop(): Promise<void>;
}

export interface PairOptions {
  heartbeatMs?: number;
  /** Default 3000 ms in tests: a busy 2-core CI machine must not make a test pair fail over by accident. */
  heartbeatTimeoutMs?: number;
  primaryArgs?: string[];
  backupArgs?: string[];
  sharedDir?: string;
}

function timingArgs(options: PairOptions): string[] {
  return ['--heartbeat-ms', String(options.heartbeatMs ?? 100), '--heartbeat-timeout-ms', String(options.heartbeatTimeoutMs ?? 3000)];
}

export async function startPrimary(app: string, options: PairOptions = {}): Promise<FtjsProcess & { url: string; replication: string; sharedDir: string }> {
  const sharedDir = options.sharedDir ?? tempDir('ftjs-shared-');
  const timing = timingArgs(options);
  const proc = spawnFtjs(['primary', app, '--port', '0', '--replication-port', '0', '--shared-dir', sharedDir, '--node-id', 'primary', ...timing, ...(options.primaryArgs ?? [])], {
    FTJS_SECRET: TEST_SECRET,
  });
  const line = await proc
    .waitForLog((l) => typeof l.replication === 'string' && typeof l.url === 'string', 'the primary to serve')
    .catch(async (error: Error) => {
      await proc.stop('SIGKILL');
      throw error;
    });
  return Object.assign(proc, { url: line.url as string, replication: line.replication as string, sharedDir });
}

export async function startBackup(
  replication: string,
  sharedDir: string,
  options: PairOptions & { secret?: string; entry?: string; nodeId?: string; env?: Record<string, string> } = {},
): Promise<FtjsProcess & { url: string }> {
  const timing = timingArgs(options);
  const args = [
    'backup',
    ...(options.entry ? [options.entry] : []),
    '--primary',
    replication,
    '--port',
    '0',
    '--shared-dir',
    sharedDir,
    '--node-id',
    options.nodeId ?? 'backup',
    ...timing,
    ...(options.backupArgs ?? []),
  ];
  const proc = spawnFtjs(args, { FTJS_SECRET: options.secret ?? TEST_SECRET, ...(options.env ?? {}) });
  const line = await proc
    .waitForLog((l) => typeof l.url === 'string' && typeof l.primary === 'string', 'the backup to listen')
    .catch(async (error: Error) => {
      await proc.stop('SIGKILL');
      throw error;
    });
  return Object.assign(proc, { url: line.url as string });
}

/** A primary and a backup of `app`, with the backup attached and caught up with the boot. */
export async function startPair(app: string, options: PairOptions = {}): Promise<PairProcesses> {
  const sharedDir = options.sharedDir ?? tempDir('ftjs-shared-');
  const primary = await startPrimary(app, { ...options, sharedDir });
  let backup: (FtjsProcess & { url: string }) | null = null;
  try {
    backup = await startBackup(primary.replication, sharedDir, options);
    const b = backup;
    await waitFor(async () => (await status(primary.url)).backupAttached === true && ((await status(b.url)).replayedSeq as number) > 0, 'the backup to attach and replay');
  } catch (error) {
    // Never leave a node running behind a failed start.
    await Promise.all([primary.stop('SIGKILL'), backup?.stop('SIGKILL')]);
    throw error;
  }
  const started = backup!;
  return {
    primary,
    backup: started,
    sharedDir,
    async stop() {
      for (const p of [primary, started]) {
        if (p.signal === null && p.exitCode === null) {
          try {
            p.child.kill('SIGCONT');
          } catch {
            /* already gone */
          }
        }
      }
      await Promise.all([primary.stop('SIGKILL'), started.stop('SIGKILL')]);
    },
  };
}

/** Waits until the backup has replayed exactly what the primary has, with the same state hash. */
export async function waitInSync(primaryUrl: string, backupUrl: string, timeoutMs = 20_000): Promise<{ seq: number; stateHash: string }> {
  return waitFor(
    async () => {
      const p = await status(primaryUrl);
      const b = await status(backupUrl);
      const p2 = await status(primaryUrl);
      // A no-op may land between the reads; equal seqs before and after pin the primary's state.
      if (p.seq === b.seq && p2.seq === p.seq && p.stateHash === b.stateHash && p.stateHash) return { seq: p.seq as number, stateHash: p.stateHash as string };
      return null;
    },
    'the backup to be in sync with the primary',
    timeoutMs,
    10,
  );
}
