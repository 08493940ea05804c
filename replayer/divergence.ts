// Divergence reports: what the operator needs to see when a replay disagrees with its recording.
//
// The log holds the inputs of every task and a hash of its outputs. The report shows the actual outputs
// (bodies in full, up to a bound), the console lines and guest exception stacks of the divergent task,
// the event that started it and every entry of the task, decoded, and a readable diff of expected
// against actual outputs. The expected side is what the recording node emitted, when the trace keeps
// it (outputs blocks, format 2: logging-channel/task-outputs.ts; cut to a per-task cap, and then the
// comparison stops where the recorded bytes stop). For an older trace, which keeps only the hash, the
// session replays the task again from the same state without test fault injection, and uses that run
// only if it reproduces the recorded output hash; otherwise there is no expected side.

import type { Divergence } from '../hypervisor/vm/port.js';
import type { ConsoleLine, Output, TaskResult } from '../hypervisor/vm/vm.js';
import type { Entry } from '../logging-channel/entry.js';
import { Kind } from '../logging-channel/entry.js';
import { cutUtf8, type TaskOutputsRecord } from '../logging-channel/task-outputs.js';
import { describeEntry, type EntryView } from './entry-view.js';

const MAX_BODY_CHARS = 64 * 1024;
const MAX_TASK_ENTRIES = 200;

/** An output as shown. `bodyKeptBytes`: set when only that many of bodyBytes were recorded (the trace's cap). */
export type OutputView = (
  | { kind: 'response'; requestId: number; status: number; statusText: string; headers: Array<[string, string]>; body: string; bodyBytes: number }
  | { kind: 'fetch'; fetchId: number; method: string; url: string; headers: Array<[string, string]>; body: string; bodyBytes: number }
  // A part of a streamed response: head (status, headers), chunk (body) or end (error or null).
  | { kind: 'head' | 'chunk' | 'end'; requestId: number; status: number; statusText: string; error: string | null; headers: Array<[string, string]>; body: string; bodyBytes: number }
) & { bodyKeptBytes?: number; headersOmitted?: number };

export interface TaskOutputs {
  outputs: OutputView[];
  console: ConsoleLine[];
  /** Recorded outputs only: console lines not kept (past the cap). */
  consoleOmitted?: number;
  /** Recorded outputs only: something was cut to the trace's per-task cap. */
  truncated?: boolean;
}

