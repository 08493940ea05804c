// The replay debugger, driven through stdin like an operator would type at the prompt: stop at a
// seq, inspect the guest there, step, travel back and forward, and verify to the end; and the
// divergence report of a deliberately nondeterministic replay (a test-only hook perturbs one clock
// input), naming the first divergent seq with a readable diff of the bodies.

import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { decodeRequestEvent } from '../dist/logging-channel/codec.js';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';
import { type CommandResult, ftjs, replayJson, runSteps, startRun, tempDir } from './helpers.js';

const dir = tempDir('ftjs-debugger-');
const trace = path.join(dir, 'debuggee.trace');
let entries: Entry[] = [];
let finalStateHash = '';

/** Start seqs of the request tasks, in order, with their method and path. */
function requests(): Array<{ seq: number; method: string; path: string; endSeq: number }> {
  return entries
    .filter((e) => e.kind === Kind.Request)
    .map((e) => {
      const r = decodeRequestEvent(e.payload);
      const endSeq = entries.find((x) => x.seq > e.seq && x.kind === Kind.TaskEnd)!.seq;
      return { seq: e.seq, method: r.method, path: new URL(r.url).pathname + new URL(r.url).search, endSeq };
    });
}

beforeAll(async () => {
  const node = await startRun('test/guests/debuggee.js', { record: trace });
  try {
    const steps = [];
    for (let i = 1; i <= 6; i++) {
      steps.push({ method: 'POST', path: `/inc?key=k${i}` });
      if (i === 3) steps.push({ method: 'GET', path: '/time' }, { method: 'GET', path: '/throw' });
    }
    steps.push({ method: 'GET', path: '/time' });
    await runSteps(node.url, steps);
  } finally {
    await node.stop();
  }
  entries = (await readTrace(trace)).entries;
  const plain = await replayJson(trace);
  expect(plain.code).toBe(0);
  finalStateHash = plain.summary.finalStateHash;
});

interface DebugLine {
  type: string;
  command?: string;
  outcome?: string;
  seq?: number;
  ok?: boolean;
  value?: string;
  info?: {
    seq: number;
    atEnd: boolean;
    task: { startSeq: number; endSeq: number; entryIndex: number; entryCount: number; number: number; start: { kind: string; summary: string } } | null;
    vm: { tasks: number; booted: boolean };
    epoch: { epoch: number };
    guestTimeMs: number;
    entry: { kind: string } | null;
  };
  [key: string]: unknown;
}

function jsonLines(result: CommandResult): DebugLine[] {
  return result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as DebugLine);
}

/** Runs `ftjs replay --json` with commands on stdin; returns the JSON lines. */
async function debugJson(args: string[], commands: string[], env: Record<string, string> = {}): Promise<{ result: CommandResult; lines: DebugLine[] }> {
  const result = await ftjs(['replay', trace, '--json', ...args], env, `${commands.join('\n')}\n`);
  return { result, lines: jsonLines(result) };
}

