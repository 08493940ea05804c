// The task budget counts the VM thread's CPU time (recorder/live-port.ts, thread-cpu-clock.ts): a
// starved host stretches a task's wall time, not its budget. The arithmetic runs on an injected clock;
// then a real VM on the real per-thread clock, whose task is held off the CPU (the thread blocks in
// Atomics.wait inside its clock read) for several budgets of wall time, and is not preempted, unless
// the wall backstop is reached; a port without the CPU clock preempts the same task. The preemption is
// a recorded input: the recorded task replays to the same outputs at the same position.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { TASK_WALL_BACKSTOP_BUDGETS } from '../dist/hypervisor/vm/limits.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { type LiveEvent, type TaskResult, Vm } from '../dist/hypervisor/vm/vm.js';
import { Kind, type RawEntry } from '../dist/logging-channel/entry.js';
import { CPU_BASELINE_MAX_AGE_MS, LivePort, type LivePortWorld } from '../dist/recorder/live-port.js';
import { Log } from '../dist/recorder/log.js';
import { readThreadCpuMs } from '../dist/recorder/thread-cpu-clock.js';
import { ReplayPort } from '../dist/replayer/replay-port.js';
import { tempDir } from './helpers.js';

/** A clock the test moves by hand: wall ms, and the VM thread's CPU ms (null: no CPU clock). */
class ManualWorld implements LivePortWorld {
  wall = 1_000;
  cpu: number | null = 500;
  cpuReads = 0;
  monoMs(): number {
    return this.wall;
  }
  threadCpuMs(): number | null {
    this.cpuReads++;
    return this.cpu;
  }
  wallMs(): number {
    return this.wall;
  }
  randomBytes(length: number): Uint8Array {
    return new Uint8Array(length);
  }
  /** The thread runs `cpuMs` of the next `wallMs` (the rest it waits for a core). */
  run(wallMs: number, cpuMs: number): void {
    this.wall += wallMs;
    if (this.cpu !== null) this.cpu += cpuMs;
  }
}

function portOn(world: LivePortWorld, taskBudgetMs: number): { port: LivePort; entries: RawEntry[] } {
  const entries: RawEntry[] = [];
  return { port: new LivePort({ push: (e) => entries.push(e) }, { taskBudgetMs, world }), entries };
}

describe('the budget arithmetic (injected clock)', () => {
  test('a task that gets a quarter of a core is preempted once its CPU time, not its wall time, passes the budget', () => {
    const world = new ManualWorld();
    const { port, entries } = portOn(world, 100);
    port.beginTask();
    let pos = 0;
    // 4 wall ms per CPU ms: past the budget in wall time after 100 ms, in CPU time after 400 ms.
    while (!port.preempt(++pos)) world.run(1, 0.25);
    expect(world.wall - 1_000).toBeGreaterThan(400);
    expect(world.wall - 1_000).toBeLessThanOrEqual(401);
    expect(entries).toEqual([{ kind: Kind.Preempt, pos, payload: new Uint8Array(0) }]);
  });

  test('the CPU clock is not read before a budget of wall time has passed, and then only when CPU time could have caught up', () => {
    const world = new ManualWorld();
    const { port } = portOn(world, 100);
    port.beginTask();
    const baselineReads = world.cpuReads;
    for (let i = 0; i < 100; i++) {
      world.run(1, 0.5);
      expect(port.preempt(i)).toBe(false);
    }
    expect(world.cpuReads).toBe(baselineReads);
    // Half a core: each read finds half the rest of the budget used, so reads halve the distance
    // (50 ms of CPU left at 0.05 ms a poll: 1,000 polls, about 10 reads).
    let polls = 0;
    while (!port.preempt(1_000 + polls++)) world.run(0.1, 0.05);
    expect(world.cpuReads - baselineReads).toBeLessThan(20);
    expect(polls).toBeGreaterThan(500);
  });

  test('past the wall backstop the task is preempted whatever its CPU time (a thread that never runs, a clock that stands still)', () => {
    const world = new ManualWorld();
    const { port } = portOn(world, 100);
    port.beginTask();
    world.run(TASK_WALL_BACKSTOP_BUDGETS * 100, 0);
    expect(port.preempt(1)).toBe(false);
    world.run(1, 0);
    expect(port.preempt(2)).toBe(true);
  });

  test('without a CPU clock the budget counts wall time', () => {
    for (const world of [Object.assign(new ManualWorld(), { cpu: null }), { monoMs: () => clock.wall, wallMs: () => 0, randomBytes: (n: number) => new Uint8Array(n) }]) {
      clock.wall = 0;
      const { port } = portOn(world, 100);
      port.beginTask();
      if (world instanceof ManualWorld) world.run(100, 0);
      else clock.wall += 100;
      expect(port.preempt(1)).toBe(false);
      if (world instanceof ManualWorld) world.run(1, 0);
      else clock.wall += 1;
      expect(port.preempt(2)).toBe(true);
    }
  });

  test('a task starts from a CPU reading at most CPU_BASELINE_MAX_AGE_MS old, and a restarted budget from a fresh one', () => {
    const world = new ManualWorld();
    const { port } = portOn(world, 1_000);
    port.beginTask();
    const reads = world.cpuReads;
    world.run(CPU_BASELINE_MAX_AGE_MS / 2, CPU_BASELINE_MAX_AGE_MS / 2);
    port.beginTask();
    expect(world.cpuReads).toBe(reads);
    world.run(CPU_BASELINE_MAX_AGE_MS, 0);
    port.beginTask();
    expect(world.cpuReads).toBe(reads + 1);
    // The boot's CPU time before a restart does not count against the guest.
    world.run(5_000, 5_000);
    port.restartBudget();
    world.run(2_000, 999);
    expect(port.preempt(1)).toBe(false);
    world.run(2, 2);
    expect(port.preempt(2)).toBe(true);
  });
});
const clock = { wall: 0 };

