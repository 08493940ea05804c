// Messages between the node (main thread) and its VM worker. The worker owns the VM; the main thread
// owns sockets, timers and the log. Everything crossing here is structured-cloneable data.

import type { Entry } from '../../logging-channel/entry.js';
import type { BootImage, BootImageUse } from '../vm/boot-image.js';
import type { VmLimits } from '../vm/limits.js';
import type { BootConfig, BootTimings, LiveEvent, Output, Snapshot, TaskResult } from '../vm/vm.js';

export type VmRequest =
  /** `image`: the boot image the worker would read from its cache for this config, read and verified by the host (boot-image.ts adoptRead). */
  | { op: 'boot'; config: BootConfig; mode: 'live' | 'replay'; snapshot?: Snapshot; image?: BootImage }
  /** `events` encoded by run-wire.ts (transferred), or cloned when they cannot be. */
  | { op: 'run'; events: LiveEvent[] | Uint8Array }
  /** Replays a prefix of `tasks`: all of them, or those done once `sliceMs` has passed (at least one). */
  | { op: 'replay'; tasks: Entry[][] | Uint8Array; sliceMs?: number }
  | { op: 'go-live'; limits?: Partial<VmLimits> }
  | { op: 'state'; hash: boolean }
  /** The VM as it is now; its memory is the kept copy (shared), leased until 'snapshot-release'. */
  | { op: 'snapshot' }
  | { op: 'snapshot-release'; lease: number }
  /** Pre-copy (hypervisor/worker/memory-upkeep.ts): answered once the page hashes (and with `copy`, the kept copy) are nearly current. */
  | { op: 'precopy'; copy: boolean }
  | { op: 'pending-fetches' }
  // The replay debugger (replayer/offline/session.ts). Checkpoints stay in the worker (replayer/checkpoints.ts).
  /** Replay mode: replace the VM with a fresh one, before its boot task. */
  | { op: 'reset' }
  /** Store a checkpoint of the VM (between tasks) under `id`. */
  | { op: 'checkpoint-save'; id: number; compress: boolean }
  /** Replace the VM with the one checkpoint `id` holds. */
  | { op: 'checkpoint-restore'; id: number }
  | { op: 'checkpoint-drop'; ids: number[] }
  /** Evaluate `code` in a scratch copy of the VM (hypervisor/vm/vm-eval.ts); the VM itself is untouched. */
  | { op: 'eval'; code: string; budgetMs: number }
  /** Replay `tasks` in a scratch copy of the VM (e.g. without test fault injection); the VM is untouched. */
  | { op: 'replay-copy'; tasks: Entry[][]; faultInjection: boolean };

export interface CheckpointReply {
  /** Bytes all checkpoints hold now. */
  bytes: number;
  count: number;
}

export interface VmState {
  pos: number;
  tasks: number;
  guestTimeMs: number;
  memoryBytes: number;
  /** SHA-256 of memory + devices, when asked for. */
  stateHash?: string;
  nextTimer: { timerId: number; deadlineMs: number } | null;
  /** Streamed responses in progress (request ids), when there are any. */
  openStreams?: number[];
}

export interface PrecopyReply {
  /** Pages the final stop-and-copy would copy when the reply was sent (-1: not known, the wait timed out). */
  backlogPages: number;
  /** Idle slices the pre-copy took. */
  slices: number;
}

export interface RunReply {
  results: TaskResult[];
  state: VmState;
  /** Boot only: whether the VM started from a boot image (hypervisor/vm/boot-image.ts). */
  bootImage?: BootImageUse;
  /** Boot only: where the boot spent its time. */
  bootTimings?: BootTimings;
}

export type VmReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; stack?: string } };

/** Sent unprompted when the VM cannot go on (a host exception escaped the engine). */
export interface VmFatalMessage {
  fatal: { name: string; message: string; stack?: string };
}

export type PendingFetch = Extract<Output, { kind: 'fetch' }>;
