// The binary exchange between the node and its VM worker (hypervisor/worker/run-wire.ts): what the
// main thread decodes is exactly what the worker's VM produced (every field, every entry byte), what
// the codec cannot carry exactly goes by structured clone instead, and a live run through a real
// worker records the same log as the VM run in process.

import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { type LiveEvent, type TaskResult, Vm } from '../dist/hypervisor/vm/vm.js';
import { decodeEvents, decodeRunReply, decodeTasks, encodeEvents, encodeRunReply, encodeTasks } from '../dist/hypervisor/worker/run-wire.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import type { RunReply } from '../dist/hypervisor/worker/vm-protocol.js';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import { LivePort } from '../dist/recorder/live-port.js';
import { ROOT } from './helpers.js';

const bytes = (text: string) => new TextEncoder().encode(text);

/** A result with one of everything: entries, every output kind, aborts, console, preemption, a divergence. */
function everything(): TaskResult {
  return {
    entries: [
      { kind: Kind.Request, pos: 1_000_000, payload: bytes('request payload') },
      { kind: Kind.Clock, pos: 1_000_100, payload: new Uint8Array([1, 2, 3]) },
      { kind: Kind.TaskEnd, pos: 2 ** 40, payload: new Uint8Array(17).fill(0xee) },
    ],
    kind: 'Request',
    requestId: 300,
    outputs: [
      {
        kind: 'response',
        requestId: 300,
        status: 201,
        statusText: 'Créé',
        headers: [
          ['content-type', 'text/plain'],
          ['x-ü', 'värde €'],
        ],
        body: bytes('body'),
      },
      { kind: 'fetch', fetchId: 7, method: 'POST', url: 'https://example.com/ä?q=1', headers: [], body: new Uint8Array(70_000).fill(9) },
      { kind: 'head', requestId: 301, status: 200, statusText: '', headers: [['x', 'y']], body: new Uint8Array(0) },
      { kind: 'chunk', requestId: 301, body: bytes('chunk') },
      { kind: 'end', requestId: 301, error: null, body: new Uint8Array(0) },
      { kind: 'end', requestId: 302, error: 'the client went away', body: new Uint8Array(0) },
    ],
    fetchAborts: [4, 5],
    console: [
      { level: 'warn', text: 'a'.repeat(200) },
      { level: 'error', text: 'non-ASCII: 😀 ✓' },
      { level: 'debug', text: '' },
    ],
    preempted: true,
    pos: 2 ** 40,
    divergence: { seq: 12, pos: 99, expectedKind: 'TaskEnd', expected: 'x\ud800', actual: 'y' },
  };
}

describe('run replies', () => {
  test('decode to exactly what was encoded, payloads and bodies byte for byte', () => {
    const reply: RunReply = {
      results: [everything(), { ...everything(), preempted: false, divergence: null, console: [], fetchAborts: [], outputs: [] }],
      state: { pos: 5, tasks: 2, guestTimeMs: 1_733_000_000_123.5, memoryBytes: 1 << 24, nextTimer: { timerId: 3, deadlineMs: 1_733_000_001_000 }, openStreams: [301] },
      bootTimings: { engineMs: 1.5 },
    };
    const encoded = encodeRunReply(reply);
    expect(encoded).toBeInstanceOf(Uint8Array);
    // Its own buffer, to be transferred.
    expect(encoded!.byteLength).toBe(encoded!.buffer.byteLength);
    expect(decodeRunReply(encoded!)).toEqual(reply);
  });

  test('a string UTF-8 cannot carry exactly (a lone surrogate) sends the reply cloned, unchanged', () => {
    const result = everything();
    result.console = [{ level: 'log', text: 'half a pair: \ud83d' }];
    const reply: RunReply = { results: [result], state: { pos: 1, tasks: 1, guestTimeMs: 0, memoryBytes: 0, nextTimer: null } };
    expect(encodeRunReply(reply)).toBeNull();
    expect(decodeRunReply(reply)).toBe(reply);
    // The writer is left clean for the next reply.
    result.console = [];
    expect(decodeRunReply(encodeRunReply(reply)!)).toEqual(reply);
  });

  test('a value that is not what the types say (a non-integer status) is refused, not mangled', () => {
    const result = everything();
    result.outputs = [{ kind: 'response', requestId: 1, status: 200.5, statusText: '', headers: [], body: new Uint8Array(0) }];
    expect(encodeRunReply({ results: [result], state: { pos: 1, tasks: 1, guestTimeMs: 0, memoryBytes: 0, nextTimer: null } })).toBeNull();
  });

  test('a damaged reply is a clear error', () => {
    const encoded = encodeRunReply({ results: [everything()], state: { pos: 1, tasks: 1, guestTimeMs: 0, memoryBytes: 0, nextTimer: null } })!;
    expect(() => decodeRunReply(encoded.subarray(0, encoded.byteLength - 3))).toThrow(/VM run reply: truncated/);
    expect(() => decodeRunReply(new Uint8Array([1, 2, 3]))).toThrow(/not a run reply/);
  });
});

