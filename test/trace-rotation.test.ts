// Bounded traces: with --trace-max-mb a trace rotates into numbered segments (file, file.1, ...),
// each a valid trace starting at the next seq, and `ftjs replay` / `ftjs inspect` given the first file
// read them all as one. A segment passed as the first file, or a missing middle segment, is an error.

import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import { openTraceReader } from '../dist/logging-channel/trace-reader.js';
import { openTraceSegments, traceSegmentPaths } from '../dist/logging-channel/trace-segments.js';
import { TraceWriter } from '../dist/logging-channel/trace-writer.js';
import { ftjs, type PairProcesses, replayJson, runSteps, startPair, startRun, tempDir, waitInSync } from './helpers.js';

const MiB = 1024 * 1024;

const header = {
  formatVersion: 1 as const,
  engine: { name: 'test', version: '0', wasmSha256: 'x' },
  guest: { entry: 'a.js', sources: [], hash: 'h' },
  boot: {},
  createdAt: new Date(0).toISOString(),
};

function entries(from: number, count: number, bytes: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({ seq: from + i, pos: (from + i) * 10, kind: Kind.Entropy, payload: new Uint8Array(bytes).fill(i & 255) }));
}

test('TraceWriter rotates into segments that read as one trace, and refuses stale segments', async () => {
  const dir = tempDir('ftjs-rotation-');
  const file = path.join(dir, 't.trace');
  const writer = await TraceWriter.open(file, header, { segmentBytes: 64 * 1024, blockBytes: 16 * 1024 });
  for (let i = 0; i < 40; i++) writer.append(entries(1 + i * 10, 10, 1000));
  writer.close();
  expect(writer.segments).toBeGreaterThan(3);
  const paths = traceSegmentPaths(file);
  expect(paths.length).toBe(writer.segments);
  let total = 0;
  for (const [i, p] of paths.entries()) {
    expect(statSync(p).size).toBeLessThanOrEqual(64 * 1024);
    total += statSync(p).size;
    const reader = await openTraceReader(p);
    expect(reader.header.segment?.index).toBe(i === 0 ? undefined : i);
    for await (const block of reader) if (i > 0) expect(block.firstSeq).toBeGreaterThanOrEqual(reader.header.segment!.firstSeq);
    await reader.close();
  }
  expect(writer.bytesWritten).toBe(total);
  const all = await openTraceSegments(file);
  const seqs: number[] = [];
  expect(all.blockBytesRead).toBe(0);
  for await (const block of all) for (const e of block.entries) seqs.push(e.seq);
  // What a progress bar counts as read reaches its total: segment headers are in neither.
  expect(all.blockBytesRead).toBe(all.blockBytes);
  expect(all.blockBytes).toBe(total - all.readers.reduce((sum, r) => sum + r.headerBytes, 0));
  await all.close();
  expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));

  // A new trace of the same name must not pick up the old segments.
  renameSync(file, `${file}.moved`);
  await expect(TraceWriter.open(file, header, { segmentBytes: 64 * 1024 })).rejects.toThrow(/t\.trace\.1 exists: a segment of an earlier trace/);
  const again = await TraceWriter.open(file, header, { segmentBytes: 64 * 1024, overwrite: true });
  again.append(entries(1, 3, 10));
  again.close();
  expect(existsSync(`${file}.1`)).toBe(false);
});

