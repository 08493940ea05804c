// Offline replay of a trace: boots the recorded guest in a replay-mode VM, re-executes every task
// from the recorded inputs, and verifies every task's position and output hash and every recorded
// state hash. The trace (all its rotated segments) is streamed block by block, so a long trace never
// sits in memory whole. This is a ReplaySession (replayer/session.ts) run to the end; a divergence
// comes with a report (replayer/divergence.ts).

import { MalformedLogError } from './task-assembler.js';
import type { ConsoleLine } from '../hypervisor/vm.js';
import type { DivergenceReport } from './divergence.js';
import { ReplaySession, type Progress, type ReplaySummary } from './session.js';

export type { ReplaySummary } from './session.js';

export interface ReplayOptions {
  /** Replay up to the last good block of a truncated or torn trace instead of failing. */
  lenient?: boolean;
  /** Tasks handed to the worker per message. */
  batchTasks?: number;
  /** Checkpoint policy (for the divergence report's rewind): see SessionOptions. */
  checkpointTasks?: number;
  checkpointMs?: number;
  onConsole?: (line: ConsoleLine, seq: number) => void;
  onProgress?: (progress: Progress) => void;
}

/** Verifying a whole trace needs a checkpoint now and then only to rewind to a divergent task. */
const VERIFY_CHECKPOINT_MS = 1000;

/** The trace is not a well-formed recording (exit code 2), as opposed to a divergence (exit code 1). */
export { MalformedLogError as BadTraceError };

export async function replayTrace(path: string, options: ReplayOptions = {}): Promise<ReplaySummary & { report: DivergenceReport | null }> {
  const session = await ReplaySession.open(path, {
    lenient: options.lenient ?? false,
    batchTasks: options.batchTasks ?? 256,
    checkpointMs: options.checkpointMs ?? VERIFY_CHECKPOINT_MS,
    ...(options.checkpointTasks !== undefined ? { checkpointTasks: options.checkpointTasks } : {}),
    ...(options.onConsole ? { onConsole: options.onConsole } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  try {
    await session.continue();
    return { ...(await session.summary()), report: session.divergence };
  } finally {
    await session.close();
  }
}
