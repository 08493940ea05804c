// The folders show the architecture, and imports flow one way between them: a cycle between two
// folders (counting each subfolder as its own) means one of them does two jobs. This fails on a new one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const SOURCE_FOLDERS = ['hypervisor', 'recorder', 'replayer', 'logging-channel', 'cli', 'bench'];
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return name === 'guest' ? [] : sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Folder → folders it imports from (relative paths from the repository root). */
function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const folder of SOURCE_FOLDERS) {
    for (const file of sourceFiles(path.join(ROOT, folder))) {
      const from = path.relative(ROOT, path.dirname(file));
      if (!graph.has(from)) graph.set(from, new Set());
      for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const to = path.relative(ROOT, path.dirname(path.resolve(path.dirname(file), match[1] ?? match[2]!)));
        if (to !== from) graph.get(from)!.add(to);
      }
    }
  }
  return graph;
}

/** Strongly connected components of more than one folder (Tarjan). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

describe('layout', () => {
  it('finds a planted cycle (the check itself works)', () => {
    const planted = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a'])],
      ['d', new Set(['a'])],
    ]);
    expect(cycles(planted)).toEqual([['a', 'b', 'c']]);
  });

  it('has no import cycle between folders', () => {
    const graph = folderGraph();
    expect(graph.size).toBeGreaterThan(5);
    const explain = cycles(graph).map((c) => c.map((f) => `${f} → ${[...graph.get(f)!].filter((t) => c.includes(t)).join(', ')}`).join('; '));
    expect(explain).toEqual([]);
  });
});
