// `ftjs replay` on damaged and foreign files: a flipped byte or a truncated tail is exit 2 with a
// message that says what and where; --lenient replays a torn tail up to the last good block; a
// divergence is exit 1 naming the first divergent seq.

import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { Kind } from '../dist/logging-channel/entry.js';
import { openTraceReader } from '../dist/logging-channel/trace-reader.js';
import { ftjs, replayJson, runSteps, startRun, tempDir } from './helpers.js';

const dir = tempDir();
const trace = path.join(dir, 'kv.trace');
const blockOffsets: number[] = [];
/** Offsets of every block, outputs blocks included (the trace keeps what tasks emitted). */
let allOffsets: number[] = [];

beforeAll(async () => {
  const node = await startRun('guest-apps/kv.js', { record: trace });
  try {
    // Separate requests so the trace holds many blocks (one flush per batch).
    for (let i = 0; i < 30; i++)
      await runSteps(node.url, [
        { method: 'PUT', path: `/kv/k${i}`, body: `v${i}` },
        { method: 'GET', path: `/kv/k${i}` },
      ]);
  } finally {
    await node.stop();
  }
  const outputsOffsets: number[] = [];
  const reader = await openTraceReader(trace, { onOutputs: (block) => outputsOffsets.push(block.offset) });
  for await (const block of reader) blockOffsets.push(block.offset);
  await reader.close();
  expect(blockOffsets.length).toBeGreaterThan(10);
  expect(outputsOffsets.length).toBeGreaterThan(0);
  allOffsets = [...blockOffsets, ...outputsOffsets].sort((a, b) => a - b);
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
  expect((lenient.summary.truncated as { atOffset: number }).atOffset).toBe(allOffsets[allOffsets.length - 1]);
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
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const { TraceWriter } = await import('../dist/logging-channel/trace-writer.js');
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

/** Rewrites `source` into `file` with the request at `target` changed (valid checksums), keeping the recorded outputs. */
async function tamperRequest(source: string, file: string, change: (url: string) => string, options: { dropOutputs?: boolean } = {}): Promise<{ target: number; taskEnd: number }> {
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const { TraceWriter } = await import('../dist/logging-channel/trace-writer.js');
  const { decodeRequestEvent, encodeRequestEvent } = await import('../dist/logging-channel/codec.js');
  const contents = await readTrace(source);
  const target = contents.entries.find(
    (e) => e.kind === Kind.Request && decodeRequestEvent(e.payload).method === 'GET' && change(decodeRequestEvent(e.payload).url) !== decodeRequestEvent(e.payload).url,
  )!;
  const event = decodeRequestEvent(target.payload);
  const tampered = contents.entries.map((e) => (e === target ? { ...e, payload: encodeRequestEvent({ ...event, url: change(event.url) }) } : e));
  const { outputs: _outputs, ...rest } = contents.header;
  const header = options.dropOutputs ? { ...rest, formatVersion: 1 as const } : contents.header;
  const writer = await TraceWriter.open(file, header);
  writer.append(tampered);
  if (!options.dropOutputs) for (const record of contents.outputs) writer.appendOutputs(record);
  writer.close();
  const taskEnd = contents.entries.find((e) => e.seq > target.seq && e.kind === Kind.TaskEnd)!.seq;
  return { target: target.seq, taskEnd };
}

interface ReportJson {
  divergence: { seq: number };
  expectedSource: string | null;
  expectedNote: string;
  expected: { outputs: Array<{ body: string; bodyBytes: number; bodyKeptBytes?: number }>; truncated?: boolean } | null;
  actual: { outputs: Array<{ body: string; bodyBytes: number }> };
  diff: string[] | null;
}

function reportOf(result: { stdout: string }): ReportJson {
  const line = result.stdout.split('\n').find((l) => l.startsWith('{"type":"divergence"'));
  if (!line) throw new Error(`no divergence report in: ${result.stdout.slice(-400)}`);
  return JSON.parse(line) as ReportJson;
}

/** Rewrites one request of `source` into `file` and replays it: a divergence at that task, diffed against the recorded outputs. */
async function divergenceFromRecorded(source: string, file: string, change: (url: string) => string): Promise<{ report: ReportJson; taskEnd: number }> {
  const { taskEnd } = await tamperRequest(source, file, change);
  const json = await replayJson(file);
  expect(json.code).toBe(1);
  expect(json.summary.divergence!.seq).toBe(taskEnd);
  const report = reportOf(json);
  expect(report.expectedSource).toBe('recorded');
  return { report, taskEnd };
}

test('a real divergence (a tampered input, no test hook): the report diffs the outputs recorded in the trace against the actual ones', async () => {
  const file = path.join(dir, 'tampered-recorded.trace');
  const { report, taskEnd } = await divergenceFromRecorded(trace, file, (url) => url.replace(/\/kv\/k12$/, '/kv/k10'));
  expect(JSON.parse(report.expected!.outputs[0]!.body)).toEqual({ key: 'k12', value: 'v12' });
  expect(JSON.parse(report.actual.outputs[0]!.body)).toEqual({ key: 'k10', value: 'v10' });
  expect(report.diff).toContain('-   "key": "k12",');
  expect(report.diff).toContain('+   "key": "k10",');
  expect(report.diff).toContain('-   "value": "v12"');
  expect(report.diff).toContain('+   "value": "v10"');

  const human = await ftjs(['replay', file]);
  expect(human.code).toBe(1);
  expect(human.stderr).toContain(`DIVERGENCE at seq ${taskEnd}`);
  expect(human.stderr).toContain('outputs: expected (-) vs actual (+); expected = recorded in the trace');
  expect(human.stderr).toMatch(/^ {4}- {3}"key": "k12",$/m);
  expect(human.stderr).toMatch(/^ {4}\+ {3}"key": "k10",$/m);
  expect(human.stderr).not.toContain('not available');
});

test('an old trace (format 1, hashes only) still replays; a divergence in it falls back to the hash-only report', async () => {
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const { TraceWriter } = await import('../dist/logging-channel/trace-writer.js');
  const contents = await readTrace(trace);
  const { outputs: _outputs, ...rest } = contents.header;
  const old = path.join(dir, 'format1.trace');
  const writer = await TraceWriter.open(old, { ...rest, formatVersion: 1 });
  writer.append(contents.entries);
  writer.close();
  expect(readFileSync(old).subarray(0, 8).toString('latin1')).toBe('FTJSTRC1');
  expect((await ftjs(['replay', old])).code).toBe(0);

  const file = path.join(dir, 'tampered-format1.trace');
  await tamperRequest(trace, file, (url) => url.replace(/\/kv\/k12$/, '/kv/k10'), { dropOutputs: true });
  const json = await replayJson(file);
  expect(json.code).toBe(1);
  const report = reportOf(json);
  expect(report.expectedSource).toBeNull();
  expect(report.expected).toBeNull();
  expect(report.expectedNote).toMatch(/records only a hash of each task's outputs/);
});

test('--trace-outputs-max-bytes: a body over the cap is cut and marked, the kept outputs stay within the cap per task, 0 turns them off', async () => {
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const steps = [
    { method: 'PUT', path: '/kv/big1', body: `${'A'.repeat(3000)}1` },
    { method: 'PUT', path: '/kv/big2', body: `${'A'.repeat(3000)}2` },
    { method: 'GET', path: '/kv/big1' },
    { method: 'GET', path: '/kv/big2' },
  ];
  const capped = path.join(dir, 'capped.trace');
  const off = path.join(dir, 'off.trace');
  for (const [file, cap] of [
    [capped, '1024'],
    [off, '0'],
  ] as const) {
    const node = await startRun('guest-apps/kv.js', { record: file, args: ['--trace-outputs-max-bytes', cap] });
    try {
      await runSteps(node.url, steps);
    } finally {
      await node.stop();
    }
  }

  // 0: a format-1 trace, no outputs kept; it replays.
  expect(readFileSync(off).subarray(0, 8).toString('latin1')).toBe('FTJSTRC1');
  expect((await readTrace(off)).outputs).toEqual([]);
  expect((await ftjs(['replay', off])).code).toBe(0);

  // 1024: every task has a record, none above the cap; the big GET's body is cut and marked.
  let outputsBlockBytes = 0;
  const contents = await readTrace(capped, { onOutputs: (b) => (outputsBlockBytes += b.byteLength) });
  expect(contents.header.outputs).toEqual({ maxBytesPerTask: 1024 });
  const tasks = contents.entries.filter((e) => e.kind === Kind.TaskEnd).length;
  expect(contents.outputs.length).toBe(tasks);
  for (const r of contents.outputs) for (const o of r.outputs) expect(o.body.byteLength).toBeLessThanOrEqual(1024);
  const big = contents.outputs.filter((r) => r.outputs[0] && r.outputs[0].bodyBytes > 3000);
  expect(big.length).toBe(2);
  for (const r of big) {
    expect(r.truncated).toBe(true);
    expect(r.outputs[0]!.body.byteLength).toBeLessThan(1024);
  }
  // Sane overhead: the outputs cost at most the cap plus a little framing per task.
  expect(outputsBlockBytes).toBeLessThanOrEqual(tasks * (1024 + 128));
  expect(outputsBlockBytes).toBeGreaterThan(2 * 900);
  // The inspect summary counts the kept responses by status.
  const inspect = JSON.parse((await ftjs(['inspect', capped, '--json'])).stdout) as { outputs: { recorded: { tasks: number; responsesByStatus: Record<string, number>; truncated: number } } };
  expect(inspect.outputs.recorded.tasks).toBe(tasks);
  expect(inspect.outputs.recorded.responsesByStatus['200']).toBe(4);
  expect(inspect.outputs.recorded.truncated).toBe(2);

  // A divergence in the cut task: compared on the bytes kept, and the report says so.
  const file = path.join(dir, 'capped-tampered.trace');
  const { report } = await divergenceFromRecorded(capped, file, (url) => url.replace(/\/kv\/big2$/, '/kv/big1'));
  expect(report.expected!.truncated).toBe(true);
  const expected = report.expected!.outputs[0]!;
  expect(expected.bodyBytes).toBeGreaterThan(3000);
  expect(expected.bodyKeptBytes).toBeLessThan(1024);
  expect(expected.body.startsWith('{"key":"big2"')).toBe(true);
  expect(report.diff!.some((l) => l.startsWith('(truncated: the trace kept the first'))).toBe(true);
  expect(report.diff!.some((l) => l.startsWith('- {"key":"big2"'))).toBe(true);
  expect(report.diff!.some((l) => l.startsWith('+ {"key":"big1"'))).toBe(true);
  const human = await ftjs(['replay', file]);
  expect(human.stderr).toContain(`truncated: the trace kept the first ${expected.bodyKeptBytes} of the ${expected.bodyBytes} bytes expected`);
});

test('a trace recorded before the page-tree state hash (no header.stateHash) is checked with the older formula', async () => {
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const { TraceWriter } = await import('../dist/logging-channel/trace-writer.js');
  const contents = await readTrace(trace);
  expect(contents.header.stateHash).toBe('page-tree');
  const mark = contents.entries.find((e) => e.kind === Kind.StateHash)!;
  const { stateHash: _scheme, ...older } = contents.header;
  const write = async (file: string, payload: Uint8Array) => {
    const writer = await TraceWriter.open(file, older);
    writer.append(contents.entries.map((e) => (e === mark ? { ...e, payload } : e)));
    for (const record of contents.outputs) writer.appendOutputs(record);
    writer.close();
  };
  // The page-tree value under an older header: replay computes the older formula, and they differ.
  const mixed = path.join(dir, 'older-header.trace');
  await write(mixed, mark.payload);
  const json = await replayJson(mixed);
  expect(json.code).toBe(1);
  expect(json.summary.divergence!.seq).toBe(mark.seq);
  const human = await ftjs(['replay', mixed]);
  const legacy = /actual: {3}state ([0-9a-f]{64})/.exec(human.stderr)![1]!;
  expect(legacy).not.toBe(Buffer.from(mark.payload).toString('hex'));
  // The older formula's value (SHA-256 over memory, then the device tables) verifies.
  const older1 = path.join(dir, 'older.trace');
  await write(older1, new Uint8Array(Buffer.from(legacy, 'hex')));
  expect((await ftjs(['replay', older1])).code).toBe(0);
});

test('a header naming a state hash formula this build does not know is refused (exit 2), and so is writing one', async () => {
  const { readTrace } = await import('../dist/logging-channel/trace-reader.js');
  const { TraceWriter } = await import('../dist/logging-channel/trace-writer.js');
  const { encodeContainerHead } = await import('../dist/logging-channel/container.js');
  const contents = await readTrace(trace);
  const future = { ...contents.header, stateHash: 'page-tree-v9' } as unknown as typeof contents.header;
  await expect(TraceWriter.open(path.join(dir, 'never.trace'), future)).rejects.toThrow(/stateHash "page-tree-v9" is not a state hash formula this build knows/);
  // The same header with valid CRCs, put in front of the intact trace's blocks.
  const bytes = readFileSync(trace);
  const oldHeadBytes = 8 + 4 + bytes.readUInt32LE(8) + 4; // magic, length, JSON, CRC
  const head = encodeContainerHead(bytes.subarray(0, 8).toString('latin1'), Buffer.from(JSON.stringify(future)));
  const file = path.join(dir, 'future-hash.trace');
  writeFileSync(file, Buffer.concat([head, bytes.subarray(oldHeadBytes)]));
  const result = await ftjs(['replay', file]);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('is not a state hash formula this build knows');
});
