// Divergence reports: what the operator needs to see when a replay disagrees with its recording.
//
// A trace holds the inputs of every task and a hash of its outputs, not the outputs themselves. So the
// report shows the actual outputs (bodies in full, up to a bound), the console lines and guest
// exception stacks of the divergent task, the event that started it and every entry of the task,
// decoded. The expected outputs are shown only when they can be obtained honestly: the session replays
// the task again from the same state without test fault injection, and uses that run only if it
// reproduces the recorded output hash. Then the report has a readable diff, expected against actual.

import type { Entry } from '../logging-channel/entry.js';
import { Kind } from '../logging-channel/entry.js';
import type { Divergence } from '../hypervisor/port.js';
import type { ConsoleLine, Output, TaskResult } from '../hypervisor/vm.js';
import { describeEntry, type EntryView } from './entry-view.js';

const MAX_BODY_CHARS = 64 * 1024;
const MAX_TASK_ENTRIES = 200;

export type OutputView =
  | { kind: 'response'; requestId: number; status: number; statusText: string; headers: Array<[string, string]>; body: string; bodyBytes: number }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: Array<[string, string]>; body: string; bodyBytes: number };

export interface TaskOutputs {
  outputs: OutputView[];
  console: ConsoleLine[];
}

export interface DivergenceReport {
  divergence: Divergence;
  task: { startSeq: number; endSeq: number; kind: string; start: EntryView; entries: EntryView[]; entriesOmitted: number } | null;
  actual: TaskOutputs | null;
  expected: TaskOutputs | null;
  /** Where the expected outputs come from, or why there are none. */
  expectedNote: string;
  /** Expected against actual, line by line ('- ' expected only, '+ ' actual only, '  ' both). */
  diff: string[] | null;
  /** Guest exceptions the task raised (console lines of uncaught errors, with their stacks). */
  exceptions: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function outputView(o: Output): OutputView {
  const body = utf8.decode(o.body.subarray(0, MAX_BODY_CHARS * 4));
  const clipped = body.length > MAX_BODY_CHARS ? `${body.slice(0, MAX_BODY_CHARS)}… (${o.body.byteLength} bytes)` : body;
  return o.kind === 'response'
    ? { kind: 'response', requestId: o.requestId, status: o.status, statusText: o.statusText, headers: o.headers, body: clipped, bodyBytes: o.body.byteLength }
    : { kind: 'fetch', fetchId: o.fetchId, method: o.method, url: o.url, headers: o.headers, body: clipped, bodyBytes: o.body.byteLength };
}

function outputsOf(result: TaskResult): TaskOutputs {
  return { outputs: result.outputs.map(outputView), console: result.console };
}

export function buildDivergenceReport(input: {
  divergence: Divergence;
  task: Entry[] | null;
  clockBefore?: number;
  actual: TaskResult | null;
  reference: TaskResult | null;
  referenceNote: string;
}): DivergenceReport {
  let task: DivergenceReport['task'] = null;
  if (input.task) {
    let clock = input.clockBefore ?? 0;
    const views = input.task.map((e) => {
      const v = describeEntry(e, clock);
      if (e.kind === Kind.Clock) clock = v.timeMs;
      return v;
    });
    const start = views[0]!;
    task = {
      startSeq: start.seq,
      endSeq: views[views.length - 1]!.seq,
      kind: start.kind,
      start,
      entries: views.length > MAX_TASK_ENTRIES ? [...views.slice(0, MAX_TASK_ENTRIES - 1), views[views.length - 1]!] : views,
      entriesOmitted: Math.max(0, views.length - MAX_TASK_ENTRIES),
    };
  }
  const actual = input.actual ? outputsOf(input.actual) : null;
  const expected = input.reference ? outputsOf(input.reference) : null;
  const exceptions = (actual?.console ?? []).filter((l) => l.level === 'error' && /^Uncaught|Error:/.test(l.text)).map((l) => l.text);
  return {
    divergence: input.divergence,
    task,
    actual,
    expected,
    expectedNote: input.referenceNote,
    diff: expected && actual ? diffOutputs(expected, actual) : null,
    exceptions,
  };
}

// ------------------------------------------------------------------ diff

function outputTitle(o: OutputView): string {
  return o.kind === 'response' ? `response to request #${o.requestId}` : `outbound fetch #${o.fetchId}`;
}

function metaLines(o: OutputView): string[] {
  const lines = o.kind === 'response' ? [`status: ${o.status} ${o.statusText}`.trimEnd()] : [`${o.method} ${o.url}`];
  for (const [name, value] of o.headers) lines.push(`${name}: ${value}`);
  return lines;
}

/** A body as lines to compare: pretty-printed when it is JSON. */
function bodyLines(body: string): string[] {
  if (body === '') return [];
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null) return JSON.stringify(parsed, null, 2).split('\n');
  } catch {
    /* not JSON */
  }
  return body.split('\n');
}