export interface DivergenceReport {
  divergence: Divergence;
  task: { startSeq: number; endSeq: number; kind: string; start: EntryView; entries: EntryView[]; entriesOmitted: number } | null;
  actual: TaskOutputs | null;
  expected: TaskOutputs | null;
  /** Where the expected outputs come from, or why there are none. */
  expectedNote: string;
  /** 'recorded': kept in the trace by the recording node; 'rerun': a re-run without fault injection. */
  expectedSource: 'recorded' | 'rerun' | null;
  /** Expected against actual, line by line ('- ' expected only, '+ ' actual only, '  ' both). */
  diff: string[] | null;
  /** Guest exceptions the task raised (console lines of uncaught errors, with their stacks). */
  exceptions: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function outputView(o: Output | TaskOutputsRecord['outputs'][number]): OutputView {
  const body = utf8.decode(o.body.subarray(0, MAX_BODY_CHARS * 4));
  const clipped = body.length > MAX_BODY_CHARS ? `${body.slice(0, MAX_BODY_CHARS)}… (${o.body.byteLength} bytes)` : body;
  switch (o.kind) {
    case 'response':
      return { kind: 'response', requestId: o.requestId, status: o.status, statusText: o.statusText, headers: o.headers, body: clipped, bodyBytes: o.body.byteLength };
    case 'fetch':
      return { kind: 'fetch', fetchId: o.fetchId, method: o.method, url: o.url, headers: o.headers, body: clipped, bodyBytes: o.body.byteLength };
    default: {
      const head = o.kind === 'head' ? o : null;
      const error = 'error' in o ? o.error : null;
      return { kind: o.kind, requestId: o.requestId, status: head?.status ?? 0, statusText: head?.statusText ?? '', error, headers: head?.headers ?? [], body: clipped, bodyBytes: o.body.byteLength };
    }
  }
}

function outputsOf(result: TaskResult): TaskOutputs {
  return { outputs: result.outputs.map(outputView), console: result.console };
}

/** Recorded outputs as views: a cut body says how many of its bytes were kept. */
export function recordedOutputs(record: TaskOutputsRecord): TaskOutputs {
  const outputs = record.outputs.map((o) => {
    const view: OutputView = outputView(o);
    view.bodyBytes = o.bodyBytes;
    if (o.body.byteLength < o.bodyBytes) view.bodyKeptBytes = o.body.byteLength;
    if (o.headersOmitted > 0) view.headersOmitted = o.headersOmitted;
    return view;
  });
  const console = record.console.map((l) => ({ level: l.level as ConsoleLine['level'], text: Buffer.byteLength(l.text, 'utf8') < l.textBytes ? `${l.text}…` : l.text }));
  return { outputs, console, consoleOmitted: record.consoleOmitted, truncated: record.truncated };
}

/**
 * The actual outputs as the recorded ones can be compared with them: where the recording kept only a
 * prefix (of a body, of a console line, of the console lines), the actual is cut the same way.
 */
function comparableActual(actual: TaskResult, expected: TaskOutputs): TaskOutputs {
  const outputs = actual.outputs.map((o, i) => {
    const kept = expected.outputs[i]?.bodyKeptBytes;
    const view = outputView(kept !== undefined && kept < o.body.byteLength ? { ...o, body: o.body.subarray(0, kept) } : o);
    view.bodyBytes = o.body.byteLength;
    if (kept !== undefined) view.bodyKeptBytes = Math.min(kept, o.body.byteLength);
    const omitted = expected.outputs[i]?.headersOmitted;
    if (omitted !== undefined) {
      view.headers = view.headers.slice(0, Math.max(0, view.headers.length - omitted));
      view.headersOmitted = omitted;
    }
    return view;
  });
  const keptLines = expected.console.length;
  const console = (expected.consoleOmitted ?? 0) > 0 ? actual.console.slice(0, keptLines) : actual.console.slice();
  for (let i = 0; i < console.length && i < keptLines; i++) {
    const e = expected.console[i]!.text;
    if (e.endsWith('…')) {
      const cut = cutUtf8(console[i]!.text, Buffer.byteLength(e.slice(0, -1), 'utf8'));
      if (cut !== console[i]!.text) console[i] = { ...console[i]!, text: `${cut}…` };
    }
  }
  return { outputs, console };
}

export function buildDivergenceReport(input: {
  divergence: Divergence;
  task: Entry[] | null;
  clockBefore?: number;
  actual: TaskResult | null;
  reference: TaskResult | null;
  /** What the recording node emitted (the trace's outputs record): preferred to `reference`. */
  recorded?: TaskOutputsRecord | null;
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
  const expectedSource = input.recorded ? 'recorded' : input.reference ? 'rerun' : null;
  const expected = input.recorded ? recordedOutputs(input.recorded) : input.reference ? outputsOf(input.reference) : null;
  const exceptions = (actual?.console ?? []).filter((l) => l.level === 'error' && /^Uncaught|Error:/.test(l.text)).map((l) => l.text);
  let diff: string[] | null = null;
  if (expected && input.actual) diff = diffOutputs(expected, input.recorded ? comparableActual(input.actual, expected) : actual!);
  return {
    divergence: input.divergence,
    task,
    actual,
    expected,
    expectedNote: input.referenceNote,
    expectedSource,
    diff,
    exceptions,
  };
}

// ------------------------------------------------------------------ diff

function outputTitle(o: OutputView): string {
  if (o.kind === 'fetch') return `outbound fetch #${o.fetchId}`;
  if (o.kind === 'response') return `response to request #${o.requestId}`;
  return `streamed response to request #${o.requestId} (${o.kind})`;
}

/** The first line describing an output: its status, its request line, or how its stream ended. */
function outputLine(o: OutputView): string {
  if (o.kind === 'fetch') return `${o.method} ${o.url}`;
  if (o.kind === 'response' || o.kind === 'head') return `${o.status} ${o.statusText}`.trimEnd();
  if (o.kind === 'end') return o.error === null ? 'end' : `end with error: ${o.error}`;
  return 'chunk';
}

function metaLines(o: OutputView): string[] {
  const lines = o.kind === 'response' || o.kind === 'head' ? [`status: ${outputLine(o)}`] : [outputLine(o)];
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
  // An item can span several lines (a console line with a stack): each of them gets the marker.
  const push = (marker: string, line: string) => {
    const physical = line.split('\n');
    if (physical.length > 1 && physical[physical.length - 1] === '') physical.pop();
    for (const l of physical) out.push(`${marker}${l}`);
  };
  // Context: up to 3 common lines before and after the change.
  const context = (lines: string[]) => {
    for (const l of lines) push('  ', l);
  };
  if (start > 3) out.push(`  … ${start - 3} equal lines`);
  context(a.slice(Math.max(0, start - 3), start));
  if (midA.length * midB.length > 4_000_000) {
    for (const l of midA) push('- ', l);
    for (const l of midB) push('+ ', l);
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
        push('  ', midA[i]!);
        i++;
        j++;
      } else if (i < n && (j === m || table[i + 1]![j]! >= table[i]![j + 1]!)) push('- ', midA[i++]!);
      else push('+ ', midB[j++]!);
    }
  }
  const tail = a.slice(endA);
  context(tail.slice(0, 3));
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
      for (const line of [...metaLines(only), '', ...bodyLines(only.body)]) for (const physical of line.split('\n')) out.push(`${e ? '-' : '+'} ${physical}`);
      continue;
    }
    const metaE = metaLines(e);
    const metaA = metaLines(a);
    const bodyE = bodyLines(e.body);
    const bodyA = bodyLines(a.body);
    const sameMeta = metaE.join('\n') === metaA.join('\n') && outputTitle(e) === outputTitle(a);
    const sameBody = e.body === a.body && e.bodyBytes === a.bodyBytes;
    if (sameMeta && sameBody) {
      out.push(`${outputTitle(a)}: identical`);
      continue;
    }
    out.push(outputTitle(e) === outputTitle(a) ? `${outputTitle(a)}:` : `${outputTitle(e)} (expected) / ${outputTitle(a)} (actual):`);
    if (!sameMeta) out.push(...diffLines(metaE, metaA));
    if (e.headersOmitted) out.push(`(the trace kept the first ${metaE.length - 1} headers; ${e.headersOmitted} more not compared)`);
    if (!sameBody) {
      out.push(`body (${e.bodyBytes} bytes expected, ${a.bodyBytes} bytes actual):`);
      if (e.bodyKeptBytes !== undefined) out.push(`(truncated: the trace kept the first ${e.bodyKeptBytes} of the ${e.bodyBytes} bytes expected; compared on those)`);
      if (e.body === a.body) out.push('  (the compared bytes are identical; the lengths differ)');
      else out.push(...diffLines(bodyE, bodyA));
    }
  }
  const consoleE = expected.console.map((l) => `${l.level}: ${l.text}`);
  const consoleA = actual.console.map((l) => `${l.level}: ${l.text}`);
  if (consoleE.join('\n') !== consoleA.join('\n')) {
    out.push('console lines:');
    out.push(...diffLines(consoleE, consoleA));
  }
  if ((expected.consoleOmitted ?? 0) > 0) out.push(`(the trace kept ${expected.console.length} console lines of this task; ${expected.consoleOmitted} more not compared)`);
  return out;
}

