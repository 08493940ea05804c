// The replay debugger's command loop: reads commands (from a terminal prompt, or from any stream, one
// per line), drives a ReplaySession, and prints what it finds, as text or as JSON lines.

import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { type DivergenceReport, formatDivergenceReport } from '../divergence.js';
import { bodyPreview } from '../entry-view.js';
import type { MoveOutcome, PointInfo, ReplaySession, ReplaySummary } from './session.js';

export const DEBUGGER_HELP = `commands (a point is a seq: the moment just before that entry takes effect):
  info                 where the replay is: seq, position, the task and the event that started it, epoch, guest time
  events [n]           the timeline: n entries before and after the point (default 5)
  next [n]             run to the start of the next task (n times)
  step [n]             move n entries on (default 1); passing a task's end runs the task
  goto <seq>           move to seq, forward or backward (back: restore a checkpoint, replay forward)
  goto pos <pos>       move to the first entry at VM position pos or later
  eval <expr>          evaluate a JS expression in the guest at this point, on a copy of the VM
                       (globals, $mod = the entry module's exports, import('../m.js') for other modules)
  outputs [n]          the last n outputs (responses, outbound fetches) up to here (default 10)
  console [n]          the last n guest console lines up to here (default 10)
  report               the divergence report again, if the replay diverged
  continue             run to the end of the trace (verifying it)
  quit                 leave`;

export interface DebuggerOptions {
  input: Readable;
  output: Writable;
  json: boolean;
  /** Show a prompt (a terminal); otherwise echo each command read. */
  interactive: boolean;
  /** Called around long moves (for a progress bar). */
  onMoveStart?: () => void;
  onMoveEnd?: () => void;
  /** Prints the summary when the replay reaches the end. */
  onEnd: (summary: ReplaySummary) => void;
}

const isoTime = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : '-');
const clockTime = (ms: number) => (ms > 0 ? new Date(ms).toISOString().slice(11, 23) : '-');

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function describePoint(info: PointInfo): string {
  if (info.atEnd) return `at the end of the trace (after seq ${info.seq - 1})`;
  const e = info.entry!;
  if (info.task) {
    const t = info.task;
    const where = t.entryIndex === 1 ? `the start of task #${t.number}` : `entry ${t.entryIndex} of ${t.entryCount} of task #${t.number}`;
    return `at seq ${info.seq} (${e.kind}, pos ${e.pos}): ${where} (seq ${t.startSeq}..${t.endSeq}, ${t.start.kind} ${t.start.summary})`;
  }
  return `at seq ${info.seq} (${e.kind}, pos ${e.pos}) between tasks${e.summary ? `: ${e.summary}` : ''}`;
}

function infoText(info: PointInfo): string {
  const lines = [describePoint(info)];
  if (!info.atEnd && info.entry && info.entry.summary && info.task) lines.push(`  entry: ${info.entry.kind} ${info.entry.summary}`);
  if (info.task && info.task.entryIndex > 1) {
    lines.push(`  the VM executes whole tasks: it is at the start of this task (seq ${info.task.startSeq}); eval sees the state before the task`);
  }
  lines.push(`  VM: pos ${info.vm.pos}, ${info.vm.tasks} tasks executed, ${mib(info.vm.memoryBytes)} memory${info.vm.booted ? '' : ' (the guest has not booted yet)'}`);
  lines.push(
    `  epoch: ${info.epoch.epoch}${info.epoch.nodeId ? ` (node ${info.epoch.nodeId})` : info.epoch.epoch === 0 ? ' (no epoch mark before this point: unreplicated run, or before go-live)' : ''}`,
  );
  lines.push(`  guest time: ${isoTime(info.guestTimeMs)}${info.guestTimeMs > 0 ? ` (${info.guestTimeMs} ms)` : ''} at this point; the VM's clock reads ${isoTime(info.vm.guestTimeMs)}`);
  lines.push(`  trace: ${info.lastSeq === null ? 'read up to here so far' : `${info.lastSeq} entries`}; checkpoints: ${info.checkpoints.count} (${mib(info.checkpoints.bytes)})`);
  if (info.divergence)
    lines.push(`  DIVERGED at seq ${info.divergence.divergence.seq}: no move goes past the task at seq ${info.divergence.task?.startSeq ?? info.divergence.divergence.seq} ('report' shows it)`);
  return lines.join('\n');
}

