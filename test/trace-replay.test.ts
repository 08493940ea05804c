// `ftjs replay` on damaged and foreign files: a flipped byte or a truncated tail is exit 2 with a
// message that says what and where; --lenient replays a torn tail up to the last good block; a
// divergence is exit 1 naming the first divergent seq.

import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { Kind } from '../dist/logging-channel/entry.js';
import { openTraceReader } from '../dist/logging-channel/trace-file.js';
import { ftjs, replayJson, runSteps, startRun, tempDir } from './helpers.js';

const dir = tempDir();
const trace = path.join(dir, 'kv.trace');
let blockOffsets: number[] = [];

beforeAll(async () => {
  const node = await startRun('guest-apps/kv.js', { record: trace });
  try {
    // Separate requests so the trace holds many blocks (one flush per batch).
    for (let i = 0; i < 30; i++) await runSteps(node.url, [{ method: 'PUT', path: `/kv/k${i}`, body: `v${i}` }, { method: 'GET', path: `/kv/k${i}` }]);
  } finally {
    await node.stop();
  }
  const reader = await openTraceReader(trace);
  for await (const block of reader) blockOffsets.push(block.offset);
  await reader.close();
  expect(blockOffsets.length).toBeGreaterThan(10);
});

function copy(name: string): string {
  const file = path.join(dir, name);
  copyFileSync(trace, file);
  return file;
}

test('the intact trace verifies (exit 0)', async () => {
  const result = await ftjs(['replay', trace]);
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/verified \d+ tasks/);
});

test('a flipped byte in the middle is exit 2 naming the corrupt block and its offset', async () => {
  const file = copy('flipped.trace');
  const bytes = readFileSync(file);
  const at = blockOffsets[5]! + 12;
  bytes[at] = bytes[at]! ^ 0x40;
  writeFileSync(file, bytes);
  const result = await ftjs(['replay', file]);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/corrupt/i);
  expect(result.stderr).toContain(String(blockOffsets[5]));
  // Mid-file corruption is not a torn tail: --lenient refuses too.
  expect((await ftjs(['replay', file, '--lenient'])).code).toBe(2);
});

test('a truncated tail is exit 2, and --lenient replays up to the last good block', async () => {
  const file = copy('truncated.trace');
  truncateSync(file, statSync(file).size - 7);
  const strict = await ftjs(['replay', file]);
  expect(strict.code).toBe(2);
  expect(strict.stderr).toMatch(/truncated|torn|corrupt/i);
  const lenient = await replayJson(file, {}, ['--lenient']);
  expect(lenient.code).toBe(0);
  expect(lenient.summary.divergence).toBeNull();
  expect((lenient.summary.truncated as { atOffset: number }).atOffset).toBe(blockOffsets[blockOffsets.length - 1]);
  expect(lenient.summary.tasks).toBeGreaterThan(50);
});

test('a foreign file and a missing file are exit 2 with a clear message', async () => {
  const foreign = path.join(dir, 'foreign.trace');
  writeFileSync(foreign, 'this is not a trace at all, just some text\n');
  const result = await ftjs(['replay', foreign]);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/not an ftjs trace|not a trace|magic/i);
  const missing = await ftjs(['replay', path.join(dir, 'nope.trace')]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('nope.trace');
});

test('a tampered input is a divergence: exit 1 naming the first divergent seq', async () => {
  // Rewrite one recorded request (valid checksums) so the guest reads another key: the task's own
  // output (the value it answers) differs, so the replay must report a divergence at its end.
  const { TraceWriter, readTrace } = await import('../dist/logging-channel/trace-file.js');
  const { decodeRequestEvent, encodeRequestEvent } = await import('../dist/logging-channel/codec.js');
  const contents = await readTrace(trace);
  const target = contents.entries.find((e) => e.kind === Kind.Request && decodeRequestEvent(e.payload).method === 'GET' && e.seq > 20)!;
  const event = decodeRequestEvent(target.payload);
  const tampered = contents.entries.map((e) => (e === target ? { ...e, payload: encodeRequestEvent({ ...event, url: event.url.replace(/\/kv\/k(\d+)$/, '/kv/k0') }) } : e));
  expect(decodeRequestEvent(tampered.find((e) => e.seq === target.seq)!.payload).url).not.toBe(event.url);
  const file = path.join(dir, 'tampered.trace');
  const writer = await TraceWriter.open(file, contents.header);
  writer.append(tampered);
  writer.close();
  const result = await replayJson(file);
  expect(result.code).toBe(1);
  expect(result.summary.divergence).not.toBeNull();
  const taskEnd = contents.entries.find((e) => e.seq > target.seq && e.kind === Kind.TaskEnd)!;
  expect(result.summary.divergence!.seq).toBe(taskEnd.seq);
  const human = await ftjs(['replay', file]);
  expect(human.code).toBe(1);
  expect(human.stderr).toContain(`DIVERGENCE at seq ${taskEnd.seq}`);
});