test('ftjs run --trace-max-mb: a rotated trace replays and inspects as one; a later segment alone or a missing one is exit 2', async () => {
  const dir = tempDir('ftjs-rotation-');
  const trace = path.join(dir, 'kv.trace');
  // 2 MiB segments, as for the pair below: the header (boot config and glue) is over 1 MB now.
  const node = await startRun('guest-apps/kv.js', { record: trace, args: ['--trace-max-mb', '2'] });
  try {
    const big = 'x'.repeat(100_000);
    for (let i = 0; i < 40; i++)
      await runSteps(node.url, [
        { method: 'PUT', path: `/kv/k${i}`, body: `${big}${i}` },
        { method: 'GET', path: `/kv/k${i}` },
      ]);
  } finally {
    await node.stop();
  }
  const segments = traceSegmentPaths(trace);
  expect(segments.length).toBeGreaterThanOrEqual(3);
  for (const s of segments) expect(statSync(s).size).toBeLessThanOrEqual(2 * MiB);

  const replay = await replayJson(trace);
  expect(replay.code, replay.stderr).toBe(0);
  expect(replay.summary.segments).toBe(segments.length);
  expect(replay.summary.tasks).toBe(81);
  expect(replay.summary.stateHashesVerified).toBe(1);

  const inspect = JSON.parse((await ftjs(['inspect', trace, '--json'])).stdout) as { segments: string[]; tasks: { total: number }; entries: { total: number } };
  expect(inspect.segments).toEqual(segments);
  expect(inspect.tasks.total).toBe(81);
  expect(inspect.entries.total).toBe(replay.summary.entries);

  // The debugger reaches into a later segment and back.
  const last = replay.summary.lastSeq;
  const debug = await ftjs(['replay', trace, '--json', '--until', String(last - 3)], {}, 'eval [...(globalThis.x = [1])].length\ngoto 5\ncontinue\n');
  expect(debug.code, debug.stderr).toBe(0);
  expect(debug.stdout).toContain('"type":"summary","ok":true');

  const later = await ftjs(['replay', segments[1]!]);
  expect(later.code).toBe(2);
  expect(later.stderr).toContain('this is segment 1 of a rotated trace');
  renameSync(segments[1]!, `${segments[1]}.away`);
  const gap = await ftjs(['replay', trace]);
  expect(gap.code).toBe(2);
  expect(gap.stderr).toMatch(/segment 1 of this rotated trace is missing/);
  renameSync(`${segments[1]}.away`, segments[1]!);
  writeFileSync(path.join(dir, 'unrelated.txt'), '');
  expect((await ftjs(['replay', trace])).code).toBe(0);
});

test('ftjs primary / backup --trace --trace-max-mb: both traces rotate, and each replays as one', async () => {
  const dir = tempDir('ftjs-rotation-');
  const primaryTrace = path.join(dir, 'primary.trace');
  const backupTrace = path.join(dir, 'backup.trace');
  // Every segment repeats the header, whose boot config holds the glue (~0.9 MB with the lazy Intl
  // and IDNA data): 2 MiB segments leave room for about a megabyte of blocks each.
  const rotate = ['--trace-max-mb', '2'];
  let pair: PairProcesses | null = null;
  try {
    pair = await startPair('guest-apps/kv.js', { primaryArgs: ['--trace', primaryTrace, ...rotate], backupArgs: ['--trace', backupTrace, ...rotate] });
    const big = 'x'.repeat(100_000);
    for (let i = 0; i < 40; i++)
      await runSteps(pair.primary.url, [
        { method: 'PUT', path: `/kv/k${i}`, body: `${big}${i}` },
        { method: 'GET', path: `/kv/k${i}` },
      ]);
    const synced = await waitInSync(pair.primary.url, pair.backup.url);
    await Promise.all([pair.primary.stop('SIGTERM'), pair.backup.stop('SIGTERM')]);

    const outputsKept: number[] = [];
    for (const trace of [primaryTrace, backupTrace]) {
      const segments = traceSegmentPaths(trace);
      expect(segments.length, trace).toBeGreaterThanOrEqual(3);
      for (const s of segments) expect(statSync(s).size, s).toBeLessThanOrEqual(2 * MiB);
      const replay = await replayJson(trace);
      expect(replay.code, `${trace}: ${replay.stderr}`).toBe(0);
      expect(replay.summary.divergence).toBeNull();
      expect(replay.summary.segments).toBe(segments.length);
      expect(replay.summary.lastSeq as number).toBeGreaterThanOrEqual(synced.seq);
      expect(replay.summary.tasks).toBeGreaterThanOrEqual(51);
      let kept = 0;
      const reader = await openTraceSegments(trace, { onOutputs: (b) => (kept += b.records.length) });
      for await (const _block of reader) {
        /* read it all */
      }
      await reader.close();
      outputsKept.push(kept);
    }
    // The primary's trace keeps what its tasks emitted; the backup's has none (it replayed, it never emitted).
    expect(outputsKept[0]).toBeGreaterThanOrEqual(51);
    expect(outputsKept[1]).toBe(0);
  } finally {
    await pair?.stop();
  }
});
