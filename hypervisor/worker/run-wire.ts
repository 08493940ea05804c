// The hot exchange between the node and its VM worker in binary: a batch of live events (or of
// recorded tasks to replay) one way, the tasks' results the other, each as one buffer whose ArrayBuffer is transferred, not cloned.
//
// Why: structured clone of a run reply (an object per entry, output and header, and an ArrayBuffer per
// payload and body) cost 17 µs per task to serialize in the worker and 11 µs to deserialize on the main
// thread, a quarter of a kv.js request's CPU (issue 19). Written here it is one pass over a reused
// writer, and the reader hands out entry payloads and bodies as views of the one transferred buffer.
//
// Nothing here reaches the guest or the log's bytes: entries keep their kind, pos and payload bytes
// exactly, results every field. A batch the codec cannot write exactly (a string with a lone surrogate
// has no UTF-8 form) is sent as before, by structured clone: encode* return null and the reader takes
// either form.

import { ByteReader, CodecError, MAX_VARUINT, utf8Length } from '../../logging-channel/bytes.js';
import type { Entry, HeaderList, KindCode, RawEntry } from '../../logging-channel/entry.js';
import type { Divergence } from '../vm/port.js';
import type { CONSOLE_LEVELS, ConsoleLine, LiveEvent, Output, TaskResult } from '../vm/vm.js';
import type { RunReply } from './vm-protocol.js';

/** First byte of an encoded run reply / event batch: a reader refuses anything else (a build mismatch, not input). */
const REPLY_MAGIC = 0xa7;
const EVENTS_MAGIC = 0xa8;

const OUTPUT_CODE = { response: 1, fetch: 2, head: 3, chunk: 4, end: 5 } as const;
const EVENT_CODE = { request: 1, timer: 2, 'fetch-result': 3, scheduled: 4, 'stream-cancel': 5 } as const;
/** vm.ts's CONSOLE_LEVELS (checked by the type), written out: the main thread does not load the VM module. */
const LEVELS: typeof CONSOLE_LEVELS = ['debug', 'log', 'info', 'warn', 'error'];
const LEVEL_CODE: Record<string, number> = Object.fromEntries(LEVELS.map((level, i) => [level, i]));

const RESULT_PREEMPTED = 1;
const RESULT_DIVERGED = 2;

/**
 * An append-only byte writer for this exchange (the log codec's WireWriter checks and names every
 * field, which here cost more than the structured clone it replaces): ASCII strings are written
 * byte by byte, anything else through Buffer.write once known to be well-formed.
 */
class WireWriter {
  private buf: Buffer;
  private len = 0;

  constructor(capacityBytes: number) {
    this.buf = Buffer.allocUnsafeSlow(capacityBytes);
  }

  get capacity(): number {
    return this.buf.byteLength;
  }

  reset(): void {
    this.len = 0;
  }

  /** A copy of what was written, in an ArrayBuffer of its own (to be transferred). */
  finish(): Uint8Array {
    const out = new Uint8Array(this.len);
    out.set(this.buf.subarray(0, this.len));
    return out;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    let capacity = this.buf.byteLength * 2;
    while (capacity < this.len + n) capacity *= 2;
    const next = Buffer.allocUnsafeSlow(capacity);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.len++] = value;
  }

  varuint(value: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_VARUINT) throw new CodecError(`cannot encode ${what}: ${value} is not an integer in 0..2^53-1`, this.len);
    this.ensure(8);
    const buf = this.buf;
    let at = this.len;
    while (value >= 0x80) {
      buf[at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buf[at++] = value;
    this.len = at;
  }

  f64(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.len);
    this.len += 8;
  }

  bytes(bytes: Uint8Array, what: string): void {
    if (!(bytes instanceof Uint8Array)) throw new CodecError(`cannot encode ${what}: not a Uint8Array`, this.len);
    this.varuint(bytes.byteLength, what);
    this.ensure(bytes.byteLength);
    this.buf.set(bytes, this.len);
    this.len += bytes.byteLength;
  }

  /** Length-prefixed UTF-8 (ByteReader.str reads it). A lone surrogate has no UTF-8 form: CodecError. */
  str(text: string, what: string): void {
    if (typeof text !== 'string') throw new CodecError(`cannot encode ${what}: ${typeof text} is not a string`, this.len);
    const n = text.length;
    if (n < 0x80) {
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.len;
      buf[start] = n;
      let i = 0;
      for (; i < n; i++) {
        const unit = text.charCodeAt(i);
        if (unit >= 0x80) break;
        buf[start + 1 + i] = unit;
      }
      if (i === n) {
        this.len = start + 1 + n;
        return;
      }
    }
    const byteLength = utf8Length(text, what, this.len);
    this.varuint(byteLength, what);
    this.ensure(byteLength);
    this.buf.write(text, this.len, byteLength, 'utf8');
    this.len += byteLength;
  }
}

