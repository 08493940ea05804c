// The sandbox holds: escape probes find no unrecorded value and no host capability, and bad guests
// (infinite loops, deep recursion, memory bombs, exceptions, oversized bodies) are stopped at the edge
// while the VM keeps serving. Each run is recorded and must replay exactly, preemptions included.

import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { assertLimits, DEFAULT_LIMITS } from '../dist/hypervisor/vm/limits.js';
import { Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';
import { ftjs, replayJson, send, startRun, tempDir } from './helpers.js';

const dir = tempDir();

describe('escape probes', () => {
  test('find no host capability and no unrecorded value; the probe run replays exactly', async () => {
    const trace = path.join(dir, 'probe.trace');
    // Unbundled: the probe inspects the VM's globals as they are, and a bundler rewrites a bare
    // `require` into its own throwing shim (esbuild's `__require`), which the probe would report.
    // The probe does much work in one request; a generous budget keeps a loaded host from preempting it
    // (it got 503 under two CPU hogs at the default 1000 ms: the budget is wall time).
    const node = await startRun('guest-apps/probe.js', { record: trace, processEnv: { TZ: 'Europe/Paris' }, args: ['--no-bundle', '--task-budget-ms', '10000'] });
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
    // A 300 ms CPU budget (the determinism workload's for the same guest): enough that only /forever
    // can overrun it, even on a busy machine; the default 1000 ms proves the same at three times the
    // cost, paid again by the replay.
    const node = await startRun('guest-apps/cpu.js', { record: trace, args: ['--memory-limit-mb', '64', '--task-budget-ms', '300'] });
    let jsonPreempted = 0;
    try {
      const forever = await send(node.url, { method: 'GET', path: '/forever' });
      expect(forever.status).toBe(503);
      expect(forever.body).toContain('CPU budget of 300 ms');
      const recurse = await send(node.url, { method: 'GET', path: '/recurse?depth=1000000' });
      expect(recurse.status).toBe(500);
      expect(recurse.body).toContain('stack overflow');
      // Engine limits name the flag that raises them, as the CPU and body limits do.
      expect(JSON.parse(recurse.body).message).toMatch(/^InternalError: stack overflow \(.*--max-stack-kb\)$/);
      // The engine's own recursion (C code under JSON and flat) must hit the guest's stack limit
      // before the worker thread's: that one is a host crash, and not even deterministic.
      for (const kind of ['stringify', 'parse', 'flat']) {
        const deep = await send(node.url, { method: 'GET', path: `/recurse?depth=200000&kind=${kind}` });
        // JSON.stringify polls the budget now (a JS replacer call per value: bounded-json.js), and the
        // engine's cycle check makes deep nesting quadratic (10^4 levels: 1.2 s, 2x10^4: 4.8 s), so the
        // budget may stop it before the stack limit does: either way the guest is stopped, not the host.
        if (kind === 'stringify' && deep.status === 503) {
          expect(deep.body).toContain('CPU budget');
          jsonPreempted++;
        } else {
          expect(deep.status, `${kind}: ${deep.body}`).toBe(500);
          expect(deep.body).toContain('stack overflow');
        }
      }
      const bomb = await send(node.url, { method: 'GET', path: '/alloc?mb=4096' });
      expect(bomb.status).toBe(500);
      expect(JSON.parse(bomb.body).message).toMatch(/^InternalError: out of memory \(.*--memory-limit-mb\)$/);
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
    const logged = node.lines.filter((l) => l.guest === true && l.level === 50).map((l) => l.msg);
    // The hint is on the first line: a deep recursion's stack trace runs past the console line limit.
    const firstLines = logged.map((m) => m.split('\n')[0]);
    expect(firstLines).toContainEqual(expect.stringMatching(/^Uncaught \(fetch handler\) InternalError: stack overflow \(.*--max-stack-kb\)$/));
    expect(firstLines).toContainEqual(expect.stringMatching(/^Uncaught \(fetch handler\) InternalError: out of memory \(.*--memory-limit-mb\)$/));
    const { entries } = await readTrace(trace);
    const preempts = entries.filter((e) => e.kind === Kind.Preempt);
    expect(preempts.length).toBe(1 + jsonPreempted);
    const replay = await replayJson(trace);
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    // The replay reproduced the preemption at the recorded position (its 503 and console lines are in the task hash).
    expect(replay.console.some((c) => c.text.includes('task preempted'))).toBe(true);
    // Two tasks run to the CPU budget: on a starved host each may take up to 10 budgets of wall time.
  }, 120_000);

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

describe('guest console and imports', () => {
  test('console.time/timeLog/timeEnd read the recorded clock and group indents, as in Node; both replay exactly', async () => {
    const trace = path.join(dir, 'console.trace');
    const node = await startRun('test/guests/console.js', { record: trace });
    try {
      expect((await send(node.url, { method: 'GET', path: '/timers' })).status).toBe(200);
      expect((await send(node.url, { method: 'GET', path: '/groups' })).status).toBe(200);
    } finally {
      await node.stop();
    }
    const guest = node.lines.filter((l) => l.guest === true).map((l) => ({ level: l.level, text: l.msg }));
    const texts = guest.map((l) => l.text);
    // Timers: a 20 ms timer sits between time and timeLog/timeEnd; Node's "label: Nms" format.
    const waited = texts.filter((t) => t.startsWith('wait: '));
    expect(waited).toHaveLength(2);
    expect(waited[0]).toMatch(/^wait: \d+(\.\d+)?ms halfway \{ n: 1 \}$/);
    expect(waited[1]).toMatch(/^wait: \d+(\.\d+)?ms$/);
    expect(Number(/(\d+(?:\.\d+)?)ms/.exec(waited[1]!)![1])).toBeGreaterThanOrEqual(20);
    expect(texts.some((t) => /^default: \d+(\.\d+)?ms$/.test(t))).toBe(true);
    // Node's warnings, at warn level (40).
    const warnings = guest.filter((l) => l.level === 40).map((l) => l.text);
    expect(warnings).toEqual(
      expect.arrayContaining([
        "Warning: Label 'wait' already exists for console.time()",
        "Warning: No such label 'wait' for console.timeEnd()",
        "Warning: No such label 'never' for console.timeLog()",
      ]),
    );
    // Groups: two spaces a level, on every line; an extra groupEnd stays at the top.
    const from = texts.indexOf('top');
    expect(texts.slice(from)).toEqual(['top', 'outer', '  in outer', '    two\n    lines', '  back in outer', 'top again']);
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    expect(replay.console.map((c) => c.text)).toEqual(texts);
  });

  test('a computed dynamic import of a bare specifier rejects with a message naming it', async () => {
    const node = await startRun('test/guests/console.js');
    try {
      const res = await send(node.url, { method: 'GET', path: '/import' });
      expect(res.body).toContain('"lodash"');
      expect(res.body).toContain('only relative imports');
    } finally {
      await node.stop();
    }
  });
});

describe('limit flags', () => {
  test('--max-stack-kb past what the engine can honour is refused up front, with the bound and why', async () => {
    const result = await ftjs(['run', 'guest-apps/kv.js', '--port', '0', '--max-stack-kb', '6000']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/--max-stack-kb must be at most 3456: the engine's own C stack is 5 MiB/);
    expect(result.stderr).not.toContain('calibration');
    // The same bound holds for limits that do not come through the CLI (programmatic use, a trace header).
    expect(() => assertLimits({ ...DEFAULT_LIMITS, maxStackBytes: 6000 * 1024 })).toThrow(/--max-stack-kb must be at most 3456/);
    expect(() => assertLimits({ ...DEFAULT_LIMITS, maxStackBytes: 3456 * 1024 })).not.toThrow();
  });
});