/** Line diff (LCS); for very long inputs, the common prefix and suffix are kept and the middle differs. */
export function diffLines(a: string[], b: string[]): string[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const out: string[] = [];
  // Context: up to 3 common lines before and after the change.
  const context = (lines: string[]) => lines.map((l) => `  ${l}`);
  if (start > 3) out.push(`  … ${start - 3} equal lines`);
  out.push(...context(a.slice(Math.max(0, start - 3), start)));
  if (midA.length * midB.length > 4_000_000) {
    out.push(...midA.map((l) => `- ${l}`), ...midB.map((l) => `+ ${l}`));
  } else {
    // LCS table over the middle.
    const n = midA.length;
    const m = midB.length;
    const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) table[i]![j] = midA[i] === midB[j] ? table[i + 1]![j + 1]! + 1 : Math.max(table[i + 1]![j]!, table[i]![j + 1]!);
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && midA[i] === midB[j]) {
        out.push(`  ${midA[i]}`);
        i++;
        j++;
      } else if (i < n && (j === m || table[i + 1]![j]! >= table[i]![j + 1]!)) out.push(`- ${midA[i++]}`);
      else out.push(`+ ${midB[j++]}`);
    }
  }
  const tail = a.slice(endA);
  out.push(...context(tail.slice(0, 3)));
  if (tail.length > 3) out.push(`  … ${tail.length - 3} equal lines`);
  return out;
}

function diffOutputs(expected: TaskOutputs, actual: TaskOutputs): string[] {
  const out: string[] = [];
  const count = Math.max(expected.outputs.length, actual.outputs.length);
  for (let i = 0; i < count; i++) {
    const e = expected.outputs[i];
    const a = actual.outputs[i];
    if (!e || !a) {
      const only = (e ?? a)!;
      out.push(`${outputTitle(only)}: only in the ${e ? 'expected' : 'actual'} outputs`);
      for (const line of [...metaLines(only), '', ...bodyLines(only.body)]) out.push(`${e ? '-' : '+'} ${line}`);
      continue;
    }
    const metaE = metaLines(e);
    const metaA = metaLines(a);
    const bodyE = bodyLines(e.body);
    const bodyA = bodyLines(a.body);
    const sameMeta = metaE.join('\n') === metaA.join('\n') && outputTitle(e) === outputTitle(a);
    const sameBody = e.body === a.body;
    if (sameMeta && sameBody) {
      out.push(`${outputTitle(a)}: identical`);
      continue;
    }
    out.push(outputTitle(e) === outputTitle(a) ? `${outputTitle(a)}:` : `${outputTitle(e)} (expected) / ${outputTitle(a)} (actual):`);
    if (!sameMeta) out.push(...diffLines(metaE, metaA));
    if (!sameBody) {
      out.push(`body (${e.bodyBytes} bytes expected, ${a.bodyBytes} bytes actual):`);
      out.push(...diffLines(bodyE, bodyA));
    }
  }
  const consoleE = expected.console.map((l) => `${l.level}: ${l.text}`);
  const consoleA = actual.console.map((l) => `${l.level}: ${l.text}`);
  if (consoleE.join('\n') !== consoleA.join('\n')) {
    out.push('console lines:');
    out.push(...diffLines(consoleE, consoleA));
  }
  return out;
}

// ------------------------------------------------------------------ text

function indent(lines: string[], by = '    '): string[] {
  return lines.map((l) => by + l);
}

function describeOutputs(outputs: TaskOutputs): string[] {
  const lines: string[] = [];
  for (const o of outputs.outputs) {
    lines.push(`${outputTitle(o)}: ${o.kind === 'response' ? `${o.status} ${o.statusText}`.trimEnd() : `${o.method} ${o.url}`}, ${o.bodyBytes} bytes`);
    lines.push(...indent(bodyLines(o.body).slice(0, 40), '  '));
  }
  if (outputs.outputs.length === 0) lines.push('(no outputs)');
  return lines;
}

/** The report as text, for a terminal. */
export function formatDivergenceReport(r: DivergenceReport): string {
  const d = r.divergence;
  const lines = [
    `DIVERGENCE at seq ${d.seq}, pos ${d.pos} (entry kind ${d.expectedKind})`,
    `  expected: ${d.expected}`,
    `  actual:   ${d.actual}`,
  ];
  if (r.task) {
    lines.push(`  in the task at seq ${r.task.startSeq}..${r.task.endSeq}, started by ${r.task.kind} ${r.task.start.summary}`);
    lines.push('  entries of the task:');
    for (const e of r.task.entries) lines.push(`    ${e.seq === d.seq ? '>' : ' '} seq ${String(e.seq).padEnd(8)} ${e.kind.padEnd(11)} pos ${String(e.pos).padEnd(12)} ${e.summary}`);
    if (r.task.entriesOmitted > 0) lines.push(`      (${r.task.entriesOmitted} entries not shown)`);
  }
  if (r.diff) {
    lines.push(`  outputs, expected (-) against actual (+): ${r.expectedNote}`);
    lines.push(...indent(r.diff));
  } else if (!r.task) {
    lines.push(`  ${r.expectedNote}`);
  } else {
    lines.push(`  expected outputs: ${r.expectedNote}`);
    if (r.actual) {
      lines.push('  actual outputs:');
      lines.push(...indent(describeOutputs(r.actual)));
    }
  }
  if (r.actual) {
    lines.push(r.actual.console.length > 0 ? '  console lines of the task (actual):' : '  console lines of the task: none');
    for (const l of r.actual.console) lines.push(...indent(`${l.level}: ${l.text}`.split('\n')));
  }
  if (r.exceptions.length > 0) {
    lines.push('  guest exceptions (with stacks):');
    for (const e of r.exceptions) lines.push(...indent(e.split('\n')));
  }
  return lines.join('\n');
}
