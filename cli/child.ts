// A child `ftjs` node process whose JSON log lines are parsed as they come (for `up` and `drill`).

import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('./ftjs.js', import.meta.url));

/** pino's level number for error (fatal is 60). */
const ERROR_LEVEL = 50;
const STDERR_TAIL_CHARS = 2000;

export interface LogLine {
  level: number;
  time: string;
  msg: string;
  [key: string]: unknown;
}

/** When a node logged `line`, in epoch milliseconds. */
export function timeOf(line: LogLine): number {
  return Date.parse(line.time);
}

export class NodeProcess {
  readonly lines: LogLine[] = [];
  readonly child: ChildProcess;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private readonly watchers: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  /** The end of what the node wrote to stderr (a crash before its logger ran lands there). */
  private stderrTail = '';

  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string>,
    onLine?: (text: string, parsed: LogLine | null) => void,
    /** Runs the node through this command, e.g. `ip netns exec <ns>` (it must exec, keeping the pid). */
    wrapper: string[] = [],
  ) {
    // stdin is a pipe the node watches (cli/parent-watch.ts): if this process dies, however, the node stops.
    const [command, ...prefix] = [...wrapper, process.execPath];
    this.child = spawn(command!, [...prefix, CLI, ...args], { env: { ...process.env, FTJS_PARENT_WATCH: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let buffered = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let parsed: LogLine | null = null;
        if (text.startsWith('{')) {
          try {
            parsed = JSON.parse(text) as LogLine;
          } catch {
            parsed = null;
          }
        }
        if (parsed) {
          this.lines.push(parsed);
          for (const w of this.watchers.splice(0)) {
            if (w.match(parsed)) w.resolve(parsed);
            else this.watchers.push(w);
          }
        }
        onLine?.(text, parsed);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
      onLine?.(chunk.trimEnd(), null);
    });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve();
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === null && this.signal === null;
  }

  /** The first log line matching `match` (already seen or yet to come); rejects if the process exits first. */
  waitFor(match: (l: LogLine) => boolean, what: string, timeoutMs: number): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${what}" within ${timeoutMs} ms`)), timeoutMs);
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (code ${this.exitCode ?? this.signal}) before "${what}"${this.lastWords()}`));
      });
      this.watchers.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** Why the node stopped, as it said: its last error (or fatal) log line, else the end of its stderr. */
  private lastWords(): string {
    const said = this.lines.findLast((l) => l.level >= ERROR_LEVEL);
    if (said) return `: ${said.msg}`;
    const tail = this.stderrTail.trim().split('\n').slice(-3).join(' | ');
    return tail ? `: ${tail}` : '';
  }

  signalSafe(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}

/** A TCP port free on 127.0.0.1 right now (for a child that must be told its port up front). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