/** One writer per thread, reused: a batch allocates only its output buffer (the copy that is transferred). */
const WRITER_BYTES = 64 * 1024;
/** A writer that grew past this for one large batch (a big body) is dropped after it, not kept. */
const MAX_KEPT_WRITER_BYTES = 1024 * 1024;
let writer = new WireWriter(WRITER_BYTES);

function finish(w: WireWriter): Uint8Array {
  const out = w.finish();
  w.reset();
  if (w.capacity > MAX_KEPT_WRITER_BYTES) writer = new WireWriter(WRITER_BYTES);
  return out;
}

function writeHeaders(w: WireWriter, headers: HeaderList): void {
  w.varuint(headers.length, 'header count');
  for (const [name, value] of headers) {
    w.str(name, 'header name');
    w.str(value, 'header value');
  }
}

function readHeaders(r: ByteReader): HeaderList {
  const count = r.varuint('header count');
  const headers: HeaderList = new Array(count);
  for (let i = 0; i < count; i++) headers[i] = [r.str('header name'), r.str('header value')];
  return headers;
}

function writeOutput(w: WireWriter, output: Output): void {
  w.u8(OUTPUT_CODE[output.kind]);
  switch (output.kind) {
    case 'response':
    case 'head':
      w.varuint(output.requestId, 'requestId');
      w.varuint(output.status, 'status');
      w.str(output.statusText, 'statusText');
      writeHeaders(w, output.headers);
      break;
    case 'fetch':
      w.varuint(output.fetchId, 'fetchId');
      w.str(output.method, 'method');
      w.str(output.url, 'url');
      writeHeaders(w, output.headers);
      break;
    case 'chunk':
      w.varuint(output.requestId, 'requestId');
      break;
    case 'end':
      w.varuint(output.requestId, 'requestId');
      w.u8(output.error === null ? 0 : 1);
      if (output.error !== null) w.str(output.error, 'end error');
      break;
  }
  w.bytes(output.body, 'body');
}

function readOutput(r: ByteReader): Output {
  const code = r.u8('output kind');
  switch (code) {
    case OUTPUT_CODE.response:
    case OUTPUT_CODE.head: {
      const requestId = r.varuint('requestId');
      const status = r.varuint('status');
      const statusText = r.str('statusText');
      const headers = readHeaders(r);
      return { kind: code === OUTPUT_CODE.response ? 'response' : 'head', requestId, status, statusText, headers, body: r.bytes('body') };
    }
    case OUTPUT_CODE.fetch: {
      const fetchId = r.varuint('fetchId');
      const method = r.str('method');
      const url = r.str('url');
      const headers = readHeaders(r);
      return { kind: 'fetch', fetchId, method, url, headers, body: r.bytes('body') };
    }
    case OUTPUT_CODE.chunk: {
      const requestId = r.varuint('requestId');
      return { kind: 'chunk', requestId, body: r.bytes('body') };
    }
    case OUTPUT_CODE.end: {
      const requestId = r.varuint('requestId');
      const error = r.u8('end error flag') === 1 ? r.str('end error') : null;
      return { kind: 'end', requestId, error, body: r.bytes('body') };
    }
    default:
      return r.fail(`unknown output kind ${code}`);
  }
}

