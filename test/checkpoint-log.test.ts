// The durable log beside checkpoints (hypervisor/node/checkpoint-log.ts): entries that come while a
// checkpoint rolls the log are written to the new file in the turn they come, not held in memory
// while the old file's fsync runs (responses do not wait for the disk: a process killed in that
// window would have lost entries whose responses had left).

import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { CheckpointLog } from '../dist/hypervisor/node/checkpoint-log.js';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import type { TraceHeader } from '../dist/logging-channel/trace-format.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';

const header: TraceHeader = {
  formatVersion: 1,
  engine: { name: 'quickjs-emscripten', version: '0.32.0', wasmSha256: 'ab'.repeat(32) },
  guest: { entry: 'main.js', sources: [{ name: 'main.js', sha256: 'cd'.repeat(32), text: 'export default {}' }], hash: 'ef'.repeat(32) },
  boot: { env: {}, limits: { memoryBytes: 64 << 20 }, config: {} },
  createdAt: '2025-01-02T03:04:05.678Z',
  node: 'node-a',
};

const entry = (seq: number): Entry => ({ seq, pos: seq, kind: Kind.Entropy, payload: new Uint8Array(32).fill(seq) });

test('entries that come during a roll are in the new log file before the old one is fsynced and the roll ends', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-cklog-'));
  const log = new CheckpointLog(dir, header, pino({ level: 'silent' }));
  await log.start(0);
  log.sink([entry(1), entry(2)]);
  let rolled = false;
  const roll = log.roll(2).then(() => (rolled = true));
  log.sink([entry(3)]); // before the new file exists: waits one turn
  // Each turn until the new file takes entry 3: the roll (which waits for the old file's fsync) must
  // not have ended yet, and the file must already hold it.
  let seen = false;
  for (let turn = 0; turn < 10_000 && !seen && !rolled; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
    seen = log.writtenSeq >= 3;
  }
  expect({ seen, rolled }).toEqual({ seen: true, rolled: false });
  log.sink([entry(4)]); // still rolling (checked just above, nothing ran since): written through now
  const newLog = path.join(dir, 'log-000000000002.trace');
  expect((await readTrace(newLog, { lenient: true })).entries.map((e) => e.seq)).toEqual([3, 4]);
  await roll;
  log.sink([entry(5)]);
  await log.close();
  expect(readdirSync(dir).sort()).toEqual(['log-000000000000.trace', 'log-000000000002.trace']);
  expect((await readTrace(path.join(dir, 'log-000000000000.trace'))).entries.map((e) => e.seq)).toEqual([1, 2]);
  expect((await readTrace(newLog)).entries.map((e) => e.seq)).toEqual([3, 4, 5]);
  expect(log.syncedSeq).toBe(5);
});
