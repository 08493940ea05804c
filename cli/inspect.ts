// `ftjs inspect`: summarise a trace without replaying it; --html writes a self-contained timeline page.

import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { TraceError } from '../logging-channel/trace-format.js';
import { formatInspectReport, inspectTrace } from '../replayer/offline/inspect.js';
import { renderInspectHtml } from '../replayer/offline/inspect-html.js';
import { positiveInt } from './options.js';
import { EXIT_BAD_TRACE } from './replay.js';

interface InspectFlags {
  json?: boolean;
  html?: string;
  top: number;
  lenient?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .summary('summarise a trace (and draw its timeline with --html)')
    .description(
      'Read a trace (all its rotated segments) without replaying it and print: its span of guest time, tasks, entries and bytes by kind, requests by route, outputs, preemptions, epochs and the largest tasks. ' +
        'With --html FILE, also write one self-contained HTML page (no network) with a timeline of the tasks over guest time, their durations and work, outputs, preemptions and log bytes per second.\n' +
        'Exit codes: 0; 2 the file is not a readable trace.',
    )
    .argument('<trace>', 'trace file (the first file of a rotated trace)')
    .option('--json', 'print the summary as one JSON object')
    .option('--html <file>', 'write the timeline page to <file>')
    .option('--top <n>', 'how many of the largest tasks to list', positiveInt('--top'), 10)
    .option('--lenient', 'read up to the last good block of a truncated or torn trace')
    .action(async (trace: string, flags: InspectFlags) => {
      try {
        const report = await inspectTrace(trace, { lenient: flags.lenient ?? false, top: flags.top });
        if (flags.html) writeFileSync(flags.html, renderInspectHtml(report));
        if (flags.json) {
          const { marks: _marks, ...rest } = report;
          process.stdout.write(`${JSON.stringify({ ...rest, html: flags.html ?? null })}\n`);
        } else {
          process.stdout.write(`${formatInspectReport(report)}\n`);
          if (flags.html) process.stdout.write(`timeline written to ${flags.html}\n`);
        }
      } catch (error) {
        const errno = (error as NodeJS.ErrnoException).code;
        if (error instanceof TraceError || errno === 'ENOENT' || errno === 'EACCES' || errno === 'EISDIR') {
          process.stderr.write(`ftjs inspect: ${errno === 'ENOENT' ? `cannot read trace ${trace}: no such file` : (error as Error).message}\n`);
          process.exitCode = EXIT_BAD_TRACE;
          return;
        }
        throw error;
      }
    });
}
