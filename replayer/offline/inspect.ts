// `ftjs inspect`: what a trace holds, without replaying it. One pass over every block of every
// segment: entries and bytes by kind, tasks, requests by route, outputs, preemptions, epochs, the
// largest tasks, and the per-task data of the HTML timeline (replayer/offline/inspect-html.ts).
//
// Time: a trace knows the guest's time only where the guest read the clock (a Clock entry). A task's
// time is the first clock value it read or, when it read none, the last value read before it; its
// duration is the clock span it saw itself (0 when it read the clock at most once). Its work is the
// position span from its start to its end (interrupt polls: the VM's deterministic instruction count).

import { decodeClockReading, decodeEpochMark, decodeRequestEvent, decodeTaskEnd } from '../../logging-channel/codec.js';
import { isControl, isTaskStart, Kind, kindName } from '../../logging-channel/entry.js';
import type { TraceHeader } from '../../logging-channel/trace-format.js';
import type { TraceTruncation } from '../../logging-channel/trace-reader.js';
import { openTraceSegments } from '../../logging-channel/trace-segments.js';
import { describePayload, routeOf } from '../entry-view.js';

export interface TaskMark {
  /** Seq of the start entry and of the TaskEnd. */
  seq: number;
  endSeq: number;
  kind: string;
  /** Guest time (ms since the epoch) and the clock span the task saw. */
  timeMs: number;
  durationMs: number;
  /** Position span of the task (interrupt polls). */
  work: number;
  entries: number;
  /** Bytes of the task's entry payloads. */
  bytes: number;
  /** Outputs and console lines (the TaskEnd's count). */
  outputs: number;
  preempted: boolean;
  /** The task read the clock itself (its time is exact); else it carries the last time read before it. */
  timed: boolean;
  label: string;
}

export interface InspectReport {
  trace: string;
  segments: string[];
  fileBytes: number;
  header: { guest: string; guestHash: string; node: string | null; createdAt: string; engine: string };
  seqs: { first: number; last: number };
  positions: { first: number; last: number };
  /** Guest time: first and last clock value in the trace (null if the guest never read the clock). */
  time: { firstMs: number; lastMs: number; spanMs: number; clockReadings: number } | null;
  entries: { total: number; byKind: Record<string, { count: number; payloadBytes: number }> };
  tasks: { total: number; byKind: Record<string, number>; incompleteFromSeq: number | null };
  requests: { total: number; byRoute: Array<{ route: string; count: number }> };
  outputs: {
    total: number;
    maxPerTask: number;
    /**
     * From the outputs the trace keeps (format 2; null for a trace that keeps only hashes): tasks with a
     * record, responses by status, outbound fetches, records cut to the per-task cap.
     */
    /** responsesByStatus counts streamed responses by their head; streamChunks counts their chunks. */
    recorded: { tasks: number; responsesByStatus: Record<string, number>; fetches: number; streamChunks: number; truncated: number; maxBytesPerTask: number } | null;
  };
  preemptions: Array<{ seq: number; taskSeq: number; label: string }>;
  epochs: Array<{ seq: number; epoch: number; nodeId: string }>;
  stateHashes: number;
  largestTasks: { byWork: TaskMark[]; byBytes: TaskMark[] };
  /** Log bytes (payloads) per second of guest time, from the task times. */
  bytesPerSecond: Array<{ second: number; bytes: number }>;
  truncated: TraceTruncation | null;
  /** Every task, in order (for the HTML timeline). */
  marks: TaskMark[];
}

export interface InspectOptions {
  lenient?: boolean;
  /** How many largest tasks to list. */
  top?: number;
}

/** Framing bytes of one entry in a block, roughly (kind, position delta, length). */
const ENTRY_FRAMING = 4;

