// The sandbox holds: escape probes find no unrecorded value and no host capability, and bad guests
// (infinite loops, deep recursion, memory bombs, exceptions, oversized bodies) are stopped at the edge
// while the VM keeps serving. Each run is recorded and must replay exactly, preemptions included.

import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-file.js';
import { replayJson, send, startRun, tempDir } from './helpers.js';

const dir = tempDir();

describe('escape probes', () => {
  test('find no host capability and no unrecorded value; the probe run replays exactly', async () => {
    const trace = path.join(dir, 'probe.trace');
    const node = await startRun('guest-apps/probe.js', { record: trace, processEnv: { TZ: 'Europe/Paris' } });
    let report: { ok: boolean; findings: unknown[]; probes: Record<string, unknown> };
    try {
      const res = await send(node.url, { method: 'GET', path: '/probe' });
      expect(res.status).toBe(200);
      report = JSON.parse(res.body);
    } finally {
      await node.stop();
    }
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    const replay = await replayJson(trace, { TZ: 'Australia/Eucla' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
  });
});

describe('bad guests are stopped and the VM keeps serving', () => {
  test('infinite loop is preempted (503), recursion, memory bomb and throw give 500, and it replays', async () => {
    const trace = path.join(dir, 'cpu.trace');
    // The default CPU budget (1000 ms): generous enough that only /forever can overrun it, even on a busy machine.
    const node = await startRun('guest-apps/cpu.js', { record: trace, args: ['--memory-limit-mb', '64'] });
    try {
      const forever = await send(node.url, { method: 'GET', path: '/forever' });
      expect(forever.status).toBe(503);
      expect(forever.body).toContain('CPU budget of 1000 ms');
      const recurse = await send(node.url, { method: 'GET', path: '/recurse?depth=1000000' });
      expect(recurse.status).toBe(500);
      expect(recurse.body).toContain('stack overflow');
      const bomb = await send(node.url, { method: 'GET', path: '/alloc?mb=4096' });
      expect(bomb.status).toBe(500);
      expect(bomb.body).toContain('out of memory');
      const thrown = await send(node.url, { method: 'GET', path: '/throw' });
      expect(thrown.status).toBe(500);
      const work = await send(node.url, { method: 'GET', path: '/work?n=1000' });
      expect(work.status).toBe(200);
      expect(JSON.parse(work.body).primes).toBe(168);
      const status = JSON.parse((await send(node.url, { method: 'GET', path: '/_ft/status' })).body);
      // The memory bomb got at most the limit (64 MiB) past the engine's 16 MiB base.
      expect(status.memoryBytes).toBeLessThanOrEqual((16 + 64) * 1024 * 1024);
    } finally {
      await node.stop();
    }
    const { entries } = await readTrace(trace);
    const preempts = entries.filter((e) => e.kind === Kind.Preempt);
    expect(preempts.length).toBe(1);
    const replay = await replayJson(trace);
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    // The replay reproduced the preemption at the recorded position (its 503 and console lines are in the task hash).
    expect(replay.console.some((c) => c.text.includes('task preempted'))).toBe(true);
  });

  test('request and response bodies over their limits are refused with a clear message', async () => {
    const node = await startRun('guest-apps/random.js', { args: ['--max-request-bytes', '1000', '--max-response-bytes', '2000'] });
    try {
      const big = await send(node.url, { method: 'POST', path: '/shuffle', body: JSON.stringify(Array.from({ length: 2000 }, (_, i) => i)) });
      expect(big.status).toBe(413);
      expect(big.body).toContain('--max-request-bytes');
      const small = await send(node.url, { method: 'GET', path: '/bytes?n=100' });
      expect(small.status).toBe(200);
      const huge = await send(node.url, { method: 'GET', path: '/bytes?n=4000' });
      expect(huge.status).toBe(500);
      expect(huge.body).toContain('--max-response-bytes');
      expect((await send(node.url, { method: 'GET', path: '/bytes?n=10' })).status).toBe(200);
    } finally {
      await node.stop();
    }
  });
});
