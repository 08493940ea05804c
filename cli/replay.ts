// `ftjs replay`: re-execute a trace and verify it. Exit 0 verified, 1 divergence, 2 unreadable trace.

import type { Command } from 'commander';
import { TraceError } from '../logging-channel/trace-file.js';
import { BootConfigError } from '../hypervisor/boot-config.js';
import { BadTraceError, replayTrace } from '../replayer/offline.js';

interface ReplayFlags {
  json?: boolean;
  lenient?: boolean;
  quiet?: boolean;
}

export const EXIT_DIVERGED = 1;
export const EXIT_BAD_TRACE = 2;

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .summary('re-execute a trace and verify it bit for bit')
    .description(
      'Boot the recorded guest and re-execute every task from the recorded inputs, printing the guest console as the recording printed it, verifying every output hash, position and state hash.\n' +
        'Exit codes: 0 verified; 1 divergence (the first divergent seq is named); 2 the file is not a readable trace (corrupt, truncated, foreign or from another engine).',
    )
    .argument('<trace>', 'trace file written by --record')
    .option('--json', 'machine-readable output: JSON lines for console output and a final summary')
    .option('--lenient', 'replay up to the last good block of a truncated or torn trace instead of failing')
    .option('-q, --quiet', 'do not print the guest console')
    .action(async (trace: string, flags: ReplayFlags) => {
      const out = (line: string) => process.stdout.write(`${line}\n`);
      try {
        const summary = await replayTrace(trace, {
          lenient: flags.lenient ?? false,
          onConsole: flags.quiet
            ? undefined
            : (line, seq) => (flags.json ? out(JSON.stringify({ type: 'console', seq, level: line.level, text: line.text })) : out(`[seq ${seq}] ${line.level}: ${line.text}`)),
        });
        if (flags.json) {
          out(JSON.stringify({ type: 'summary', ok: summary.divergence === null, ...summary }));
        } else if (summary.divergence) {
          const d = summary.divergence;
          process.stderr.write(
            `DIVERGENCE at seq ${d.seq}, pos ${d.pos} (entry kind ${d.expectedKind})\n  expected: ${d.expected}\n  actual:   ${d.actual}\n` +
              `  ${summary.tasks} tasks verified before it.\n`,
          );
        } else {
          out(
            `verified ${summary.tasks} tasks, ${summary.entries} entries, ${summary.outputsVerified} outputs and console lines, ${summary.stateHashesVerified} state hashes ` +
              `in ${summary.replayMs.toFixed(0)} ms; final seq ${summary.lastSeq}, pos ${summary.finalPos}, state ${summary.finalStateHash.slice(0, 16)}`,
          );
          if (summary.truncated) out(`note: trace truncated at byte ${summary.truncated.atOffset} (${summary.truncated.reason}); replayed up to the last good block`);
          if (summary.incompleteTaskFromSeq !== null) out(`note: the trace ends inside the task that starts at seq ${summary.incompleteTaskFromSeq}; that task was not replayed`);
        }
        process.exitCode = summary.divergence ? EXIT_DIVERGED : 0;
      } catch (error) {
        const errno = (error as NodeJS.ErrnoException).code;
        if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'EISDIR') {
          const message = `cannot read trace ${trace}: ${errno === 'ENOENT' ? 'no such file' : errno === 'EACCES' ? 'permission denied' : 'is a directory'}`;
          if (flags.json) out(JSON.stringify({ type: 'error', ok: false, error: message, code: errno }));
          else process.stderr.write(`ftjs replay: ${message}\n`);
          process.exitCode = EXIT_BAD_TRACE;
          return;
        }
        if (error instanceof TraceError || error instanceof BadTraceError || error instanceof BootConfigError) {
          if (flags.json) out(JSON.stringify({ type: 'error', ok: false, error: error.message, code: (error as TraceError).code ?? error.name }));
          else process.stderr.write(`ftjs replay: ${error.message}\n`);
          process.exitCode = EXIT_BAD_TRACE;
          return;
        }
        throw error;
      }
    });
}