test('the prompt: --until, info, eval, next, goto back (earlier value), goto forward, and the replay still verifies to the end', async () => {
  const incs = requests().filter((r) => r.path.startsWith('/inc'));
  expect(incs.length).toBe(6);
  const fourth = incs[3]!; // before it runs, the counter is 3
  const second = incs[1]!;
  const fifth = incs[4]!;
  const { result, lines } = await debugJson(
    ['--until', String(fourth.seq), '--checkpoint-tasks', '2'],
    [
      'info',
      'eval $mod.counter',
      'eval globalThis.lastKey',
      'next',
      'eval $mod.counter',
      `goto ${second.seq}`,
      'eval $mod.counter',
      'eval [...$mod.history]',
      // An eval that changes guest state changes only the copy it runs in.
      'eval $mod.history.push("not in the recording"); globalThis.lastKey = "zzz"; $mod.history.length',
      'eval globalThis.lastKey',
      `goto ${fifth.seq}`,
      'eval $mod.counter',
      'events 2',
      'outputs 2',
      'console 2',
      'continue',
      'quit',
    ],
  );
  expect(result.code, result.stderr).toBe(0);
  const byCommand = (name: string) => lines.filter((l) => l.command === name);

  const until = byCommand('until')[0]!;
  expect(until.outcome).toBe('ok');
  expect(until.seq).toBe(fourth.seq);

  const info = byCommand('info')[0]!.info!;
  expect(info.seq).toBe(fourth.seq);
  expect(info.task).toMatchObject({ startSeq: fourth.seq, endSeq: fourth.endSeq, entryIndex: 1 });
  expect(info.task!.start.kind).toBe('Request');
  expect(info.task!.start.summary).toContain('/inc?key=k4');
  expect(info.vm.booted).toBe(true);
  expect(info.epoch.epoch).toBe(0);
  expect(info.guestTimeMs).toBeGreaterThan(1_600_000_000_000);

  const evals = byCommand('eval');
  expect(evals.map((e) => e.ok)).toEqual(evals.map(() => true));
  expect(evals[0]!.value).toBe('3');
  expect(evals[1]!.value).toBe('k3');

  const next = byCommand('next')[0]!;
  expect(next.outcome).toBe('ok');
  // /time and /throw come after the third /inc, so the task after the fourth /inc is the fifth /inc.
  expect(next.seq).toBe(fourth.endSeq + 1);
  expect(evals[2]!.value).toBe('4');

  const [back, forward] = byCommand('goto');
  expect(back!.outcome).toBe('ok');
  expect(back!.seq).toBe(second.seq);
  expect(evals[3]!.value).toBe('1'); // the earlier value
  expect(evals[4]!.value).toBe('[ "k1" ]');
  expect(evals[5]!.value).toBe('2');
  expect(evals[6]!.value).toBe('zzz'); // the same scratch copy, at the same point
  expect(forward!.outcome).toBe('ok');
  expect(forward!.seq).toBe(fifth.seq);
  expect(evals[7]!.value).toBe('4');

  const events = byCommand('events')[0]!.events as Array<{ seq: number; kind: string; current: boolean }>;
  expect(events.find((e) => e.current)!.seq).toBe(fifth.seq);
  expect(events.map((e) => e.seq)).toEqual([fifth.seq - 2, fifth.seq - 1, fifth.seq, fifth.seq + 1, fifth.seq + 2]);
  const outputs = byCommand('outputs')[0]!;
  expect((outputs.outputs as Array<{ body: string }>).at(-1)!.body).toContain('"counter":4');
  const consoleLines = byCommand('console')[0]!.lines as Array<{ text: string }>;
  expect(consoleLines.at(-1)!.text).toBe('counter is 4');

  const cont = byCommand('continue')[0]!;
  expect(cont.outcome).toBe('end');
  const summary = lines.find((l) => l.type === 'summary')!;
  expect(summary.ok).toBe(true);
  expect(summary.finalStateHash).toBe(finalStateHash);
  expect(summary.tasks).toBe(requests().length + 1);
  expect(byCommand('quit').length).toBe(1);
});

test('the same session as text, as a person reads it', async () => {
  const incs = requests().filter((r) => r.path.startsWith('/inc'));
  const result = await ftjs(['replay', trace, '--until', String(incs[2]!.seq)], {}, `info\neval $mod.counter\ngoto ${incs[0]!.seq}\neval $mod.counter\nhelp\nbogus\ncontinue\n`);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toContain(`at seq ${incs[2]!.seq} (Request`);
  expect(result.stdout).toContain('(ftjs) eval $mod.counter\n= 2');
  expect(result.stdout).toContain('(ftjs) eval $mod.counter\n= 0');
  expect(result.stdout).toMatch(/goto <seq> +move to seq, forward or backward/);
  expect(result.stdout).toContain('error: unknown command "bogus"');
  expect(result.stdout).toMatch(/verified \d+ tasks/);
});