interface Parsed {
  name: string;
  arg: string;
}

function parse(line: string): Parsed {
  const trimmed = line.trim();
  const space = trimmed.search(/\s/);
  const word = (space < 0 ? trimmed : trimmed.slice(0, space)).toLowerCase();
  const arg = space < 0 ? '' : trimmed.slice(space + 1).trim();
  const aliases: Record<string, string> = {
    i: 'info',
    ev: 'events',
    n: 'next',
    s: 'step',
    g: 'goto',
    p: 'eval',
    print: 'eval',
    o: 'outputs',
    c: 'continue',
    cont: 'continue',
    q: 'quit',
    exit: 'quit',
    h: 'help',
    '?': 'help',
  };
  return { name: aliases[word] ?? word, arg };
}

function count(arg: string, fallback: number): number {
  if (arg === '') return fallback;
  const n = Number(arg);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`not a positive count: "${arg}"`);
  return n;
}

class UsageError extends Error {}

/** Runs commands until `quit` or the end of the input. Returns when done. */
export async function runDebugger(session: ReplaySession, options: DebuggerOptions): Promise<void> {
  const { output, json } = options;
  const print = (text: string) => output.write(text.endsWith('\n') ? text : `${text}\n`);
  const emit = (command: string, data: Record<string, unknown>) => print(JSON.stringify({ ...data, type: 'debug', command }));
  let reportShown: DivergenceReport | null = session.divergence;

  const showReportIfNew = () => {
    const report = session.divergence;
    if (!report || report === reportShown) return false;
    reportShown = report;
    if (json) print(JSON.stringify({ type: 'divergence', ...report }));
    else print(formatDivergenceReport(report));
    return true;
  };

  const afterMove = async (command: string, outcome: MoveOutcome, ms: number) => {
    const info = await session.info();
    const fresh = showReportIfNew();
    if (json) emit(command, { outcome, ms: Math.round(ms * 10) / 10, seq: info.seq, atEnd: info.atEnd, info });
    else {
      const note = outcome === 'diverged' && !fresh ? ` (cannot go past the divergent task at seq ${session.divergence?.task?.startSeq ?? info.seq}: 'report' shows why)` : '';
      print(`${describePoint(info)}${note}  [${ms.toFixed(1)} ms]`);
    }
    if (outcome === 'end') options.onEnd(await session.summary());
  };

  const move = async (command: string, run: () => Promise<MoveOutcome>) => {
    options.onMoveStart?.();
    const started = performance.now();
    let outcome: MoveOutcome;
    try {
      outcome = await run();
    } finally {
      options.onMoveEnd?.();
    }
    await afterMove(command, outcome, performance.now() - started);
  };

  const handle = async (line: string): Promise<boolean> => {
    const { name, arg } = parse(line);
    if (name === '') return true;
    if (!options.interactive && !json) print(`(ftjs) ${line.trim()}`);
    try {
      switch (name) {
        case 'help':
          if (json) emit('help', { text: DEBUGGER_HELP });
          else print(DEBUGGER_HELP);
          break;
        case 'info': {
          const info = await session.info();
          if (json) emit('info', { info });
          else print(infoText(info));
          break;
        }
        case 'events': {
          const n = count(arg, 5);
          const events = await session.events(n, n);
          if (json) emit('events', { seq: session.point, events });
          else {
            print(`  ${'seq'.padEnd(9)} ${'kind'.padEnd(11)} ${'pos'.padEnd(12)} ${'guest time'.padEnd(12)} payload`);
            for (const e of events) print(`${e.current ? '>' : ' '} ${String(e.seq).padEnd(9)} ${e.kind.padEnd(11)} ${String(e.pos).padEnd(12)} ${clockTime(e.timeMs).padEnd(12)} ${e.summary}`);
            if (events.length === 0) print('  (no entries here)');
          }
          break;
        }
        case 'next': {
          const n = count(arg, 1);
          await move('next', () => session.next(n));
          break;
        }
        case 'step': {
          const n = count(arg, 1);
          await move('step', () => session.step(n));
          break;
        }
        case 'goto': {
          const m = /^(?:pos\s+|@)(\d+)$/i.exec(arg);
          if (m) {
            await move('goto', () => session.gotoPos(Number(m[1])));
            break;
          }
          if (!/^\d+$/.test(arg)) throw new UsageError('goto takes a seq (goto 120) or a position (goto pos 5000000)');
          await move('goto', () => session.goto(Number(arg)));
          break;
        }
        case 'eval': {
          if (arg === '') throw new UsageError('eval takes an expression: eval globalThis.counter');
          const started = performance.now();
          const result = await session.eval(arg);
          const ms = performance.now() - started;
          const { type: valueType, ...rest } = result;
          if (json) emit('eval', { seq: session.point, expr: arg, ms: Math.round(ms * 10) / 10, ...rest, valueType });
          else {
            for (const l of result.console) print(`  ${l.level}: ${l.text}`);
            print(`${result.ok ? '=' : '!'} ${result.value}`);
            if (result.interrupted) print('  (interrupted: the expression ran past its time budget)');
            if (result.outputsDiscarded > 0) print(`  (${result.outputsDiscarded} outputs the expression produced were discarded)`);
          }
          break;
        }
        case 'outputs': {
          const { records, total, forgotten } = session.outputs(count(arg, 10));
          if (json) emit('outputs', { seq: session.point, total, forgotten, outputs: records.map((r) => ({ seq: r.seq, endSeq: r.endSeq, ...outputSummary(r.output), bodyBytes: r.bodyBytes })) });
          else {
            print(`${total} outputs up to here${forgotten ? ` (the oldest ${forgotten} are no longer kept)` : ''}; the last ${records.length}:`);
            for (const r of records) {
              const o = outputSummary(r.output);
              print(`  seq ${String(r.seq).padEnd(8)} ${o.kind === 'fetch' ? `fetch #${o.id} ${o.method} ${o.url}` : `${o.kind} #${o.id}${o.status !== undefined ? ` ${o.status}` : ''}`}  ${o.body}`);
            }
          }
          break;
        }
        case 'console': {
          const { records, total, forgotten } = session.consoleLines(count(arg, 10));
          if (json) emit('console', { seq: session.point, total, forgotten, lines: records.map((r) => ({ seq: r.endSeq, level: r.line.level, text: r.line.text })) });
          else {
            print(`${total} console lines up to here${forgotten ? ` (the oldest ${forgotten} are no longer kept)` : ''}; the last ${records.length}:`);
            for (const r of records) print(`  [seq ${r.endSeq}] ${r.line.level}: ${r.line.text}`);
          }
          break;
        }
        case 'report': {
          const report = session.divergence;
          if (json) print(JSON.stringify(report ? { type: 'divergence', ...report } : { type: 'debug', command: 'report', divergence: null }));
          else print(report ? formatDivergenceReport(report) : 'the replay has not diverged (so far)');
          break;
        }
        case 'continue':
          await move('continue', () => session.continue());
          break;
        case 'quit':
          if (json) emit('quit', { seq: session.point });
          return false;
        default:
          throw new UsageError(`unknown command "${name}" (help lists them)`);
      }
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      if (json) emit(name, { ok: false, error: error.message });
      else print(`error: ${error.message}`);
    }
    return true;
  };

  const rl = createInterface({ input: options.input, output: options.interactive ? options.output : undefined, terminal: options.interactive, prompt: '(ftjs) ' });
  if (options.interactive) {
    rl.on('SIGINT', () => rl.close());
    rl.prompt();
  }
  try {
    for await (const line of rl) {
      if (!(await handle(line))) break;
      if (options.interactive) rl.prompt();
    }
  } finally {
    rl.close();
  }
}

function outputSummary(o: import('../../hypervisor/vm/vm.js').Output): { kind: string; id: number; status?: number; method?: string; url?: string; body: string; bodyBytes: number } {
  const body = bodyPreview(o.body, 120);
  switch (o.kind) {
    case 'fetch':
      return { kind: 'fetch', id: o.fetchId, method: o.method, url: o.url, body, bodyBytes: o.body.byteLength };
    case 'response':
    case 'head':
      return { kind: o.kind, id: o.requestId, status: o.status, body, bodyBytes: o.body.byteLength };
    default:
      return { kind: o.kind, id: o.requestId, body, bodyBytes: o.body.byteLength };
  }
}