describe('a real VM on the real per-thread CPU clock', () => {
  const cpu = readThreadCpuMs();
  // The per-thread clock is Linux's; elsewhere the budget counts wall time (the tests above).
  const onLinux = cpu !== null ? test : test.skip;
  // Wide enough that the task's own work (a short spin, the request's glue) stays far inside the
  // budget and the wall backstop even when the thread gets a few percent of a core (two CPU hogs and a
  // loaded machine).
  const BUDGET_MS = 100;
  const dir = tempDir('ftjs-budget-');
  // Reads the clock (where the test holds the thread off the CPU), then polls: a short spin, or forever.
  writeFileSync(
    path.join(dir, 'stall.js'),
    `export default { fetch(request) {
      const t = Date.now();
      let x = 0;
      const forever = request.url.endsWith('/forever');
      for (let i = 0; forever || i < 50000; i++) x += i;
      return new Response(String(x + (t > 0 ? 1 : 0)));
    } };\n`,
  );
  const config = makeBootConfig(loadGuest(path.join(dir, 'stall.js')), {});
  const request = (p: string): LiveEvent => ({ kind: 'request', method: 'GET', url: `http://vm${p}`, headers: [], body: new Uint8Array(0) });

  /** Boots a live VM whose next clock read blocks the thread for `stallMs` (off the CPU, like a starved host). */
  async function record(stallMs: number, withCpuClock: boolean, path: string): Promise<{ tasks: RawEntry[][]; result: TaskResult; wallMs: number }> {
    const gate = new Int32Array(new SharedArrayBuffer(4));
    let stallNext = false;
    const world: LivePortWorld = {
      monoMs: () => performance.now(),
      ...(withCpuClock ? { threadCpuMs: readThreadCpuMs } : {}),
      wallMs: () => {
        if (stallNext) {
          stallNext = false;
          Atomics.wait(gate, 0, 0, stallMs);
        }
        return Date.now();
      },
      randomBytes: (n) => new Uint8Array(n).fill(7),
    };
    let vm: Vm | undefined;
    vm = await Vm.create({ ...config, limits: { ...config.limits, taskBudgetMs: BUDGET_MS } }, new LivePort({ push: (e) => vm!.sink.push(e) }, { taskBudgetMs: BUDGET_MS, world }));
    const log = new Log();
    const tasks = [log.append(vm.bootLive().entries)];
    stallNext = true;
    const started = performance.now();
    const result = vm.runLive(request(path));
    const wallMs = performance.now() - started;
    tasks.push(log.append(result.entries));
    return { tasks, result, wallMs };
  }

  async function replayed(tasks: RawEntry[][]): Promise<TaskResult> {
    const vm = await Vm.create({ ...config, limits: { ...config.limits, taskBudgetMs: BUDGET_MS } }, new ReplayPort());
    let result: TaskResult | undefined;
    for (const task of tasks) {
      result = vm.replay(task as never);
      expect(result.divergence).toBeNull();
    }
    return result!;
  }

  const status = (r: TaskResult) => (r.outputs[0] as { status: number }).status;

  onLinux('a task held off the CPU for 3 budgets of wall time is not preempted; with a wall-time budget it is, and its preemption replays', async () => {
    const cpuBudget = await record(3 * BUDGET_MS, true, '/');
    expect(cpuBudget.wallMs).toBeGreaterThan(3 * BUDGET_MS);
    expect(cpuBudget.result.preempted).toBe(false);
    expect(status(cpuBudget.result)).toBe(200);

    const wallBudget = await record(3 * BUDGET_MS, false, '/');
    expect(wallBudget.result.preempted).toBe(true);
    expect(status(wallBudget.result)).toBe(503);
    const preempt = wallBudget.tasks[1]!.find((e) => e.kind === Kind.Preempt);
    expect(preempt).toBeDefined();
    // Replay has no clock of its own in this: the recorded position decides.
    const again = await replayed(wallBudget.tasks);
    expect(again.preempted).toBe(true);
    expect(again.outputs).toEqual(wallBudget.result.outputs);
    expect(again.pos).toBe(wallBudget.result.pos);
  });

  onLinux('a task that really runs is preempted at its CPU budget, and one held off the CPU past the wall backstop is preempted at once', async () => {
    const spinning = await record(0, true, '/forever');
    expect(spinning.result.preempted).toBe(true);
    expect(status(spinning.result)).toBe(503);
    expect((await replayed(spinning.tasks)).pos).toBe(spinning.result.pos);

    const held = await record((TASK_WALL_BACKSTOP_BUDGETS + 2) * BUDGET_MS, true, '/');
    expect(held.result.preempted).toBe(true);
    expect(status(held.result)).toBe(503);
  });
});