test('a point inside a task is logical: step moves entry by entry, the VM stays at the task start', async () => {
  const time = requests().find((r) => r.path === '/time')!;
  const clock = entries.find((e) => e.seq > time.seq && e.kind === Kind.Clock)!;
  expect(clock.seq).toBeLessThan(time.endSeq);
  // From the clock entry, one step per entry left in the task passes its end.
  const stepsPastEnd = Array.from({ length: time.endSeq - clock.seq + 1 }, () => 'step');
  const { result, lines } = await debugJson(['--until', String(time.seq)], ['step', 'info', 'eval $mod.counter', ...stepsPastEnd, 'info', 'quit']);
  expect(result.code, result.stderr).toBe(0);
  const infos = lines.filter((l) => l.command === 'info').map((l) => l.info!);
  expect(infos[0]!.seq).toBe(clock.seq);
  expect(infos[0]!.entry!.kind).toBe('Clock');
  expect(infos[0]!.task).toMatchObject({ startSeq: time.seq, entryIndex: 2, entryCount: time.endSeq - time.seq + 1 });
  expect(infos[0]!.vm.tasks).toBe(infos[0]!.task!.number - 1);
  expect(lines.find((l) => l.command === 'eval')!.value).toBe('3');
  // Past the task's end: the task ran, and the point is the next task's start.
  expect(infos[1]!.seq).toBe(time.endSeq + 1);
  expect(infos[1]!.task!.entryIndex).toBe(1);
  expect(infos[1]!.vm.tasks).toBe(infos[0]!.vm.tasks + 1);
});

test('--until-pos stops at the first entry at that position or later', async () => {
  const target = requests()[4]!;
  const pos = entries.find((e) => e.seq === target.seq)!.pos;
  const first = entries.find((e) => e.pos >= pos)!;
  const { result, lines } = await debugJson(['--until-pos', String(pos)], ['quit']);
  expect(result.code, result.stderr).toBe(0);
  expect(lines.find((l) => l.command === 'until')!.seq).toBe(first.seq);
});

test('a deliberately nondeterministic replay: the report names the first divergent seq, with a readable diff of the bodies', async () => {
  const time = requests().find((r) => r.path === '/time')!;
  const env = { FTJS_TEST_PERTURB_CLOCK_FROM_SEQ: String(time.seq) };
  const recordedNow = entries.find((e) => e.seq > time.seq && e.kind === Kind.Clock)!;
  expect(recordedNow.seq).toBeLessThan(time.endSeq);

  const json = await replayJson(trace, env);
  expect(json.code).toBe(1);
  expect(json.summary.divergence!.seq).toBe(time.endSeq);
  const report = jsonLines(json).find((l) => l.type === 'divergence') as unknown as {
    divergence: { seq: number };
    task: { startSeq: number; entries: Array<{ seq: number; kind: string }> };
    actual: { outputs: Array<{ body: string }>; console: Array<{ text: string }> };
    expected: { outputs: Array<{ body: string }> } | null;
    diff: string[];
  };
  expect(report.task.startSeq).toBe(time.seq);
  // The guest's clock reading, and the runtime's arming the response deadline when the async handler
  // returned (logged only when the millisecond moved on since the guest's).
  const kinds = report.task.entries.map((e) => e.kind);
  expect([
    ['Request', 'Clock', 'TaskEnd'],
    ['Request', 'Clock', 'Clock', 'TaskEnd'],
  ]).toContainEqual(kinds);
  const expectedNow = JSON.parse(report.expected!.outputs[0]!.body).now as number;
  const actualNow = JSON.parse(report.actual.outputs[0]!.body).now as number;
  expect(actualNow).toBe(expectedNow + 1);
  expect(report.diff).toContain(`-   "now": ${expectedNow},`);
  expect(report.diff).toContain(`+   "now": ${actualNow},`);
  expect(report.actual.console[0]!.text).toBe(`time is ${actualNow}`);

  const human = await ftjs(['replay', trace], env);
  expect(human.code).toBe(1);
  expect(human.stderr).toContain(`DIVERGENCE at seq ${time.endSeq}`);
  expect(human.stderr).toContain(`in the task at seq ${time.seq}..${time.endSeq}, started by Request`);
  // The expected side is what the recording node emitted, kept in the trace.
  expect(human.stderr).toContain('outputs: expected (-) vs actual (+); expected = recorded in the trace');
  expect(human.stderr).toContain(`-   "now": ${expectedNow},`);
  expect(human.stderr).toContain(`+   "now": ${actualNow},`);
  expect(human.stderr).toContain(`log: time is ${actualNow}`);
});