function writeResult(w: WireWriter, result: TaskResult): void {
  w.u8((result.preempted ? RESULT_PREEMPTED : 0) | (result.divergence ? RESULT_DIVERGED : 0));
  w.str(result.kind, 'task kind');
  w.varuint(result.requestId, 'requestId');
  w.varuint(result.pos, 'pos');
  w.varuint(result.entries.length, 'entry count');
  for (const entry of result.entries) {
    w.u8(entry.kind);
    w.varuint(entry.pos, 'entry pos');
    w.bytes(entry.payload, 'entry payload');
  }
  w.varuint(result.outputs.length, 'output count');
  for (const output of result.outputs) writeOutput(w, output);
  w.varuint(result.fetchAborts.length, 'fetch abort count');
  for (const id of result.fetchAborts) w.varuint(id, 'fetch abort');
  w.varuint(result.console.length, 'console count');
  for (const line of result.console) {
    w.u8(LEVEL_CODE[line.level] ?? 0);
    w.str(line.text, 'console text');
  }
  // JSON escapes what UTF-8 cannot carry: a divergence's text always encodes.
  if (result.divergence) w.str(JSON.stringify(result.divergence), 'divergence');
}

function readResult(r: ByteReader): TaskResult {
  const flags = r.u8('result flags');
  const kind = r.str('task kind');
  const requestId = r.varuint('requestId');
  const pos = r.varuint('pos');
  const entries: RawEntry[] = new Array(r.varuint('entry count'));
  for (let i = 0; i < entries.length; i++) {
    const entryKind = r.u8('entry kind') as KindCode;
    const entryPos = r.varuint('entry pos');
    entries[i] = { kind: entryKind, pos: entryPos, payload: r.bytes('entry payload') };
  }
  const outputs: Output[] = new Array(r.varuint('output count'));
  for (let i = 0; i < outputs.length; i++) outputs[i] = readOutput(r);
  const fetchAborts: number[] = new Array(r.varuint('fetch abort count'));
  for (let i = 0; i < fetchAborts.length; i++) fetchAborts[i] = r.varuint('fetch abort');
  const console: ConsoleLine[] = new Array(r.varuint('console count'));
  for (let i = 0; i < console.length; i++) {
    const level = LEVELS[r.u8('console level')];
    if (level === undefined) r.fail('unknown console level');
    console[i] = { level, text: r.str('console text') };
  }
  const divergence = flags & RESULT_DIVERGED ? (JSON.parse(r.str('divergence')) as Divergence) : null;
  return { entries, kind, requestId, outputs, fetchAborts, console, preempted: (flags & RESULT_PREEMPTED) !== 0, pos, divergence };
}

/** `reply` as one buffer, or null when it holds a string UTF-8 cannot carry exactly (send it cloned). */
export function encodeRunReply(reply: RunReply): Uint8Array | null {
  const w = writer;
  w.reset();
  try {
    w.u8(REPLY_MAGIC);
    w.varuint(reply.results.length, 'result count');
    for (const result of reply.results) writeResult(w, result);
    // The rest is small and once per batch: JSON (which escapes any string exactly).
    const { results: _, ...rest } = reply;
    w.str(JSON.stringify(rest), 'reply state');
  } catch (error) {
    finish(w);
    if (error instanceof CodecError) return null;
    throw error;
  }
  return finish(w);
}

/** A run reply as the worker sent it: encoded (encodeRunReply), or cloned. */
export function decodeRunReply(value: Uint8Array | RunReply): RunReply {
  if (!(value instanceof Uint8Array)) return value;
  const r = new ByteReader(value, 0, value.byteLength, 'VM run reply');
  if (r.u8('magic') !== REPLY_MAGIC) r.fail('not a run reply', 0);
  const results: TaskResult[] = new Array(r.varuint('result count'));
  for (let i = 0; i < results.length; i++) results[i] = readResult(r);
  const rest = JSON.parse(r.str('reply state')) as Omit<RunReply, 'results'>;
  if (r.remaining !== 0) r.fail(`${r.remaining} bytes after the reply`);
  return { results, ...rest };
}