export async function inspectTrace(path: string, options: InspectOptions = {}): Promise<InspectReport> {
  const recorded = { tasks: 0, responsesByStatus: {} as Record<string, number>, fetches: 0, streamChunks: 0, truncated: 0 };
  const reader = await openTraceSegments(path, {
    lenient: options.lenient ?? false,
    onOutputs: (block) => {
      for (const r of block.records) {
        recorded.tasks++;
        if (r.truncated) recorded.truncated++;
        for (const o of r.outputs) {
          if (o.kind === 'fetch') recorded.fetches++;
          else if (o.kind === 'chunk') recorded.streamChunks++;
          else if (o.kind === 'response' || o.kind === 'head') recorded.responsesByStatus[o.status] = (recorded.responsesByStatus[o.status] ?? 0) + 1;
        }
      }
    },
  });
  const header: TraceHeader = reader.header;
  const byKind: Record<string, { count: number; payloadBytes: number }> = {};
  const tasksByKind: Record<string, number> = {};
  const routes = new Map<string, number>();
  const marks: TaskMark[] = [];
  const preemptions: InspectReport['preemptions'] = [];
  const epochs: InspectReport['epochs'] = [];
  let stateHashes = 0;
  let total = 0;
  let firstSeq = 0;
  let lastSeq = 0;
  let firstPos = -1;
  let lastPos = 0;
  let clock = 0;
  let firstClock = 0;
  let clockReadings = 0;
  let outputsTotal = 0;
  let outputsMax = 0;
  let requests = 0;
  let current: (TaskMark & { startPos: number }) | null = null;

  try {
    for await (const block of reader) {
      for (const e of block.entries) {
        total++;
        if (firstSeq === 0) firstSeq = e.seq;
        lastSeq = e.seq;
        if (firstPos < 0) firstPos = e.pos;
        lastPos = e.pos;
        const name = kindName[e.kind] ?? String(e.kind);
        const k = (byKind[name] ??= { count: 0, payloadBytes: 0 });
        k.count++;
        k.payloadBytes += e.payload.byteLength;
        if (e.kind === Kind.Clock) {
          const reading = decodeClockReading(e.payload);
          // The first reading (the Math.random seed) carries a random fraction: the guest sees its integer part.
          clock = reading.readIndex === 0 ? Math.floor(reading.timeMs) : reading.timeMs;
          clockReadings++;
          if (firstClock === 0) firstClock = clock;
        }
        if (isControl(e.kind)) {
          if (e.kind === Kind.Epoch) {
            const mark = decodeEpochMark(e.payload);
            epochs.push({ seq: e.seq, epoch: mark.epoch, nodeId: mark.nodeId });
          } else if (e.kind === Kind.StateHash) stateHashes++;
          continue;
        }
        if (isTaskStart(e.kind)) {
          current = {
            seq: e.seq,
            endSeq: e.seq,
            kind: name,
            timeMs: clock,
            durationMs: 0,
            work: 0,
            entries: 0,
            bytes: 0,
            outputs: 0,
            preempted: false,
            timed: false,
            label: describePayload(e),
            startPos: e.pos,
          };
          tasksByKind[name] = (tasksByKind[name] ?? 0) + 1;
          if (e.kind === Kind.Request) {
            requests++;
            const r = decodeRequestEvent(e.payload);
            const route = routeOf(r.method, r.url);
            routes.set(route, (routes.get(route) ?? 0) + 1);
          }
        }
        if (!current) continue; // malformed: an input outside a task (replay reports it)
        current.entries++;
        current.bytes += e.payload.byteLength + ENTRY_FRAMING;
        if (e.kind === Kind.Clock) {
          if (!current.timed) current.timeMs = clock;
          current.timed = true;
          current.durationMs = clock - current.timeMs;
        } else if (e.kind === Kind.Preempt) {
          current.preempted = true;
          preemptions.push({ seq: e.seq, taskSeq: current.seq, label: current.label });
        } else if (e.kind === Kind.TaskEnd) {
          const end = decodeTaskEnd(e.payload);
          current.outputs = end.outputCount;
          current.endSeq = e.seq;
          current.work = e.pos - current.startPos;
          outputsTotal += end.outputCount;
          outputsMax = Math.max(outputsMax, end.outputCount);
          const { startPos: _p, ...mark } = current;
          marks.push(mark);
          current = null;
        }
      }
    }
  } finally {
    await reader.close();
  }

  const top = options.top ?? 10;
  const bySecond = new Map<number, number>();
  for (const m of marks) {
    const second = Math.floor(m.timeMs / 1000);
    bySecond.set(second, (bySecond.get(second) ?? 0) + m.bytes);
  }
  return {
    trace: path,
    segments: reader.paths,
    fileBytes: reader.fileBytes,
    header: {
      guest: header.guest.entry,
      guestHash: header.guest.hash,
      node: header.node ?? null,
      createdAt: header.createdAt,
      engine: `${header.engine.name}@${header.engine.version}`,
    },
    seqs: { first: firstSeq, last: lastSeq },
    positions: { first: Math.max(0, firstPos), last: lastPos },
    time: clockReadings > 0 ? { firstMs: firstClock, lastMs: clock, spanMs: clock - firstClock, clockReadings } : null,
    entries: { total, byKind },
    tasks: { total: marks.length, byKind: tasksByKind, incompleteFromSeq: current ? current.seq : null },
    requests: { total: requests, byRoute: [...routes].map(([route, count]) => ({ route, count })).sort((a, b) => b.count - a.count || (a.route < b.route ? -1 : 1)) },
    outputs: { total: outputsTotal, maxPerTask: outputsMax, recorded: header.outputs ? { ...recorded, maxBytesPerTask: header.outputs.maxBytesPerTask } : null },
    preemptions,
    epochs,
    stateHashes,
    largestTasks: {
      byWork: [...marks].sort((a, b) => b.work - a.work).slice(0, top),
      byBytes: [...marks].sort((a, b) => b.bytes - a.bytes).slice(0, top),
    },
    bytesPerSecond: [...bySecond].sort((a, b) => a[0] - b[0]).map(([second, bytes]) => ({ second, bytes })),
    truncated: reader.truncated ?? null,
    marks,
  };
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function fmtDuration(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** The report as text. */
export function formatInspectReport(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`trace ${r.trace}${r.segments.length > 1 ? ` (${r.segments.length} segments)` : ''}: ${fmtBytes(r.fileBytes)}`);
  lines.push(`  guest ${r.header.guest} (${r.header.guestHash.slice(0, 12)}), recorded by ${r.header.node ?? 'unknown node'} at ${r.header.createdAt}, ${r.header.engine}`);
  lines.push(`  seqs ${r.seqs.first}..${r.seqs.last}, positions ${r.positions.first}..${r.positions.last}`);
  lines.push(
    r.time
      ? `  guest time ${new Date(r.time.firstMs).toISOString()} .. ${new Date(r.time.lastMs).toISOString()} (${fmtDuration(r.time.spanMs)}, ${r.time.clockReadings} clock readings)`
      : '  guest time: unknown (the guest never read the clock)',
  );
  if (r.truncated) lines.push(`  truncated at byte ${r.truncated.atOffset}: ${r.truncated.reason}`);
  lines.push(`entries: ${r.entries.total}`);
  for (const [kind, k] of Object.entries(r.entries.byKind).sort((a, b) => b[1].count - a[1].count)) {
    lines.push(`  ${kind.padEnd(12)} ${String(k.count).padStart(9)}  ${fmtBytes(k.payloadBytes).padStart(10)} payload`);
  }
  lines.push(
    `tasks: ${r.tasks.total} (${Object.entries(r.tasks.byKind)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')})${r.tasks.incompleteFromSeq !== null ? `; the trace ends inside the task at seq ${r.tasks.incompleteFromSeq}` : ''}`,
  );
  lines.push(`requests by route: ${r.requests.total}`);
  for (const { route, count } of r.requests.byRoute.slice(0, 20)) lines.push(`  ${String(count).padStart(9)}  ${route}`);
  if (r.requests.byRoute.length > 20) lines.push(`  ... ${r.requests.byRoute.length - 20} more routes`);
  const rec = r.outputs.recorded;
  if (rec) {
    const statuses = Object.entries(rec.responsesByStatus)
      .map(([status, count]) => `${status}: ${count}`)
      .join(', ');
    lines.push(`outputs and console lines: ${r.outputs.total} (at most ${r.outputs.maxPerTask} in one task)`);
    lines.push(
      `  kept in the trace for ${rec.tasks} tasks (up to ${rec.maxBytesPerTask} bytes each${rec.truncated ? `; ${rec.truncated} cut to it` : ''}): responses by status ${statuses || 'none'}${rec.streamChunks ? ` (${rec.streamChunks} streamed chunks)` : ''}; ${rec.fetches} outbound fetches`,
    );
  } else {
    lines.push(`outputs and console lines: ${r.outputs.total} (at most ${r.outputs.maxPerTask} in one task; the trace holds their count and hash, not their bodies)`);
  }
  lines.push(`preemptions: ${r.preemptions.length}`);
  for (const p of r.preemptions.slice(0, 10)) lines.push(`  seq ${p.seq} in the task at seq ${p.taskSeq}: ${p.label}`);
  if (r.epochs.length > 0) lines.push(`epochs: ${r.epochs.map((e) => `${e.epoch} by ${e.nodeId} at seq ${e.seq}`).join('; ')}`);
  lines.push(`state hashes: ${r.stateHashes}`);
  lines.push('largest tasks by work (interrupt polls):');
  for (const m of r.largestTasks.byWork) lines.push(`  seq ${String(m.seq).padEnd(9)} ${String(m.work).padStart(12)} polls  ${m.kind} ${m.label}${m.preempted ? ' [preempted]' : ''}`);
  lines.push('largest tasks by log bytes:');
  for (const m of r.largestTasks.byBytes) lines.push(`  seq ${String(m.seq).padEnd(9)} ${fmtBytes(m.bytes).padStart(12)}  ${m.kind} ${m.label}`);
  return lines.join('\n');
}
