// The log entry: the unit of the trace, the logging channel and the replay port.
//
// An entry is `seq` (dense, from 1), `pos` (the VM position at which it took effect), `kind`, and a
// payload whose layout depends on the kind. Payloads are kept as bytes on the main thread; only the
// VM worker (and tools such as `inspect`) decode them, with the codecs in codec.ts.

export const Kind = {
  /** Inbound HTTP request delivered as a task. Payload: RequestEvent. */
  Request: 1,
  /** A guest timer fires (one task). Payload: TimerEvent. */
  Timer: 2,
  /** An outbound fetch completed or failed (one task). Payload: FetchResultEvent. */
  FetchResult: 3,
  /** The guest read the clock and the value changed. Payload: ClockReading. */
  Clock: 4,
  /** The guest asked for random bytes. Payload: raw bytes. */
  Entropy: 5,
  /** The live side interrupted the running task at exactly `pos`. Payload: empty. */
  Preempt: 6,
  /** End of a task. Payload: TaskEnd (hash of outputs and console lines). */
  TaskEnd: 7,
  /** Periodic no-op from an idle primary (heartbeat on the log). Payload: empty. Never reaches the VM. */
  Noop: 8,
  /** Boot of the VM: evaluation of the guest module. Payload: empty. */
  Boot: 9,
  /** A new epoch began (go-live). Payload: EpochMark. Never reaches the VM. */
  Epoch: 10,
  /** SHA-256 of the whole VM state (linear memory + device tables) between tasks. Payload: 32 bytes. */
  StateHash: 11,
  /** A cron trigger fires (one task: the guest's scheduled() handler). Payload: ScheduledEvent. */
  Scheduled: 12,
  /** The client of a streamed response went away (one task: the guest's stream is cancelled). Payload: StreamCancelEvent. */
  StreamCancel: 13,
} as const;

export type KindName = keyof typeof Kind;
export type KindCode = (typeof Kind)[KindName];

export const kindName: Readonly<Record<number, KindName>> = Object.fromEntries(Object.entries(Kind).map(([name, code]) => [code, name as KindName]));

export function isKnownKind(code: number): code is KindCode {
  return kindName[code] !== undefined;
}

/** Kinds that start a task in the VM. */
export function isTaskStart(kind: number): boolean {
  return kind === Kind.Request || kind === Kind.Timer || kind === Kind.FetchResult || kind === Kind.Boot || kind === Kind.Scheduled || kind === Kind.StreamCancel;
}

/** Kinds that the VM never sees (they exist for the channel and the operator). */
export function isControl(kind: number): boolean {
  return kind === Kind.Noop || kind === Kind.Epoch || kind === Kind.StateHash;
}

export interface Entry {
  seq: number;
  pos: number;
  kind: KindCode;
  payload: Uint8Array;
}

/** An entry before the log gave it a seq (as the VM worker produces it). */
export type RawEntry = Omit<Entry, 'seq'>;

export type HeaderList = Array<[name: string, value: string]>;

export interface RequestEvent {
  /** Guest-visible request id, allocated by the VM (deterministic, dense from 1). */
  requestId: number;
  method: string;
  url: string;
  headers: HeaderList;
  body: Uint8Array;
}

export interface TimerEvent {
  timerId: number;
}

export interface ScheduledEvent {
  /** The cron expression that fired, as configured (--cron). */
  cron: string;
  /** The firing's scheduled time (ms since the epoch, UTC, a whole minute): controller.scheduledTime. */
  scheduledTimeMs: number;
}

export interface StreamCancelEvent {
  /** The request whose streamed response lost its client. */
  requestId: number;
}

export interface FetchResultEvent {
  fetchId: number;
  /** Present when the fetch failed (network error, timeout, limit); then the other fields are empty. */
  error: string | null;
  status: number;
  statusText: string;
  headers: HeaderList;
  body: Uint8Array;
}

export interface ClockReading {
  /** How many clock reads the VM had made since boot when this value took effect (0-based). */
  readIndex: number;
  /** Milliseconds since the epoch, as the guest sees it. */
  timeMs: number;
}

export interface TaskEnd {
  /** Outputs (responses, outbound requests) and console lines the task produced, in order. */
  outputCount: number;
  /** First 16 bytes of SHA-256 over the task's outputs and console lines. */
  hash: Uint8Array;
}

export interface EpochMark {
  epoch: number;
  nodeId: string;
}
