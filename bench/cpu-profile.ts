// Aggregates V8 CPU profiles (`node --cpu-prof`, one file per thread) into the per-request breakdown
// issue 19 reports: QuickJS wasm, node http, GC, ftjs code, quickjs-emscripten glue, main↔worker
// messaging, and the rest. Samples are attributed to their leaf frame (self time) and kept only inside
// a window of the monotonic clock (V8's profile timestamps and process.hrtime share CLOCK_MONOTONIC),
// so the boot and the warm-up stay out of the figures.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const PARTS = ['QuickJS wasm', 'quickjs-emscripten glue', 'ftjs code', 'node http', 'main↔worker messaging', 'GC', 'other node', 'other js', 'native (program)'] as const;
export type Part = (typeof PARTS)[number];

const HTTP_MODULES = /^node:(_http_|http|net|internal\/(http|streams|stream_base|net|timers|async_hooks|process\/task_queues|dns|url|errors|buffer)|stream|buffer|events|url|timers)/;

/** Which part of the breakdown a leaf frame belongs to. */
export function partOf(frame: CallFrame, projectRoot: string): Part | 'idle' {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)' || functionName === '(root)') return 'native (program)';
  if (url.startsWith('wasm://') || /^\$?wasm-function/.test(functionName)) return 'QuickJS wasm';
  if (url.includes('quickjs-emscripten') || url.includes('@jitl/')) return 'quickjs-emscripten glue';
  if (url.includes('worker_threads') || url.includes('internal/worker') || url.includes('messageport') || url.includes('per_context/messageport') || /MessagePort|postMessage/.test(functionName)) {
    return 'main↔worker messaging';
  }
  if (HTTP_MODULES.test(url)) return 'node http';
  if (url.startsWith('node:')) return 'other node';
  if (url === '') return 'native (program)';
  const file = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  if (file.startsWith(projectRoot) && !file.includes('node_modules')) return 'ftjs code';
  return 'other js';
}

/** CPU µs per part within [fromUs, toUs] of the monotonic clock, over every profile in `dir`. */
export function aggregate(
  dir: string,
  fromUs: number,
  toUs: number,
  projectRoot: string,
): { byPart: Record<Part, number>; byFile: Map<string, number>; byThread: Map<string, number>; threads: number } {
  const byPart = Object.fromEntries(PARTS.map((p) => [p, 0])) as Record<Part, number>;
  const byFile = new Map<string, number>();
  /** CPU µs by profile file (one per thread: CPU.<date>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main thread). */
  const byThread = new Map<string, number>();
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  for (const name of files) {
    const profile = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as CpuProfile;
    const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      const delta = profile.timeDeltas[i] ?? 0;
      t += delta;
      // A sample stands for the interval before the next one: weigh it by the next delta.
      const weight = profile.timeDeltas[i + 1] ?? 0;
      if (t < fromUs || t > toUs) continue;
      const frame = frames.get(profile.samples[i]!)!;
      const part = partOf(frame, projectRoot);
      if (part === 'idle') continue;
      byPart[part] += weight;
      byThread.set(name, (byThread.get(name) ?? 0) + weight);
      const key = `${part}: ${frame.url.replace(`file://${projectRoot}/`, '')} ${frame.functionName}`;
      byFile.set(key, (byFile.get(key) ?? 0) + weight);
    }
  }
  return { byPart, byFile, byThread, threads: files.length };
}
