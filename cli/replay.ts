// `ftjs replay`: re-execute a trace and verify it, or stop at a point and debug it there.
// Exit 0 verified (or no divergence seen), 1 divergence, 2 unreadable trace.

import { type Command, InvalidArgumentError } from 'commander';
import { BootConfigError } from '../hypervisor/vm/boot-config.js';
import { TraceError } from '../logging-channel/trace-format.js';
import { formatDivergenceReport } from '../replayer/divergence.js';
import { runDebugger } from '../replayer/offline/debugger.js';
import { DEFAULT_MAX_CHECKPOINT_BYTES, DEFAULT_MAX_CHECKPOINTS, ReplayNotReproducibleError, ReplaySession, type ReplaySummary } from '../replayer/offline/session.js';
import { MalformedLogError as BadTraceError } from '../replayer/task-assembler.js';
import { positiveInt } from './options.js';
import { ProgressBar } from './progress.js';

interface ReplayFlags {
  json?: boolean;
  lenient?: boolean;
  quiet?: boolean;
  until?: number;
  untilPos?: number;
  checkpointTasks?: number;
  checkpointMs: number;
  maxCheckpoints: number;
  maxCheckpointMb: number;
  evalTimeoutMs: number;
  progress: boolean;
}

export const EXIT_DIVERGED = 1;
export const EXIT_BAD_TRACE = 2;