// ------------------------------------------------------------------ text

function indent(lines: string[], by = '    '): string[] {
  return lines.map((l) => by + l);
}

function describeOutputs(outputs: TaskOutputs): string[] {
  const lines: string[] = [];
  for (const o of outputs.outputs) {
    lines.push(`${outputTitle(o)}: ${outputLine(o)}, ${o.bodyBytes} bytes`);
    lines.push(...indent(bodyLines(o.body).slice(0, 40), '  '));
  }
  if (outputs.outputs.length === 0) lines.push('(no outputs)');
  return lines;
}

/** The report as text, for a terminal. */
export function formatDivergenceReport(r: DivergenceReport): string {
  const d = r.divergence;
  const lines = [`DIVERGENCE at seq ${d.seq}, pos ${d.pos} (entry kind ${d.expectedKind})`, `  expected: ${d.expected}`, `  actual:   ${d.actual}`];
  if (r.task) {
    lines.push(`  in the task at seq ${r.task.startSeq}..${r.task.endSeq}, started by ${r.task.kind} ${r.task.start.summary}`);
    lines.push('  entries of the task:');
    for (const e of r.task.entries) lines.push(`    ${e.seq === d.seq ? '>' : ' '} seq ${String(e.seq).padEnd(8)} ${e.kind.padEnd(11)} pos ${String(e.pos).padEnd(12)} ${e.summary}`);
    if (r.task.entriesOmitted > 0) lines.push(`      (${r.task.entriesOmitted} entries not shown)`);
  }
  if (r.diff) {
    const source = r.expectedSource === 'recorded' ? 'recorded in the trace' : r.expectedSource === 'rerun' ? 're-run without fault injection' : 'see below';
    lines.push(`  outputs: expected (-) vs actual (+); expected = ${source}`);
    if (r.expected?.truncated) lines.push(`    (${r.expectedNote})`);
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