describe('live events', () => {
  const events: LiveEvent[] = [
    { kind: 'request', method: 'PUT', url: 'http://h/kv/ä', headers: [['content-type', 'text/plain; charset=utf-8']], body: bytes('v') },
    { kind: 'request', method: 'GET', url: `http://h/${'p'.repeat(300)}`, headers: [], body: new Uint8Array(0) },
    { kind: 'timer', timerId: 12 },
    { kind: 'fetch-result', result: { fetchId: 3, error: null, status: 404, statusText: 'Not Found', headers: [['a', 'b']], body: bytes('nope') } },
    { kind: 'fetch-result', result: { fetchId: 4, error: 'timed out', status: 0, statusText: '', headers: [], body: new Uint8Array(0) } },
    { kind: 'scheduled', event: { cron: '*/5 * * * *', scheduledTimeMs: 1_733_000_100_000 } },
    { kind: 'stream-cancel', requestId: 9 },
  ];

  test('decode to exactly what was encoded', () => {
    const encoded = encodeEvents(events)!;
    expect(encoded.byteLength).toBe(encoded.buffer.byteLength);
    expect(decodeEvents(encoded)).toEqual(events);
  });

  test('an event UTF-8 cannot carry exactly goes cloned', () => {
    const odd: LiveEvent[] = [{ kind: 'scheduled', event: { cron: '\udc00', scheduledTimeMs: 0 } }];
    expect(encodeEvents(odd)).toBeNull();
    expect(decodeEvents(odd)).toBe(odd);
  });
});

describe('replay tasks', () => {
  test('decode to exactly what was encoded: seqs, positions, kinds, payload bytes', () => {
    const tasks: Entry[][] = [
      [
        { seq: 1, pos: 0, kind: Kind.Boot, payload: new Uint8Array(0) },
        { seq: 2, pos: 2 ** 45, kind: Kind.TaskEnd, payload: new Uint8Array(17).fill(3) },
      ],
      [
        { seq: 3, pos: 2 ** 45 + 1, kind: Kind.Request, payload: bytes('ä request') },
        { seq: 4, pos: 2 ** 45 + 9, kind: Kind.Entropy, payload: new Uint8Array(300).map((_, i) => i) },
        { seq: 5, pos: 2 ** 45 + 9, kind: Kind.TaskEnd, payload: new Uint8Array(17) },
      ],
    ];
    const encoded = encodeTasks(tasks);
    expect(encoded.byteLength).toBe(encoded.buffer.byteLength);
    expect(decodeTasks(encoded)).toEqual(tasks);
    expect(() => decodeTasks(encoded.subarray(0, 20))).toThrow(/VM replay tasks: truncated/);
  });
});

test('a live run through the worker records the same log and outputs as the same VM run in process', async () => {
  const config = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', 'kv.js')), {});
  const events: LiveEvent[] = [];
  for (let i = 0; i < 20; i++) {
    events.push({ kind: 'request', method: 'PUT', url: `http://vm/kv/k${i % 4}`, headers: [['content-type', 'text/plain']], body: bytes(`välue ${i}`) });
    events.push({ kind: 'request', method: 'GET', url: `http://vm/kv/k${(i * 3) % 5}`, headers: [], body: new Uint8Array(0) });
  }
  const host = VmHost.start(config.limits);
  let worker: RunReply;
  try {
    await host.boot(config, 'live');
    worker = await host.run(events);
  } finally {
    await host.terminate();
  }
  // In process, with the same clock and entropy the worker's entries recorded, the VM must do the same.
  const recorded = worker.results.flatMap((r) => r.entries);
  expect(recorded.length).toBeGreaterThan(events.length * 2);
  let vm: Vm;
  const port = new LivePort({ push: (e) => vm.sink.push(e) }, { taskBudgetMs: config.limits.taskBudgetMs });
  vm = await Vm.create(config, port);
  vm.bootLive();
  const local = events.map((e) => vm.runLive(e));
  expect(local.map((r) => r.outputs.map((o) => ({ ...o, body: new TextDecoder().decode(o.body) })))).toEqual(
    worker.results.map((r) => r.outputs.map((o) => ({ ...o, body: new TextDecoder().decode(o.body) }))),
  );
  // Entry for entry the same kind, position and payload bytes, but for clock readings (the world's:
  // a reading equal to the last one is not even recorded).
  const inputs = (results: TaskResult[]) => results.map((r) => r.entries.filter((e) => e.kind !== Kind.Clock).map((e) => `${e.kind}@${e.pos}:${Buffer.from(e.payload).toString('hex')}`));
  expect(inputs(local)).toEqual(inputs(worker.results));
});