test('after a divergence the debugger stays at the start of the divergent task, where the guest can be inspected', async () => {
  const time = requests().find((r) => r.path === '/time')!;
  const env = { FTJS_TEST_PERTURB_CLOCK_FROM_SEQ: String(time.seq) };
  const { result, lines } = await debugJson(['--until', '2'], ['continue', 'info', 'eval $mod.counter', 'next', `goto ${time.seq - 2}`, 'eval $mod.counter', 'continue', 'quit'], env);
  expect(result.code).toBe(1);
  expect(lines.filter((l) => l.type === 'divergence').length).toBe(1);
  const moves = lines.filter((l) => l.command === 'continue' || l.command === 'next' || l.command === 'goto');
  expect(moves.map((m) => m.outcome)).toEqual(['diverged', 'diverged', 'ok', 'diverged']);
  expect(moves.map((m) => m.seq)).toEqual([time.seq, time.seq, time.seq - 2, time.seq]);
  const info = lines.find((l) => l.command === 'info')!.info!;
  expect(info.task!.startSeq).toBe(time.seq);
  const evals = lines.filter((l) => l.command === 'eval');
  expect(evals.map((e) => e.value)).toEqual(['3', '2']);
});

test('a divergent task that throws: the report carries the guest exception with its stack', async () => {
  const thrower = requests().find((r) => r.path === '/throw')!;
  const json = await replayJson(trace, { FTJS_TEST_PERTURB_CLOCK_FROM_SEQ: String(thrower.seq) });
  expect(json.code).toBe(1);
  const report = jsonLines(json).find((l) => l.type === 'divergence') as unknown as { exceptions: string[]; diff: string[] };
  expect(report.exceptions.length).toBe(1);
  expect(report.exceptions[0]).toContain('boom from the guest');
  // The guest was bundled at boot; its stack names the original file, through the bundle's source map.
  expect(report.exceptions[0]).toContain('at fail (test/guests/debuggee.js:');
  expect(report.diff.some((l) => l.startsWith('+ error: Uncaught') && l.includes('boom from the guest'))).toBe(true);
  // Every line of the exception's stack carries the marker, not only the first.
  const stack = report.diff.filter((l) => l.includes('at fail (test/guests/debuggee.js:'));
  expect(stack.length).toBeGreaterThan(0);
  for (const line of stack) expect(line).toMatch(/^[-+] /);
  expect(stack.filter((l) => l.startsWith('+ ')).length).toBe(stack.filter((l) => l.startsWith('- ')).length);
});

test('going back to before the guest memory grew restores into a fresh VM, and the replay still verifies', async () => {
  const cpuTrace = path.join(dir, 'cpu.trace');
  const node = await startRun('guest-apps/cpu.js', { record: cpuTrace });
  try {
    await runSteps(node.url, [
      { method: 'GET', path: '/count' },
      { method: 'GET', path: '/alloc?mb=40&kind=buffer' },
      { method: 'GET', path: '/count' },
    ]);
  } finally {
    await node.stop();
  }
  const cpuEntries = (await readTrace(cpuTrace)).entries;
  const starts = cpuEntries.filter((e) => e.kind === Kind.Request).map((e) => e.seq);
  const result = await ftjs(
    ['replay', cpuTrace, '--json', '--until', String(starts[2]!), '--checkpoint-tasks', '1'],
    {},
    `info\ngoto ${starts[1]}\ninfo\neval "started" in $mod ? 1 : 0\ngoto ${starts[2]}\ninfo\ncontinue\n`,
  );
  expect(result.code, result.stderr).toBe(0);
  const lines = jsonLines(result);
  const infos = lines.filter((l) => l.command === 'info').map((l) => l.info! as unknown as { seq: number; vm: { memoryBytes: number } });
  expect(infos.map((i) => i.seq)).toEqual([starts[2], starts[1], starts[2]]);
  expect(infos[0]!.vm.memoryBytes).toBeGreaterThan(infos[1]!.vm.memoryBytes);
  expect(infos[2]!.vm.memoryBytes).toBe(infos[0]!.vm.memoryBytes);
  expect(lines.find((l) => l.command === 'eval')!.ok).toBe(true);
  expect(lines.find((l) => l.type === 'summary')!.ok).toBe(true);
});