function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${value}"`);
    return n;
  };
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .summary('re-execute a trace and verify it bit for bit, or debug it')
    .description(
      'Boot the recorded guest and re-execute every task from the recorded inputs, printing the guest console as the recording printed it, verifying every output hash, position and state hash. ' +
        'A rotated trace (file, file.1, file.2, ...) is read as one: pass its first file.\n' +
        'With --until or --until-pos, replay to that point and open the replay debugger there: a prompt when stdin is a terminal, otherwise commands are read from stdin, one per line (`help` lists them).\n' +
        'On a divergence, print a report (the divergent task, its entries, its outputs against the expected ones when they can be had, its console lines and guest exceptions); on a terminal the debugger then opens at the start of that task.\n' +
        'Exit codes: 0 verified; 1 divergence (the first divergent seq is named); 2 the file is not a readable trace (corrupt, truncated, foreign or from another engine).',
    )
    .argument('<trace>', 'trace file written by --record / --trace (the first file of a rotated trace)')
    .option('--json', 'machine-readable output: JSON lines (console, divergence, debug command results, summary)')
    .option('--lenient', 'replay up to the last good block of a truncated or torn trace instead of failing')
    .option('-q, --quiet', 'do not print the guest console')
    .option('--until <seq>', 'replay up to (just before) entry seq, then open the debugger', positiveInt('--until'))
    .option('--until-pos <pos>', 'replay up to the first entry at VM position pos or later, then open the debugger', nonNegativeInt('--until-pos'))
    .option('--checkpoint-tasks <n>', 'debugger: take an in-memory checkpoint every n tasks (default: every --checkpoint-ms of replay)', positiveInt('--checkpoint-tasks'))
    .option('--checkpoint-ms <ms>', 'debugger: take an in-memory checkpoint after this much replay time (when --checkpoint-tasks is not given)', positiveInt('--checkpoint-ms'), 100)
    .option('--max-checkpoints <n>', 'checkpoints kept at most (the most crowded one is dropped first)', positiveInt('--max-checkpoints'), DEFAULT_MAX_CHECKPOINTS)
    .option('--max-checkpoint-mb <mb>', 'memory all checkpoints may hold together', positiveInt('--max-checkpoint-mb'), DEFAULT_MAX_CHECKPOINT_BYTES / 1024 / 1024)
    .option('--eval-timeout-ms <ms>', 'debugger: time budget of one eval', positiveInt('--eval-timeout-ms'), 2000)
    .option('--no-progress', 'no progress bar (it is shown only when stderr is a terminal)')
    .action(async (trace: string, flags: ReplayFlags) => {
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const json = flags.json === true;
      const debug = flags.until !== undefined || flags.untilPos !== undefined;
      const interactive = process.stdin.isTTY === true && !json;
      const progress = new ProgressBar(process.stderr, flags.progress && !json);
      const printConsole = !flags.quiet && !debug;
      let session: ReplaySession | null = null;
      try {
        session = await ReplaySession.open(trace, {
          lenient: flags.lenient ?? false,
          batchTasks: debug ? 64 : 256,
          // Plain verification needs checkpoints only to rewind to a divergent task: fewer of them.
          checkpointMs: debug || interactive ? flags.checkpointMs : Math.max(flags.checkpointMs, 1000),
          ...(flags.checkpointTasks !== undefined ? { checkpointTasks: flags.checkpointTasks } : {}),
          maxCheckpoints: flags.maxCheckpoints,
          maxCheckpointBytes: flags.maxCheckpointMb * 1024 * 1024,
          evalBudgetMs: flags.evalTimeoutMs,
          onProgress: (p) => progress.update(p),
          ...(printConsole
            ? {
                onConsole: (line, seq) => {
                  progress.clear();
                  if (json) out(JSON.stringify({ type: 'console', seq, level: line.level, text: line.text }));
                  else out(`[seq ${seq}] ${line.level}: ${line.text}`);
                },
              }
            : {}),
        });
        const s = session;
        const printSummary = (summary: ReplaySummary) => {
          progress.clear();
          if (json) {
            out(JSON.stringify({ type: 'summary', ok: summary.divergence === null, ...summary }));
          } else if (summary.divergence) {
            process.stderr.write(`  ${summary.tasks} tasks verified before it.\n`);
          } else {
            out(
              `verified ${summary.tasks} tasks, ${summary.entries} entries${summary.segments > 1 ? ` in ${summary.segments} segments` : ''}, ${summary.outputsVerified} outputs and console lines, ${summary.stateHashesVerified} state hashes ` +
                `in ${summary.replayMs.toFixed(0)} ms; final seq ${summary.lastSeq}, pos ${summary.finalPos}, state ${summary.finalStateHash.slice(0, 16)}`,
            );
            if (summary.truncated) out(`note: trace truncated at byte ${summary.truncated.atOffset} (${summary.truncated.reason}); replayed up to the last good block`);
            if (summary.incompleteTaskFromSeq !== null) out(`note: the trace ends inside the task that starts at seq ${summary.incompleteTaskFromSeq}; that task was not replayed`);
          }
        };
        const printReport = () => {
          progress.clear();
          const report = s.divergence!;
          if (json) out(JSON.stringify({ type: 'divergence', ...report }));
          else process.stderr.write(`${formatDivergenceReport(report)}\n`);
        };

        if (!debug) {
          progress.restart(s.entriesExecuted);
          const outcome = await s.continue();
          progress.clear();
          if (outcome === 'diverged') printReport();
          printSummary(await s.summary());
          if (outcome === 'diverged' && interactive) {
            out(`\nthe debugger is open at the start of the divergent task (seq ${s.point}); 'help' lists the commands`);
            await runDebugger(s, { input: process.stdin, output: process.stdout, json, interactive, onMoveEnd: () => progress.clear(), onEnd: printSummary });
          }
        } else {
          progress.restart(s.entriesExecuted);
          const outcome = flags.until !== undefined ? await s.goto(flags.until) : await s.gotoPos(flags.untilPos!);
          progress.clear();
          if (outcome === 'diverged') printReport();
          const info = await s.info();
          if (json) out(JSON.stringify({ type: 'debug', command: 'until', outcome, seq: info.seq, atEnd: info.atEnd, info }));
          else {
            const { describePoint } = await import('../replayer/offline/debugger.js');
            out(`${describePoint(info)}${interactive ? "   ('help' lists the commands)" : ''}`);
          }
          if (outcome === 'end') printSummary(await s.summary());
          await runDebugger(s, {
            input: process.stdin,
            output: process.stdout,
            json,
            interactive,
            // Each move times itself: entries/s counts from the entries executed before it.
            onMoveStart: () => progress.restart(s.entriesExecuted),
            onMoveEnd: () => progress.clear(),
            onEnd: printSummary,
          });
        }
        process.exitCode = s.divergence ? EXIT_DIVERGED : 0;
      } catch (error) {
        progress.clear();
        const errno = (error as NodeJS.ErrnoException).code;
        if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'EISDIR') {
          const message = `cannot read trace ${trace}: ${errno === 'ENOENT' ? 'no such file' : errno === 'EACCES' ? 'permission denied' : 'is a directory'}`;
          if (json) out(JSON.stringify({ type: 'error', ok: false, error: message, code: errno }));
          else process.stderr.write(`ftjs replay: ${message}\n`);
          process.exitCode = EXIT_BAD_TRACE;
          return;
        }
        if (error instanceof TraceError || error instanceof BadTraceError || error instanceof BootConfigError) {
          if (json) out(JSON.stringify({ type: 'error', ok: false, error: error.message, code: (error as TraceError).code ?? error.name }));
          else process.stderr.write(`ftjs replay: ${error.message}\n`);
          process.exitCode = EXIT_BAD_TRACE;
          return;
        }
        if (error instanceof ReplayNotReproducibleError) {
          if (json) out(JSON.stringify({ type: 'error', ok: false, error: error.message, code: error.name }));
          else process.stderr.write(`ftjs replay: ${error.message}\n`);
          process.exitCode = EXIT_DIVERGED;
          return;
        }
        throw error;
      } finally {
        await session?.close();
      }
    });
}