/** Live events as one buffer, or null when one holds a string UTF-8 cannot carry exactly (send them cloned). */
export function encodeEvents(events: LiveEvent[]): Uint8Array | null {
  const w = writer;
  w.reset();
  try {
    w.u8(EVENTS_MAGIC);
    w.varuint(events.length, 'event count');
    for (const event of events) {
      w.u8(EVENT_CODE[event.kind]);
      switch (event.kind) {
        case 'request':
          w.str(event.method, 'method');
          w.str(event.url, 'url');
          writeHeaders(w, event.headers);
          w.bytes(event.body, 'body');
          break;
        case 'timer':
          w.varuint(event.timerId, 'timerId');
          break;
        case 'fetch-result': {
          const f = event.result;
          w.varuint(f.fetchId, 'fetchId');
          w.u8(f.error === null ? 0 : 1);
          if (f.error !== null) w.str(f.error, 'fetch error');
          w.varuint(f.status, 'status');
          w.str(f.statusText, 'statusText');
          writeHeaders(w, f.headers);
          w.bytes(f.body, 'body');
          break;
        }
        case 'scheduled':
          w.str(event.event.cron, 'cron');
          w.f64(event.event.scheduledTimeMs);
          break;
        case 'stream-cancel':
          w.varuint(event.requestId, 'requestId');
          break;
      }
    }
  } catch (error) {
    finish(w);
    if (error instanceof CodecError) return null;
    throw error;
  }
  return finish(w);
}

/** Live events as the node sent them: encoded (encodeEvents; bodies are views of `value`), or cloned. */
export function decodeEvents(value: Uint8Array | LiveEvent[]): LiveEvent[] {
  if (!(value instanceof Uint8Array)) return value;
  const r = new ByteReader(value, 0, value.byteLength, 'VM events');
  if (r.u8('magic') !== EVENTS_MAGIC) r.fail('not an event batch', 0);
  const events: LiveEvent[] = new Array(r.varuint('event count'));
  for (let i = 0; i < events.length; i++) {
    const code = r.u8('event kind');
    switch (code) {
      case EVENT_CODE.request: {
        const method = r.str('method');
        const url = r.str('url');
        const headers = readHeaders(r);
        events[i] = { kind: 'request', method, url, headers, body: r.bytes('body') };
        break;
      }
      case EVENT_CODE.timer:
        events[i] = { kind: 'timer', timerId: r.varuint('timerId') };
        break;
      case EVENT_CODE['fetch-result']: {
        const fetchId = r.varuint('fetchId');
        const error = r.u8('fetch error flag') === 1 ? r.str('fetch error') : null;
        const status = r.varuint('status');
        const statusText = r.str('statusText');
        const headers = readHeaders(r);
        events[i] = { kind: 'fetch-result', result: { fetchId, error, status, statusText, headers, body: r.bytes('body') } };
        break;
      }
      case EVENT_CODE.scheduled: {
        const cron = r.str('cron');
        events[i] = { kind: 'scheduled', event: { cron, scheduledTimeMs: r.f64('scheduledTimeMs') } };
        break;
      }
      case EVENT_CODE['stream-cancel']:
        events[i] = { kind: 'stream-cancel', requestId: r.varuint('requestId') };
        break;
      default:
        r.fail(`unknown event kind ${code}`);
    }
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} bytes after the events`);
  return events;
}

const TASKS_MAGIC = 0xa9;

/** Recorded tasks for a replay as one buffer (entries are bytes already: this always encodes). */
export function encodeTasks(tasks: Entry[][]): Uint8Array {
  const w = writer;
  w.reset();
  w.u8(TASKS_MAGIC);
  w.varuint(tasks.length, 'task count');
  for (const task of tasks) {
    w.varuint(task.length, 'entry count');
    for (const entry of task) {
      w.u8(entry.kind);
      w.varuint(entry.seq, 'entry seq');
      w.varuint(entry.pos, 'entry pos');
      w.bytes(entry.payload, 'entry payload');
    }
  }
  return finish(w);
}

/** Tasks as the node sent them: encoded (encodeTasks; payloads are views of `value`), or cloned. */
export function decodeTasks(value: Uint8Array | Entry[][]): Entry[][] {
  if (!(value instanceof Uint8Array)) return value;
  const r = new ByteReader(value, 0, value.byteLength, 'VM replay tasks');
  if (r.u8('magic') !== TASKS_MAGIC) r.fail('not a task batch', 0);
  const tasks: Entry[][] = new Array(r.varuint('task count'));
  for (let t = 0; t < tasks.length; t++) {
    const task: Entry[] = new Array(r.varuint('entry count'));
    for (let i = 0; i < task.length; i++) {
      const kind = r.u8('entry kind') as KindCode;
      const seq = r.varuint('entry seq');
      const pos = r.varuint('entry pos');
      task[i] = { seq, pos, kind, payload: r.bytes('entry payload') };
    }
    tasks[t] = task;
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} bytes after the tasks`);
  return tasks;
}
