// Offline replay of a trace: boots the recorded guest in a replay-mode VM, re-executes every task
// from the recorded inputs, and verifies every task's position and output hash and every recorded
// state hash. The trace is streamed block by block, so a long trace never sits in memory whole.

import { Kind, type Entry } from '../logging-channel/entry.js';
import { MalformedLogError, TaskAssembler, type Assembled } from './task-assembler.js';
import { openTraceReader, type TraceHeader, type TraceTruncation } from '../logging-channel/trace-file.js';
import { bootConfigFromTrace } from '../hypervisor/boot-config.js';
import type { Divergence } from '../hypervisor/port.js';
import { VmHost } from '../hypervisor/vm-host.js';
import type { ConsoleLine, TaskResult } from '../hypervisor/vm.js';

export interface ReplayOptions {
  /** Replay up to the last good block of a truncated or torn trace instead of failing. */
  lenient?: boolean;
  /** Tasks handed to the worker per message. */
  batchTasks?: number;
  onConsole?: (line: ConsoleLine, seq: number) => void;
  onProgress?: (entries: number, tasks: number) => void;
}

export interface ReplaySummary {
  trace: string;
  guest: string;
  tasks: number;
  entries: number;
  outputsVerified: number;
  stateHashesVerified: number;
  finalStateHash: string;
  finalPos: number;
  lastSeq: number;
  replayMs: number;
  truncated: TraceTruncation | null;
  /** The trace ends inside a task (crash while writing): that task was not replayed. */
  incompleteTaskFromSeq: number | null;
  divergence: Divergence | null;
}

/** The trace is not a well-formed recording (exit code 2), as opposed to a divergence (exit code 1). */
export { MalformedLogError as BadTraceError };

export async function replayTrace(path: string, options: ReplayOptions = {}): Promise<ReplaySummary> {
  const started = performance.now();
  const reader = await openTraceReader(path, { lenient: options.lenient ?? false });
  const header: TraceHeader = reader.header;
  const config = bootConfigFromTrace(header, path);
  const vm = VmHost.start(config.limits);
  let fatal: Error | null = null;
  vm.onFatal = (error) => (fatal = error);
  const batchTasks = options.batchTasks ?? 256;
  const summary: ReplaySummary = {
    trace: path,
    guest: config.entry,
    tasks: 0,
    entries: 0,
    outputsVerified: 0,
    stateHashesVerified: 0,
    finalStateHash: '',
    finalPos: 0,
    lastSeq: 0,
    replayMs: 0,
    truncated: null,
    incompleteTaskFromSeq: null,
    divergence: null,
  };
  try {
    await vm.boot(config, 'replay');
    let pending: Entry[][] = [];

    const flush = async (): Promise<boolean> => {
      if (pending.length === 0) return true;
      const tasks = pending;
      pending = [];
      const reply = await vm.replay(tasks);
      for (let i = 0; i < reply.results.length; i++) {
        const result: TaskResult = reply.results[i]!;
        const task = tasks[i]!;
        const endSeq = task[task.length - 1]!.seq;
        for (const line of result.console) options.onConsole?.(line, endSeq);
        if (result.divergence) {
          summary.divergence = result.divergence;
          return false;
        }
        summary.tasks++;
        summary.outputsVerified += result.outputs.length + result.console.length;
      }
      summary.finalPos = reply.state.pos;
      options.onProgress?.(summary.entries, summary.tasks);
      return true;
    };

    const assembler = new TaskAssembler(path);
    const assembled: Assembled[] = [];
    outer: for await (const block of reader) {
      for (const entry of block.entries) {
        summary.entries++;
        summary.lastSeq = entry.seq;
        assembler.push(entry, assembled);
        for (const item of assembled.splice(0)) {
          if (item.type === 'task') {
            pending.push(item.entries);
            if (pending.length >= batchTasks && !(await flush())) break outer;
          } else if (item.entry.kind === Kind.StateHash) {
            if (!(await flush())) break outer;
            const state = await vm.state(true);
            const expected = Buffer.from(item.entry.payload).toString('hex');
            if (state.stateHash !== expected) {
              summary.divergence = { seq: item.entry.seq, pos: state.pos, expectedKind: 'StateHash', expected: `state ${expected}`, actual: `state ${state.stateHash}` };
              break outer;
            }
            summary.stateHashesVerified++;
          }
        }
      }
    }
    if (!summary.divergence) {
      await flush();
      summary.incompleteTaskFromSeq = assembler.openTaskSeq;
    }
    summary.truncated = reader.truncated ?? null;
    if (!summary.divergence) {
      const state = await vm.state(true);
      summary.finalStateHash = state.stateHash ?? '';
      summary.finalPos = state.pos;
    }
  } catch (error) {
    // A dead VM explains the failure better than the rejected request that noticed it.
    throw fatal ?? error;
  } finally {
    await reader.close();
    await vm.terminate();
  }
  summary.replayMs = performance.now() - started;
  return summary;
}
