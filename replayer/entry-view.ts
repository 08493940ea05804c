// One-line, human-readable views of log entries, for the debugger's timeline, divergence reports and
// `ftjs inspect`.

import { decodePayload } from '../logging-channel/codec.js';
import { type Entry, type HeaderList, Kind, kindName } from '../logging-channel/entry.js';

export interface EntryView {
  seq: number;
  pos: number;
  kind: string;
  /** The guest's clock at this entry: its value for a Clock entry, else the last one before it. */
  timeMs: number;
  /** A short description of the payload. */
  summary: string;
}

const text = new TextDecoder('utf-8', { fatal: false });

export function decodeStateHash(payload: Uint8Array): string {
  return Buffer.from(payload).toString('hex');
}

/** Up to `max` characters of a body as text (or a note for binary). */
export function bodyPreview(body: Uint8Array, max = 80): string {
  if (body.byteLength === 0) return '';
  const sample = body.subarray(0, Math.min(body.byteLength, max * 4));
  let binary = 0;
  for (const b of sample) if (b < 9 || (b > 13 && b < 32)) binary++;
  if (binary > sample.byteLength / 10) return `<${body.byteLength} bytes binary>`;
  const s = text.decode(sample).replace(/\s+/g, ' ');
  return s.length > max ? `${s.slice(0, max)}…` : body.byteLength > sample.byteLength ? `${s}…` : s;
}

function pathOf(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

function header(headers: HeaderList, name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1];
}

/** The route of a request URL: its path with numeric and long opaque segments replaced by `:id`. */
export function routeOf(method: string, url: string): string {
  const path = pathOf(url).split('?')[0]!;
  const segments = path.split('/').map((s, i) => (i > 1 && s !== '' ? ':param' : s));
  return `${method} ${segments.join('/') || '/'}`;
}

export function describePayload(entry: Entry): string {
  try {
    if (entry.kind === Kind.StateHash) return `state ${decodeStateHash(entry.payload).slice(0, 16)}`;
    const d = decodePayload(entry.kind, entry.payload);
    switch (d.kind) {
      case 'Request': {
        const r = d.value;
        const key = header(r.headers, 'idempotency-key');
        const body = bodyPreview(r.body, 40);
        return `#${r.requestId} ${r.method} ${pathOf(r.url)}${key ? ` key=${key}` : ''}${body ? ` body=${JSON.stringify(body)}` : ''}`;
      }
      case 'Timer':
        return `timer #${d.value.timerId}`;
      case 'Scheduled':
        return `cron "${d.value.cron}" at ${new Date(d.value.scheduledTimeMs).toISOString()}`;
      case 'StreamCancel':
        return `the client of streamed response #${d.value.requestId} went away`;
      case 'FetchResult': {
        const f = d.value;
        return f.error !== null ? `fetch #${f.fetchId} failed: ${f.error}` : `fetch #${f.fetchId} -> ${f.status} (${f.body.byteLength} bytes)`;
      }
      case 'Clock':
        return `read #${d.value.readIndex} = ${new Date(d.value.timeMs).toISOString()}`;
      case 'Entropy':
        return `${d.value.byteLength} random bytes`;
      case 'TaskEnd':
        return `${d.value.outputCount} outputs and console lines, hash ${Buffer.from(d.value.hash).toString('hex').slice(0, 12)}`;
      case 'Epoch':
        return `epoch ${d.value.epoch} (node ${d.value.nodeId})`;
      case 'Preempt':
        return 'CPU budget overrun: task interrupted';
      case 'Boot':
        return 'guest module evaluation';
      case 'Noop':
        return '';
    }
  } catch (error) {
    return `<undecodable payload: ${(error as Error).message}>`;
  }
  return '';
}

/** `clockBefore`: the guest's clock before this entry (its own value is used for a Clock entry). */
export function describeEntry(entry: Entry, clockBefore: number): EntryView {
  let timeMs = clockBefore;
  if (entry.kind === Kind.Clock) {
    try {
      const d = decodePayload(entry.kind, entry.payload);
      if (d.kind === 'Clock') timeMs = d.value.readIndex === 0 ? Math.floor(d.value.timeMs) : d.value.timeMs;
    } catch {
      /* described as undecodable below */
    }
  }
  return { seq: entry.seq, pos: entry.pos, kind: kindName[entry.kind] ?? String(entry.kind), timeMs, summary: describePayload(entry) };
}
