// Mutated traces and checkpoints (bench/fuzz-files.ts; the full run is `node dist/bench/fuzz-files.js`):
// every mutation is refused, diverges, or keeps the file's meaning; nothing crashes or hangs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BAD_VERDICTS, CHECKPOINT_MUTATIONS, fuzzCheckpoints, fuzzTraces, makeSamples, TRACE_MUTATIONS } from '../dist/bench/fuzz-files.js';

describe('mutated traces and checkpoints', () => {
  it('200 traces and 60 checkpoints, every kind of mutation: no changed meaning accepted, no crash, no hang', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-fuzz-'));
    const samples = await makeSamples(dir);
    const traces = await fuzzTraces(samples.trace, 200, 7, dir);
    const checkpoints = await fuzzCheckpoints(samples.checkpoints, 60, 7, dir);
    expect(traces.failures).toEqual([]);
    expect(checkpoints.failures).toEqual([]);
    // Every mutation kind ran, and the checks refused most of what they were given (they are not idle).
    expect(Object.keys(traces.byMutation).sort()).toEqual(Object.keys(TRACE_MUTATIONS).sort());
    expect(Object.keys(checkpoints.byMutation).sort()).toEqual(Object.keys(CHECKPOINT_MUTATIONS).sort());
    expect(traces.verdicts.refused).toBeGreaterThan(130);
    expect(traces.verdicts.diverged).toBeGreaterThan(0);
    // A range zeroed where the file was zero already leaves it unchanged ('same').
    expect(checkpoints.verdicts.refused + checkpoints.verdicts.same).toBe(60);
    expect(checkpoints.verdicts.refused).toBeGreaterThan(45);
    for (const verdict of BAD_VERDICTS) expect(traces.verdicts[verdict] + checkpoints.verdicts[verdict]).toBe(0);
  }, 240_000);
});
