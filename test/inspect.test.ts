// `ftjs inspect`: the summary of a recorded trace (tasks, entries by kind, routes, outputs,
// preemptions, largest tasks), and the --html timeline page: self-contained (no network), one mark
// per task, hover and zoom working when its inline script runs.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { JSDOM, VirtualConsole } from 'jsdom';
import { beforeAll, expect, test } from 'vitest';
import { Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';
import { ftjs, runSteps, startRun, tempDir } from './helpers.js';

const dir = tempDir('ftjs-inspect-');
const trace = path.join(dir, 'cpu.trace');
let taskCount = 0;
let preemptSeq = 0;

beforeAll(async () => {
  // /forever is the one preemption; the budget leaves the finite requests room on a loaded host (a
  // 200 ms budget preempted the cold first request too under two CPU hogs). The response deadline's
  // runtime timer fires --response-timeout-ms after an async handler: a long one keeps that Timer task
  // out of a recording however long a loaded host stretches it (the tasks are counted).
  const node = await startRun('guest-apps/cpu.js', { record: trace, args: ['--task-budget-ms', '1000', '--response-timeout-ms', '600000'] });
  try {
    await runSteps(node.url, [
      { method: 'GET', path: '/work?n=20000' },
      { method: 'GET', path: '/count' },
      { method: 'GET', path: '/forever' },
      { method: 'GET', path: '/work?n=1000' },
      { method: 'GET', path: '/spin?ms=20' },
      { method: 'GET', path: '/count' },
    ]);
  } finally {
    await node.stop();
  }
  const { entries } = await readTrace(trace);
  taskCount = entries.filter((e) => e.kind === Kind.TaskEnd).length;
  preemptSeq = entries.find((e) => e.kind === Kind.Preempt)!.seq;
});

test('the summary: tasks, entries and bytes by kind, requests by route, outputs, preemptions, largest tasks', async () => {
  const result = await ftjs(['inspect', trace, '--json']);
  expect(result.code, result.stderr).toBe(0);
  const r = JSON.parse(result.stdout) as {
    tasks: { total: number; byKind: Record<string, number> };
    entries: { total: number; byKind: Record<string, { count: number; payloadBytes: number }> };
    requests: { total: number; byRoute: Array<{ route: string; count: number }> };
    outputs: { total: number };
    preemptions: Array<{ seq: number; label: string }>;
    largestTasks: { byWork: Array<{ label: string; preempted: boolean }> };
    time: { spanMs: number } | null;
    segments: string[];
  };
  expect(r.tasks.total).toBe(taskCount);
  expect(r.tasks.byKind).toEqual({ Boot: 1, Request: 6 });
  expect(r.requests.byRoute).toEqual([
    { route: 'GET /count', count: 2 },
    { route: 'GET /work', count: 2 },
    { route: 'GET /forever', count: 1 },
    { route: 'GET /spin', count: 1 },
  ]);
  expect(r.entries.byKind['Preempt']!.count).toBe(1);
  expect(r.entries.byKind['Request']!.payloadBytes).toBeGreaterThan(0);
  expect(r.preemptions.map((p) => p.seq)).toEqual([preemptSeq]);
  expect(r.preemptions[0]!.label).toContain('/forever');
  expect(r.largestTasks.byWork[0]!.label).toContain('/forever');
  expect(r.largestTasks.byWork[0]!.preempted).toBe(true);
  expect(r.outputs.total).toBeGreaterThanOrEqual(6);
  expect(r.time!.spanMs).toBeGreaterThan(200);
  expect(r.segments).toEqual([trace]);

  const text = await ftjs(['inspect', trace]);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/tasks: 7 \(1 Boot, 6 Request\)/);
  expect(text.stdout).toMatch(/preemptions: 1\n {2}seq \d+ in the task at seq \d+: #3 GET \/forever/);
});

test('--html: one self-contained page with a timeline of one mark per task, that scrolls, zooms and shows details on hover', async () => {
  const html = path.join(dir, 'timeline.html');
  const result = await ftjs(['inspect', trace, '--html', html]);
  expect(result.code, result.stderr).toBe(0);
  const source = readFileSync(html, 'utf8');

  // No network: nothing is loaded from anywhere (no src or href to a URL, no external script, style or font).
  const errors: string[] = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => errors.push(e.message));
  virtualConsole.on('error', (e) => errors.push(String(e)));
  const dom = new JSDOM(source, { runScripts: 'dangerously', virtualConsole });
  const doc = dom.window.document;
  for (const el of doc.querySelectorAll('[src], [href], link, iframe, object, embed, img')) {
    throw new Error(`the page loads something: <${el.tagName.toLowerCase()} ${el.getAttribute('src') ?? el.getAttribute('href') ?? ''}>`);
  }
  expect(source).not.toMatch(/\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
  expect(source).not.toMatch(/@import|url\(\s*["']?(?:https?:)?\/\//i);
  expect([...doc.querySelectorAll('script')].every((s) => !s.hasAttribute('src'))).toBe(true);
  expect(errors).toEqual([]);

  // The timeline: one mark per task, each with its seq, kind and details.
  const svg = doc.getElementById('timeline')!;
  expect(svg).not.toBeNull();
  expect(svg.getAttribute('data-tasks')).toBe(String(taskCount));
  const marks = [...svg.querySelectorAll('rect.task')];
  expect(marks.length).toBe(taskCount);
  const kinds = marks.map((m) => m.getAttribute('data-kind'));
  expect(kinds[0]).toBe('Boot');
  expect(kinds.slice(1)).toEqual(Array(taskCount - 1).fill('Request'));
  const seqs = marks.map((m) => Number(m.getAttribute('data-seq')));
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  const preempted = marks.filter((m) => m.classList.contains('preempted'));
  expect(preempted.length).toBe(1);
  expect(preempted[0]!.querySelector('title')!.textContent).toContain('PREEMPTED');
  expect(preempted[0]!.querySelector('title')!.textContent).toContain('/forever');
  for (const m of marks) {
    expect(Number(m.getAttribute('width'))).toBeGreaterThan(0);
    expect(m.querySelector('title')!.textContent).toMatch(/seq \d+\.\.\d+/);
  }
  // Work bars and log bytes per second.
  expect(svg.querySelectorAll('rect.work').length).toBe(taskCount);
  expect(doc.querySelectorAll('#bytes-per-second rect.bps').length).toBeGreaterThan(0);

  // The inline script ran: axis ticks drawn; zoom widens the timeline; hovering a mark shows its details.
  expect(svg.querySelectorAll('#ticks text').length).toBeGreaterThan(1);
  const width = Number(svg.getAttribute('width'));
  (doc.getElementById('zoom-in') as HTMLButtonElement).click();
  expect(Number(svg.getAttribute('width'))).toBe(width * 2);
  const tooltip = doc.getElementById('tooltip')!;
  expect(tooltip.hidden).toBe(true);
  preempted[0]!.dispatchEvent(new dom.window.MouseEvent('mousemove', { bubbles: true, clientX: 10, clientY: 10 }));
  expect(tooltip.hidden).toBe(false);
  expect(tooltip.textContent).toContain(`PREEMPTED`);
  // The axis switches between guest time and task order.
  const order = doc.querySelector('input[name=axis][value=order]') as HTMLInputElement;
  order.checked = true;
  order.dispatchEvent(new dom.window.Event('change'));
  const xs = marks.map((m) => Number(m.getAttribute('x')));
  expect(xs).toEqual([...xs].sort((a, b) => a - b));
  expect(new Set(xs).size).toBe(taskCount);
  expect(errors).toEqual([]);
  dom.window.close();
});

test('inspect of a missing or foreign file is exit 2', async () => {
  const missing = await ftjs(['inspect', path.join(dir, 'nope.trace')]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('nope.trace');
  const foreign = path.join(dir, 'foreign.trace');
  writeFileSync(foreign, 'not a trace\n');
  const bad = await ftjs(['inspect', foreign]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/not a trace/);
});
