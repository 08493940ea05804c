// Maps guest stack frames back to the original files. A bundled guest's stacks name the bundle
// (`index.js:1234:17`); its source map travels in the boot config with it (a source named
// `<module>.map`), so every node and every replay can turn that into `src/index.ts:12:5` with no
// source tree at hand.
//
// The VM maps the console lines it hands out (after hashing the raw text, so a task's hash does not
// depend on this mapping) and its boot errors; everything downstream (logs, divergence reports, the
// debugger) shows original positions. Maps are decoded lazily, on the first frame that needs one.

import { originalPositionFor, TraceMap } from '@jridgewell/trace-mapping';
import { type GuestSource, isSourceMapName, SOURCE_MAP_SUFFIX } from './sources.js';

export class StackMapper {
  private readonly rawMaps = new Map<string, string>();
  private readonly decoded = new Map<string, TraceMap | null>();
  /** `<module>:<line>:<col>` after a frame's "(" or "at ", for the modules that have a map. */
  private readonly framePattern: RegExp | null;

  constructor(sources: readonly GuestSource[]) {
    for (const s of sources) if (isSourceMapName(s.name)) this.rawMaps.set(s.name.slice(0, -SOURCE_MAP_SUFFIX.length), s.text);
    const names = [...this.rawMaps.keys()].map(escapeRegExp);
    this.framePattern = names.length > 0 ? new RegExp(`(^|[\\s(@])(${names.join('|')}):(\\d+):(\\d+)`, 'g') : null;
  }

  get hasMaps(): boolean {
    return this.framePattern !== null;
  }

  /** `text` with every frame position in a mapped module replaced by its original file:line:col (1-based). */
  mapText(text: string): string {
    if (!this.framePattern) return text;
    return text.replace(this.framePattern, (match, before: string, module: string, line: string, column: string) => {
      const original = this.lookup(module, Number(line), Number(column));
      return original ? `${before}${original}` : match;
    });
  }

  /** `line`:`column` (QuickJS counts both from 1) in `module` → "file:line:col", or null where the map has nothing. */
  lookup(module: string, line: number, column: number): string | null {
    const map = this.mapOf(module);
    if (!map) return null;
    const found = originalPositionFor(map, { line, column: Math.max(0, column - 1) });
    if (found.source === null || found.line === null || found.column === null) return null;
    return `${found.source}:${found.line}:${found.column + 1}`;
  }

  private mapOf(module: string): TraceMap | null {
    let map = this.decoded.get(module);
    if (map === undefined) {
      try {
        map = new TraceMap(this.rawMaps.get(module) ?? '');
      } catch {
        map = null; // a broken map leaves the frames as they are; it never breaks the guest's console
      }
      this.decoded.set(module, map);
    }
    return map;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
